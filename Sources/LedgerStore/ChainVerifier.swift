import Dispatch
import Foundation
import LedgerCore
import LedgerCrypto
import Policy
import Scoring

/// The first thing wrong with a chain: where, and why.
public struct ChainFailure: Error, CustomStringConvertible, Sendable {
    public let height: UInt64
    /// Index of the transaction within its block, when a transaction is at fault.
    public let transactionIndex: Int?
    public let logIndex: UInt64?
    public let reason: String

    public init(height: UInt64, transactionIndex: Int?, logIndex: UInt64?, reason: String) {
        self.height = height; self.transactionIndex = transactionIndex; self.logIndex = logIndex; self.reason = reason
    }

    public var description: String {
        var at = "block \(height)"
        if let transactionIndex { at += ", transaction \(transactionIndex)" }
        if let logIndex { at += " (log index \(logIndex))" }
        return "\(at): \(reason)"
    }
}

public struct ChainSummary: Sendable {
    public var genesisHash: Hash = []
    public var chainID = ""
    public var blocks: UInt64 = 0
    public var transactions: UInt64 = 0
    public var signaturesChecked: UInt64 = 0
    public var certificatesChecked: UInt64 = 0
    public var checkpointsChecked: UInt64 = 0
    /// Envelopes absent from the copy: erased ones and `envelopesMissing` together.
    public var envelopesShredded: UInt64 = 0
    /// Of those, envelopes of records that no erase_records transaction names: not shredded but
    /// lost or withheld (by whoever served this copy, say). The chain still verifies without them.
    public var envelopesMissing: UInt64 = 0
    /// Score updates whose inputs, issuers, order and recomputation were checked.
    public var scoreUpdatesChecked: UInt64 = 0
    /// Inputs of those score updates (each checked to exist, be about the subject, come from an
    /// issuer allowed to attest its category, and precede the update).
    public var scoreInputsChecked: UInt64 = 0
    /// Scoring models: genesis models plus install_model governance transactions.
    public var modelsInstalled: UInt64 = 0
    public var headHash: Hash = []
    public var logRoot: Hash = Merkle.emptyRoot
    /// Trusted checkpoints the chain was checked to reach, with their roots (`mustReach`).
    public var checkpointsReached = 0
    /// Answers whose consent did not stand where they were evaluated (revoked, expired, for
    /// another purpose, recorded later): validators refuse such records in new blocks, but a
    /// block certified earlier may hold them. The first few, with the log index and why.
    public var answersWithoutStandingConsent: UInt64 = 0
    public var answersWithoutStandingConsentFirst: [(logIndex: UInt64, reason: String)] = []

    /// A store's head record must name the last block verified: its hash, log size and root.
    /// (The data-directory source reads blocks up to the head's height only.)
    public func check(againstHead head: ChainStore.Head) throws {
        guard headHash == head.blockHash, UInt64(transactions) == head.logSize, logRoot == head.logRoot else {
            throw ChainFailure(height: head.height, transactionIndex: nil, logIndex: nil,
                               // Whole values: the record's damage may lie past the first bytes of the hash (found by black-box testing).
                               reason: "the store's head record (block \(head.blockHash.hexString), log size \(head.logSize), root \(head.logRoot.hexString)) "
                                   + "does not match its last block (\(headHash.hexString), log size \(transactions), root \(logRoot.hexString))")
        }
    }
}

/// Checks a whole chain from genesis: links, certificates, every transaction's signature,
/// signer and role, replay guards and references, score updates (inputs complete and
/// preceding, recomputed exactly: docs/SCORING.md §7), block transaction roots, global log
/// roots and checkpoints. Signatures are checked on all cores; memory stays flat (per-block
/// buffers plus 64-bit-keyed indexes of ids and nonces).
public final class ChainVerifier {
    public let genesis: Genesis
    private let validator: TransactionValidator
    private let parallelism: Int

    public init(genesis: Genesis, parallelism: Int = ProcessInfo.processInfo.activeProcessorCount,
                scoreRules: any ScoreRules = ScoringRules()) {
        self.genesis = genesis
        self.validator = TransactionValidator(genesis: genesis, scoreRules: scoreRules, policyRules: PolicyRules())
        self.parallelism = max(1, parallelism)
    }

    /// Verifies `source`; `progress(blocks, transactions)` is called after each block.
    /// `expectedTransactions` (when known) sizes the indexes once instead of growing them.
    /// `mustReach`: checkpoints the caller trusts (verified against the genesis): a block must
    /// end at each one's log size with its root. A copy that stops at a block boundary is
    /// otherwise a valid chain, so only this shows that no block after it was left out.
    public func verify(_ source: inout some BlockSource, expectedTransactions: Int = 0, mustReach: [Checkpoint] = [],
                       progress: ((UInt64, UInt64) -> Void)? = nil) throws -> ChainSummary {
        var summary = ChainSummary()
        var trusted: [UInt64: Hash] = [:]
        // The block each trusted checkpoint names (its extension line), with its size and root:
        // that block must end there. The line was not checked, so a validly signed checkpoint
        // naming another block than the chain's at that size passed (found by black-box
        // testing, 2026-12-06).
        var trustedBlocks: [UInt64: Checkpoint] = [:]
        for c in mustReach {
            if let other = trusted[c.size], other != c.rootHash {
                throw ChainFailure(height: 0, transactionIndex: nil, logIndex: nil,
                                   reason: "two trusted checkpoints of log size \(c.size) name different roots: the log was forked (keep both notes as evidence)")
            }
            trusted[c.size] = c.rootHash
            if let commit = c.commit {
                if let other = trustedBlocks[commit.height], other.size != c.size || other.rootHash != c.rootHash {
                    throw ChainFailure(height: commit.height, transactionIndex: nil, logIndex: nil,
                                       reason: "two trusted checkpoints name block \(commit.height) with different log sizes or roots: the chain was forked (keep both notes as evidence)")
                }
                trustedBlocks[commit.height] = c
            }
        }
        var absent = Set<HashKey>()
        var lastHadCheckpoint = false
        summary.genesisHash = genesis.hash
        summary.chainID = genesis.chainID
        let state = VerifiedState(capacity: expectedTransactions, fetch: { [source] in try source.verifiedTransaction(at: $0) })
        for model in genesis.models {
            do {
                let identity = try validator.scoreRules!.modelIdentity(model.document)
                guard identity.name == model.name, identity.version == model.version else {
                    throw LedgerError(.invalidGenesis, "it declares \(identity.name) version \(identity.version)")
                }
            } catch {
                throw ChainFailure(height: 0, transactionIndex: nil, logIndex: nil,
                                   reason: "genesis model \(model.name) version \(model.version) is not valid: \(error)")
            }
            summary.modelsInstalled += 1
        }
        // Genesis policies by the rule an install_policy meets: a hand-written genesis holding a
        // policy that returns raw fields to a bank was "intact" here, while every node refused to
        // load it (found by black-box testing, 2026-12-07).
        for policy in genesis.policies {
            do {
                let identity = try PolicyRules().policyIdentity(policy.document, genesis: genesis)
                guard identity.name == policy.name, identity.version == policy.version else {
                    throw LedgerError(.invalidGenesis, "it declares \(identity.name) version \(identity.version)")
                }
            } catch {
                throw ChainFailure(height: 0, transactionIndex: nil, logIndex: nil,
                                   reason: "genesis policy \(policy.name) version \(policy.version) is not one validators would install: \(error)")
            }
        }
        var previousHash = genesis.hash
        var previousTimestamp: UInt64 = 0
        var frontier = MerkleFrontier()
        var expectedHeight: UInt64 = 1
        while let block = try nextBlock(&source, expectedHeight) {
            let height = block.height
            // The block's first log index, taken now: the frontier grows as its transactions are checked.
            let firstLogIndex = frontier.size
            func fail(_ reason: String, tx: Int? = nil) -> ChainFailure {
                ChainFailure(height: height, transactionIndex: tx, logIndex: tx.map { firstLogIndex + UInt64($0) }, reason: reason)
            }
            let header: BlockHeader
            do { header = try BlockHeader.decode(block.header) } catch { throw fail("header does not decode: \(error)") }
            guard header.height == expectedHeight else { throw fail("header says height \(header.height), expected \(expectedHeight) (blocks reordered?)") }
            guard header.chainID == genesis.chainID else { throw fail("header names chain \(header.chainID), genesis is \(genesis.chainID)") }
            guard header.previousHash == previousHash else {
                throw fail(height == 1 ? "does not link to the genesis hash" : "does not link to block \(height - 1) (previous hash mismatch)")
            }
            guard header.timestampMillis >= previousTimestamp else { throw fail("timestamp goes backwards") }
            // What every validator checks before it votes (ConsensusNode.check): a quorum that
            // certified otherwise broke the protocol, and the chain is not one honest nodes wrote.
            guard genesis.member(header.proposer)?.has(.validator) == true else {
                throw fail("proposer \(header.proposer) is not a validator in the genesis")
            }
            guard header.transactionCount > 0 else { throw fail("block holds no transactions (validators never certify an empty block)") }
            guard header.transactionCount <= genesis.limits.maxBlockTransactions else {
                throw fail("header counts \(header.transactionCount) transactions, genesis allows at most \(genesis.limits.maxBlockTransactions) in a block")
            }
            guard Int(header.transactionCount) == block.transactions.count else {
                throw fail("header counts \(header.transactionCount) transactions, block holds \(block.transactions.count)")
            }
            guard header.firstLogIndex == frontier.size else {
                throw fail("header places the block at log index \(header.firstLogIndex), the log is \(frontier.size) long")
            }
            guard let raw = block.certificate else { throw fail("has no commit certificate") }
            let certificate: CommitCertificate
            do { certificate = try CommitCertificate.decode(raw) } catch { throw fail("commit certificate does not decode: \(error)") }
            do { try certificate.verify(header: header, genesis: genesis) } catch { throw fail("\(error)") }
            summary.certificatesChecked += 1

            // Decode and check signatures in parallel; report the lowest failing index.
            let decoded = try checkTransactions(block, fail: fail)
            var tree = InMemoryMerkleTree()
            state.blockStart = header.firstLogIndex
            // As consensus does: a block may not repeat a transaction or a signer's nonce, and
            // its transactions see only the log before the block (not each other).
            var blockIDs = Set<Hash>(minimumCapacity: decoded.count)
            var blockNonces = Set<String>(minimumCapacity: decoded.count)
            var blockClaims = BlockClaims(certified: true)
            for (i, item) in decoded.enumerated() {
                let tx = item.transaction
                guard blockIDs.insert(tx.id).inserted else {
                    throw fail("transaction \(tx.id.hexString) appears twice in the block", tx: i)
                }
                guard blockNonces.insert("\(tx.header.signer)/\(tx.header.nonce)").inserted else {
                    throw fail("nonce \(tx.header.nonce) of \(tx.header.signer) is used twice in the block (replayed transaction?)", tx: i)
                }
                if let claim = blockClaims.conflict(tx) {
                    throw fail("\(claim) is claimed twice in the block (one request answered twice, one model or policy installed twice, one sealed payload in two records, a record corrected and erased together, or revoked and amended again)", tx: i)
                }
                blockClaims.take(tx)
                do { try validator.checkStateful(tx, state: state, certified: true) } catch { throw fail("\(error)", tx: i) }
                switch tx.body {
                case .queryRecord(let q):
                    let why: String?
                    do { why = try validator.consentStood(q, answeredBy: tx.header.signer, state: state) } catch { throw fail("\(error)", tx: i) }
                    if let why {
                        summary.answersWithoutStandingConsent += 1
                        if summary.answersWithoutStandingConsentFirst.count < 10 {
                            summary.answersWithoutStandingConsentFirst.append((logIndex: frontier.size, reason: why))
                        }
                    }
                case .scoreUpdate(let s):
                    summary.scoreUpdatesChecked += 1
                    summary.scoreInputsChecked += UInt64(s.inputs.count)
                case .governance(let g) where g.action == .installModel:
                    summary.modelsInstalled += 1
                case .governance(let g) where g.action == .eraseRecords:
                    for id in g.erasedRecords {
                        absent.remove(HashKey(id))
                        // The chain is intact, but this copy did not carry the erasure out: it still
                        // holds the wrapped keys that open the payload the members agreed to destroy.
                        if try source.holdsEnvelope(of: id) {
                            throw fail("record \(id.hexString) is erased by this transaction, but this copy still holds its payload envelope (the erasure was not carried out here)", tx: i)
                        }
                    }
                default: break
                }
                if try state.contains(id: tx.id) { throw fail("transaction \(tx.id.hexString) appears twice in the chain", tx: i) }
                let logIndex = frontier.size
                do { try state.record(tx, logIndex: logIndex) } catch { throw fail("\(error)", tx: i) }
                tree.append(leafHash: tx.id)
                frontier.append(leafHash: tx.id)
                if item.envelopeShredded { summary.envelopesShredded += 1; absent.insert(HashKey(tx.id)) }
            }
            guard tree.root == header.transactionsRoot else { throw fail("transactions do not hash to the header's transactions root") }
            guard frontier.size == header.logSize, frontier.root == header.logRoot else {
                throw fail("global log root after the block is \(frontier.root.hexString.prefix(16))…, header says \(header.logRoot.hexString.prefix(16))…")
            }
            if let note = block.checkpoint {
                let checkpoint: Checkpoint
                do { (checkpoint, _) = try Checkpoint.verify(signedNote: note, genesis: genesis) } catch { throw fail("checkpoint: \(error)") }
                guard checkpoint.size == header.logSize, checkpoint.rootHash == header.logRoot else {
                    throw fail("checkpoint (size \(checkpoint.size)) does not match the block's log size and root")
                }
                // Written with the certificate from the same precommits: one block, one round.
                guard checkpoint.namesCommit(of: certificate) else {
                    throw fail("checkpoint names \(checkpoint.commit.map { "block \($0.height) round \($0.round)" } ?? "no block and round"), the certificate block \(header.height) round \(certificate.round ?? 0)")
                }
                summary.checkpointsChecked += 1
            }
            if let named = trustedBlocks.removeValue(forKey: header.height) {
                guard named.size == header.logSize, named.rootHash == header.logRoot else {
                    throw fail("the trusted checkpoint of log size \(named.size) and root \(named.rootHash.hexString.prefix(16))… names block \(header.height), but this chain's block \(header.height) ends at log size \(header.logSize) with root \(header.logRoot.hexString.prefix(16))…: this chain is not the one the checkpoint's signers certified")
                }
                // Its round is not compared with this chain's certificate: each node decides a block
                // in the round it first sees a quorum of precommits, and stores its own certificate
                // and checkpoint from them, so honest nodes' checkpoints of one block can name
                // different rounds (found in review, 2026-12-07).
            }
            lastHadCheckpoint = block.checkpoint != nil
            if let root = trusted.removeValue(forKey: header.logSize) {
                guard root == header.logRoot else {
                    throw fail("the log root at size \(header.logSize) is \(header.logRoot.hexString.prefix(16))…, the trusted checkpoint of that size says \(root.hexString.prefix(16))…: this chain is not the one the checkpoint's signers certified")
                }
                summary.checkpointsReached += 1
            }
            state.recordBlock(logSize: header.logSize, timestampMillis: header.timestampMillis)
            try source.didVerify(block, ids: decoded.map(\.transaction.id), firstLogIndex: header.firstLogIndex)
            previousHash = header.hash
            previousTimestamp = header.timestampMillis
            summary.blocks += 1
            summary.transactions += UInt64(decoded.count)
            summary.signaturesChecked += UInt64(decoded.count) + UInt64(block.certificate == nil ? 0 : 1)
            expectedHeight += 1
            progress?(summary.blocks, summary.transactions)
        }
        // The head's checkpoint, which a node needs to serve its store (it refuses one without:
        // "block N has no checkpoint"), so the verifier does too: a store or export missing it
        // passed as intact (found by black-box testing, 2026-12-07).
        if summary.blocks > 0, !lastHadCheckpoint {
            throw ChainFailure(height: expectedHeight - 1, transactionIndex: nil, logIndex: nil,
                               reason: "block \(expectedHeight - 1), the head, has no checkpoint: each block is stored with the checkpoint its validators cosigned, and a node refuses to serve a store whose head has none")
        }
        if let height = trustedBlocks.keys.min(), trusted.isEmpty {
            // Every trusted size was reached with its root, and blocks are never empty, so each
            // size ends exactly one block: a checkpoint naming another block contradicts itself
            // (its signers signed it so). No block is missing (found by an independent verifier:
            // this was reported as blocks missing from the end).
            let named = trustedBlocks[height]!
            throw ChainFailure(height: expectedHeight, transactionIndex: nil, logIndex: nil,
                               reason: "the trusted checkpoint of log size \(named.size) names block \(height), but this chain reaches that size, with that root, "
                                + "at another block and ends at block \(expectedHeight - 1): the checkpoint's block line contradicts its size")
        }
        if let size = trusted.keys.min() {
            throw ChainFailure(height: expectedHeight, transactionIndex: nil, logIndex: nil,
                               reason: size > frontier.size
                                ? "the chain ends at log size \(frontier.size), short of the trusted checkpoint of size \(size): blocks are missing from its end (withheld, or the copy was made before that checkpoint: take the checkpoint first, then the export)"
                                : "no block ends at log size \(size), the trusted checkpoint's size: it is not a checkpoint of this chain")
        }
        summary.headHash = previousHash
        summary.logRoot = frontier.root
        summary.envelopesMissing = UInt64(absent.count)
        return summary
    }

    private func nextBlock(_ source: inout some BlockSource, _ height: UInt64) throws -> RawBlock? {
        do { return try source.nextBlock() } catch {
            throw ChainFailure(height: height, transactionIndex: nil, logIndex: nil, reason: "\(error)")
        }
    }

    struct Checked: Sendable {
        let transaction: Transaction
        let envelopeShredded: Bool
    }

    private func checkTransactions(_ block: RawBlock, fail: (String, Int?) -> ChainFailure) throws -> [Checked] {
        let count = block.transactions.count
        let storage = UnsafeMutableBufferPointer<Result<Checked, any Error>?>.allocate(capacity: count)
        storage.initialize(repeating: nil)
        defer { _ = storage.deinitialize(); storage.deallocate() }
        // Each index is written by exactly one worker and read after all have finished.
        nonisolated(unsafe) let results = storage
        let validator = self.validator
        let limit = genesis.limits
        let chunks = min(count, parallelism * 4)
        if chunks > 0 {
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                var i = chunk * count / chunks
                let end = (chunk + 1) * count / chunks
                while i < end {
                    let raw = block.transactions[i]
                    results[i] = Result {
                        let tx = try Transaction.decode(raw.transaction, maxBytes: limit.maxTransactionBytes)
                        let envelope = try raw.envelope.map { try Envelope.decode($0, maxBytes: limit.maxEnvelopeBytes) }
                        try validator.checkStateless(Submission(transaction: tx, envelope: envelope), envelopeMayBeShredded: true)
                        return Checked(transaction: tx, envelopeShredded: tx.body.envelopedRecord != nil && envelope == nil)
                    }
                    i += 1
                }
            }
        }
        var out: [Checked] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            switch results[i]! {
            case .success(let c): out.append(c)
            case .failure(let e): throw fail("\(e)", i)
            }
        }
        return out
    }
}

/// What the verifier has seen: transaction ids and replay guards keyed by 64-bit prefixes
/// (8 bytes of memory each plus the table), confirmed exactly against the stored bytes.
final class VerifiedState: LedgerStateReader {
    private var ids: [UInt64: UInt64] = [:]
    private var idOverflow: [Hash: UInt64] = [:]
    /// Records by the first 8 bytes of their payload commitment; the overflow map holds those
    /// whose slot another commitment took.
    private var commitments: [UInt64: UInt64] = [:]
    private var commitmentOverflow: [Hash: UInt64] = [:]
    /// Log indexes of corrections by the first 8 bytes of their target's id (few: confirmed on reading).
    private var correctionsByTarget: [UInt64: [UInt64]] = [:]
    private var nonces: [UInt64: UInt64] = [:]
    private var nonceOverflow: [String: UInt64] = [:]
    /// (requester, request nonce) of query records, as a validator's query index holds them:
    /// every record except refusals of requests never shown to come from their requester.
    private var requests: [UInt64: UInt64] = [:]
    private var requestOverflow: [String: UInt64] = [:]
    private let fetch: (UInt64) throws -> [UInt8]?
    /// Log indexes of each subject's attestations and amendments (revocations under their target's subject).
    private var subjects: [SubjectKey: [UInt64]] = [:]
    /// Log indexes of the consents (grants and revocations) about each subject to each grantee.
    private var consentIndexes: [ConsentKey: [UInt64]] = [:]
    /// Log size after, and timestamp of, each verified block.
    private var blockEnds: [UInt64] = []
    private var blockTimes: [UInt64] = []
    private var models: [Hash: InstalledModel] = [:]
    private var policies: [Hash: InstalledPolicy] = [:]
    /// First log index of the block being checked: the committed log its transactions see.
    var blockStart: UInt64 = 0

    /// A USCC's 18 ASCII characters, 7 bits each, in two words: exact, no hashing.
    struct SubjectKey: Hashable {
        let high: UInt64, low: UInt64
        init(_ subject: USCC) {
            var h: UInt64 = 0, l: UInt64 = 0
            for (i, b) in subject.code.utf8.enumerated() {
                if i < 9 { h = h << 7 | UInt64(b & 0x7F) } else { l = l << 7 | UInt64(b & 0x7F) }
            }
            high = h; low = l
        }
    }

    struct ConsentKey: Hashable {
        let subject: SubjectKey, grantee: String
    }

    init(capacity: Int, fetch: @escaping (UInt64) throws -> [UInt8]?) {
        self.fetch = fetch
        ids.reserveCapacity(capacity)
        nonces.reserveCapacity(capacity)
    }

    static func prefix(_ h: Hash) -> UInt64 { h.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
    static func nonceKey(_ signer: String, _ nonce: UInt64) -> UInt64 {
        var w = ByteWriter(); w.string8(signer); w.u64(nonce)
        return prefix(SHA256.hash(w.bytes))
    }
    static func requestKey(_ requester: String, _ nonce: UInt64) -> UInt64 {
        var w = ByteWriter(); w.string8("query-request"); w.string8(requester); w.u64(nonce)
        return prefix(SHA256.hash(w.bytes))
    }

    /// The verified transaction at `logIndex`; an index the verifier recorded must be there.
    private func load(_ logIndex: UInt64) throws -> Transaction {
        guard let raw = try fetch(logIndex) else {
            throw LedgerError(.notFound, "verified transaction at log index \(logIndex) is missing from the source")
        }
        return try Transaction.decode(raw, maxBytes: Int.max)
    }

    /// Whether `logIndex` is committed for the block being checked (before its first index).
    private func committed(_ logIndex: UInt64?) -> Bool { logIndex.map { $0 < blockStart } ?? true }

    func record(_ tx: Transaction, logIndex: UInt64) throws {
        switch tx.body {
        case .attestation(let a):
            subjects[SubjectKey(a.subject), default: []].append(logIndex)
        case .amendment(let a):
            let subject = try a.replacement?.subject ?? committedTransaction(id: a.target)?.body.subject
            if let subject { subjects[SubjectKey(subject), default: []].append(logIndex) }
            if a.action == .correction { correctionsByTarget[Self.prefix(a.target), default: []].append(logIndex) }
        case .consent(let c):
            consentIndexes[ConsentKey(subject: SubjectKey(c.subject), grantee: c.grantee), default: []].append(logIndex)
        case .governance(let g) where g.action == .installModel:
            let m = InstalledModel(name: g.name, version: g.version, document: g.document, logIndex: logIndex)
            models[m.hash] = m
        case .governance(let g) where g.action == .installPolicy:
            let p = InstalledPolicy(name: g.name, version: g.version, document: g.document, logIndex: logIndex)
            policies[p.hash] = p
        case .queryRecord(let q) where q.spentRequestNonce != nil:
            // Only records that use up their nonce, as validation rules; the ledger holds at most
            // one per request. It is kept in the overflow map when a different request holds
            // the 64-bit slot.
            let k = Self.requestKey(q.requester, q.requestNonce)
            if let first = requests[k] {
                // A holder in this block is another request (one request's records cannot share a
                // block: its claims are exclusive), and an export source cannot read it back yet.
                if first < blockStart, case .queryRecord(let held) = try load(first).body,
                   held.requester == q.requester, held.requestNonce == q.requestNonce {
                    break
                }
                if requestOverflow["\(q.requester)/\(q.requestNonce)"] == nil { requestOverflow["\(q.requester)/\(q.requestNonce)"] = logIndex }
            } else {
                requests[k] = logIndex
            }
        default:
            break
        }
        let p = Self.prefix(tx.id)
        if ids[p] == nil { ids[p] = logIndex } else { idOverflow[tx.id] = logIndex }
        if let c = tx.body.envelopedRecord?.payloadCommitment {
            let k = Self.prefix(c)
            if commitments[k] == nil { commitments[k] = logIndex } else { commitmentOverflow[c] = logIndex }
        }
        let n = Self.nonceKey(tx.header.signer, tx.header.nonce)
        if nonces[n] == nil { nonces[n] = logIndex } else { nonceOverflow["\(tx.header.signer)/\(tx.header.nonce)"] = logIndex }
    }

    func contains(id: Hash) throws -> Bool { try committedTransaction(id: id) != nil }

    func recordBlock(logSize: UInt64, timestampMillis: UInt64) {
        blockEnds.append(logSize)
        blockTimes.append(timestampMillis)
    }

    func committedLogSize() throws -> UInt64 { blockStart }

    func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        var out: [LoggedTransaction] = []
        for index in subjects[SubjectKey(subject)] ?? [] {
            guard index < logSize, index < blockStart, out.count < limit else { break }
            out.append(LoggedTransaction(logIndex: index, transaction: try load(index)))
        }
        return out
    }

    /// Blocks are verified from height 1: the i-th one recorded is at height i + 1.
    func committedLogSize(atHeight height: UInt64) throws -> UInt64? {
        guard height > 0 else { return 0 }
        return height <= UInt64(blockEnds.count) ? blockEnds[Int(height - 1)] : nil
    }

    func consents(of subject: USCC, grantee: String, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        let all = consentIndexes[ConsentKey(subject: SubjectKey(subject), grantee: grantee)] ?? []
        // Ascending: those below the end are a prefix; the newest `limit` of them, oldest first.
        let stop = Self.firstIndex(in: all, notBelow: min(logSize, blockStart))
        return try all[max(0, stop - limit)..<stop].map { LoggedTransaction(logIndex: $0, transaction: try load($0)) }
    }

    func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64? {
        // The first verified block whose log size reaches `logSize`.
        let i = Self.firstIndex(in: blockEnds, notBelow: logSize)
        return i < blockEnds.count && logSize >= 1 ? blockTimes[i] : nil
    }

    /// In an ascending array, the index of the first value at least `value` (the count if none).
    static func firstIndex(in sorted: [UInt64], notBelow value: UInt64) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] >= value { high = mid } else { low = mid + 1 }
        }
        return low
    }

    // Models, policies, transactions and nonces of the block being checked are not visible
    // to it (within a block, repeats are caught by the verifier's per-block sets).
    func installedModel(hash: Hash) throws -> InstalledModel? { models[hash].flatMap { committed($0.logIndex) ? $0 : nil } }

    func installedModels() throws -> [InstalledModel] {
        models.values.filter { committed($0.logIndex) }.sorted { $0.logIndex! < $1.logIndex! }
    }

    func installedPolicy(hash: Hash) throws -> InstalledPolicy? { policies[hash].flatMap { committed($0.logIndex) ? $0 : nil } }

    func installedPolicies() throws -> [InstalledPolicy] {
        policies.values.filter { committed($0.logIndex) }.sorted { $0.logIndex! < $1.logIndex! }
    }

    func committedTransaction(id: Hash) throws -> Transaction? {
        if let i = idOverflow[id] { return committed(i) ? try load(i) : nil }
        guard let i = ids[Self.prefix(id)], committed(i) else { return nil }
        let tx = try load(i)
        return tx.id == id ? tx : nil
    }

    func payloadCommitmentHolder(_ commitment: Hash) throws -> Hash? {
        if let i = commitmentOverflow[commitment], committed(i) { return try load(i).id }
        guard let i = commitments[Self.prefix(commitment)], committed(i) else { return nil }
        let tx = try load(i)
        return tx.body.envelopedRecord?.payloadCommitment == commitment ? tx.id : nil
    }

    func corrections(of record: Hash, limit: Int) throws -> [Hash] {
        var found: [Hash] = []
        for index in correctionsByTarget[Self.prefix(record)] ?? [] where committed(index) && found.count < limit {
            let tx = try load(index)
            if case .amendment(let a) = tx.body, a.target == record { found.append(tx.id) }
        }
        return found
    }

    /// As a validator's query index answers it, from the records verified so far.
    func queryNonceUsed(requester: String, nonce: UInt64) throws -> Bool {
        if let i = requestOverflow["\(requester)/\(nonce)"], committed(i) { return true }
        guard let i = requests[Self.requestKey(requester, nonce)], committed(i),
              case .queryRecord(let q) = try load(i).body else { return false }
        return q.requester == requester && q.requestNonce == nonce
    }

    func isNonceUsed(signer: String, nonce: UInt64) throws -> Bool {
        if let i = nonceOverflow["\(signer)/\(nonce)"], committed(i) { return true }
        guard let i = nonces[Self.nonceKey(signer, nonce)], committed(i) else { return false }
        let tx = try load(i)
        return tx.header.signer == signer && tx.header.nonce == nonce
    }
}
