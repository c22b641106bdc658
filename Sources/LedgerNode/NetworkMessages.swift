import Consensus
import LedgerCore
import LedgerCrypto

/// A block as proposed: its header and its transactions with their envelopes.
public struct CandidateBlock: Sendable {
    public let header: BlockHeader
    public let submissions: [Submission]
    public var hash: Hash { header.hash }

    public init(header: BlockHeader, submissions: [Submission]) {
        self.header = header; self.submissions = submissions
    }

    func encode(_ w: inout ByteWriter) {
        w.bytes32(header.encoded)
        NetMessage.encode(submissions, &w)
    }

    /// The length of `encode`'s output, without encoding.
    var encodedSize: Int {
        var n = 4 + header.encoded.count + 4
        for s in submissions { n += 4 + s.transaction.encoded.count + 1 + (s.envelope.map { 4 + $0.encoded.count } ?? 0) }
        return n
    }

    static func decode(_ r: inout ByteReader, limits: Limits, known: NetMessage.Known? = nil) throws -> CandidateBlock {
        let header = try BlockHeader.decode(try r.bytes32("block.header", max: 1024))
        let submissions = try NetMessage.decodeSubmissions(&r, limits: limits, max: limits.maxBlockTransactions, known: known)
        guard submissions.count == Int(header.transactionCount) else {
            throw LedgerError(.invalidBlock, "block \(header.height) header counts \(header.transactionCount) transactions, carries \(submissions.count)")
        }
        return CandidateBlock(header: header, submissions: submissions)
    }
}

/// A committed block as served to a peer catching up.
public struct CommittedBlock: Sendable {
    public let block: CandidateBlock
    public let certificate: CommitCertificate
    public let checkpoint: String

    /// The bytes this block takes in a `blocks` message: content, certificate and checkpoint.
    var encodedSize: Int { block.encodedSize + 4 + certificate.encoded.count + 4 + checkpoint.utf8.count }
}

/// Messages between nodes (docs/CONSENSUS.md §Wire). One message per P2P frame; the first
/// byte is the type. Decoding is strict and bounded by the genesis limits.
public enum NetMessage: Sendable {
    case proposal(Proposal, CandidateBlock?)
    case vote(Vote)
    case transactions([Submission])
    case status(height: UInt64, headHash: Hash)
    case blockRequest(from: UInt64, count: UInt16)
    case blocks([CommittedBlock])
    case fetchBlock(Hash)
    case blockContent(CandidateBlock)
    /// A scorer asks another to endorse a score update (carried unendorsed in a signed transaction).
    case endorseRequest(Transaction)
    /// The endorsement of the score update carried by transaction `carrier`.
    case endorsement(carrier: Hash, signature: MemberSignature)

    public static let maxBlocksPerResponse = 32
    public static let maxGossipBatch = 5_000
    /// Bytes a submission takes in a message beyond its transaction and envelope, at most: the
    /// transaction's length, the envelope flag and the envelope's length.
    static let submissionOverhead = 9
    /// Bytes of a `blocks` message before its blocks: the type and the block count.
    static let blocksMessageHeaderBytes = 3
    /// An upper bound on what a block-carrying message (proposal, block content, or a `blocks`
    /// reply holding one block) adds to the block's submissions, for `validators` validators:
    /// 4 KiB for the message type and counts, the signed proposal (≤ 400 bytes) and the header
    /// (≤ 1 KiB); 1 KiB per validator for its entry in the certificate (≤ 324 bytes) and its
    /// checkpoint signature line (≤ 352 bytes).
    static func blockMessageOverhead(validators: Int) -> Int { (4 << 10) + validators * (1 << 10) }

    public var name: String {
        switch self {
        case .proposal: return "proposal"
        case .vote: return "vote"
        case .transactions: return "transactions"
        case .status: return "status"
        case .blockRequest: return "block_request"
        case .blocks: return "blocks"
        case .fetchBlock: return "fetch_block"
        case .blockContent: return "block_content"
        case .endorseRequest: return "endorse_request"
        case .endorsement: return "endorsement"
        }
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 256)
        switch self {
        case .proposal(let p, let block):
            w.u8(1); p.encode(&w)
            if let block { w.u8(1); block.encode(&w) } else { w.u8(0) }
        case .vote(let v):
            w.u8(2); v.encode(&w)
        case .transactions(let s):
            w.u8(3); Self.encode(s, &w)
        case .status(let h, let hash):
            w.u8(4); w.u64(h); w.raw(hash)
        case .blockRequest(let from, let count):
            w.u8(5); w.u64(from); w.u16(count)
        case .blocks(let list):
            w.u8(6); w.u16(UInt16(list.count))
            for b in list {
                b.block.encode(&w)
                w.bytes32(b.certificate.encoded)
                w.bytes32(Array(b.checkpoint.utf8))
            }
        case .fetchBlock(let hash):
            w.u8(7); w.raw(hash)
        case .blockContent(let block):
            w.u8(8); block.encode(&w)
        case .endorseRequest(let tx):
            w.u8(9); w.bytes32(tx.encoded)
        case .endorsement(let carrier, let s):
            w.u8(10); w.raw(carrier); w.string8(s.member); w.u32(s.keyID); w.raw(s.signature)
        }
        return w.bytes
    }

    static func encode(_ submissions: [Submission], _ w: inout ByteWriter) {
        w.u32(UInt32(submissions.count))
        for s in submissions {
            w.bytes32(s.transaction.encoded)
            if let e = s.envelope { w.u8(1); w.bytes32(e.encoded) } else { w.u8(0) }
        }
    }

    /// Finds a transaction this node already holds decoded (its mempool) by id.
    typealias Known = @Sendable (Hash) -> Submission?

    /// With `known` (block-carrying messages), a transaction (and envelope) whose bytes equal
    /// one the node already holds is taken from there instead of being decoded again: a proposal
    /// carries the transactions its receivers were gossiped moments before. Equal bytes decode to the same values, so
    /// the outcome is the same; only the id is hashed.
    static func decodeSubmissions(_ r: inout ByteReader, limits: Limits, max: Int, known: Known? = nil) throws -> [Submission] {
        let n = Int(try r.u32("submissions.count"))
        guard n <= max else { throw LedgerError(.fieldTooLarge, "message carries \(n) transactions, limit \(max)") }
        var out: [Submission] = []
        // Each takes at least 5 bytes (a length and the envelope flag): a count with nothing
        // behind it reserves nothing.
        out.reserveCapacity(min(n, r.remaining / 5))
        for i in 0..<n {
            let txBytes = try r.bytes32("submissions[\(i)].transaction", max: limits.maxTransactionBytes)
            let held = known.flatMap { $0(Transaction.id(ofEncoded: txBytes)) }.flatMap { $0.transaction.encoded == txBytes ? $0 : nil }
            let tx = try held?.transaction ?? Transaction.decode(txBytes, maxBytes: limits.maxTransactionBytes)
            let flag = try r.u8("submissions[\(i)].has_envelope")
            guard flag <= 1 else { throw LedgerError(.malformed, "submissions[\(i)].has_envelope is \(flag)") }
            var envelope: Envelope? = nil
            if flag == 1 {
                let bytes = try r.bytes32("submissions[\(i)].envelope", max: limits.maxEnvelopeBytes)
                if let e = held?.envelope, e.encoded == bytes { envelope = e }
                else { envelope = try Envelope.decode(bytes, maxBytes: limits.maxEnvelopeBytes) }
            }
            out.append(Submission(transaction: tx, envelope: envelope))
        }
        return out
    }

    public static func decode(_ bytes: [UInt8], limits: Limits) throws -> NetMessage {
        try decode(bytes, limits: limits, known: nil)
    }

    static func decode(_ bytes: [UInt8], limits: Limits, known: Known?) throws -> NetMessage {
        var r = ByteReader(bytes, context: "peer message")
        let type = try r.u8("type")
        let m: NetMessage
        switch type {
        case 1:
            let p = try Proposal.decode(&r)
            let has = try r.u8("proposal.has_block")
            guard has <= 1 else { throw LedgerError(.malformed, "proposal.has_block is \(has)") }
            m = .proposal(p, has == 1 ? try CandidateBlock.decode(&r, limits: limits, known: known) : nil)
        case 2: m = .vote(try Vote.decode(&r))
        // Not for gossip: gossiped transactions are new to the receiver, so the lookup would
        // mostly miss and hash every id twice (once for it, once in decoding).
        case 3: m = .transactions(try decodeSubmissions(&r, limits: limits, max: maxGossipBatch))
        case 4: m = .status(height: try r.u64("status.height"), headHash: try r.raw(32, "status.head_hash"))
        case 5: m = .blockRequest(from: try r.u64("block_request.from"), count: try r.u16("block_request.count"))
        case 6:
            let n = Int(try r.u16("blocks.count"))
            guard n <= maxBlocksPerResponse else { throw LedgerError(.fieldTooLarge, "blocks message carries \(n) blocks, limit \(maxBlocksPerResponse)") }
            var list: [CommittedBlock] = []
            for _ in 0..<n {
                let block = try CandidateBlock.decode(&r, limits: limits)
                let cert = try CommitCertificate.decode(try r.bytes32("blocks.certificate", max: 8_192))
                let note = try r.bytes32("blocks.checkpoint", max: SignedNote.maxBytes)
                list.append(CommittedBlock(block: block, certificate: cert, checkpoint: try SignedNote.text(of: note)))
            }
            m = .blocks(list)
        case 7: m = .fetchBlock(try r.raw(32, "fetch_block.hash"))
        case 8: m = .blockContent(try CandidateBlock.decode(&r, limits: limits, known: known))
        case 9: m = .endorseRequest(try Transaction.decode(try r.bytes32("endorse_request.transaction", max: limits.maxTransactionBytes),
                                                            maxBytes: limits.maxTransactionBytes))
        case 10:
            m = .endorsement(carrier: try r.raw(32, "endorsement.carrier"),
                             signature: MemberSignature(member: try r.string8("endorsement.member", max: FieldLimits.memberID),
                                                        keyID: try r.u32("endorsement.key_id"), signature: try r.raw(64, "endorsement.signature")))
        default:
            throw LedgerError(.unknownKind, "peer message type \(type) is unknown (1-10)")
        }
        try r.expectEnd()
        return m
    }
}

/// A precommit's attachment: the voter's commit-certificate signature over the block, and its
/// cosignature of the checkpoint (log size and root) the block produces.
public struct PrecommitAttachment: Sendable, Equatable {
    public let commitSignature: [UInt8]
    public let logSize: UInt64
    public let logRoot: Hash
    public let checkpointSignature: [UInt8]

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 168)
        w.raw(commitSignature); w.u64(logSize); w.raw(logRoot); w.raw(checkpointSignature)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> PrecommitAttachment {
        var r = ByteReader(bytes, context: "precommit attachment")
        let a = PrecommitAttachment(commitSignature: try r.raw(64, "commit_signature"), logSize: try r.u64("log_size"),
                                    logRoot: try r.raw(32, "log_root"), checkpointSignature: try r.raw(64, "checkpoint_signature"))
        try r.expectEnd()
        return a
    }

    public static func make(header: BlockHeader, round: UInt32, key: Ed25519PrivateKey) -> PrecommitAttachment {
        let commit = key.signature(for: CommitCertificate.message(chainID: header.chainID, height: header.height, round: round, blockHash: header.hash))
        let text = Checkpoint(header: header, round: round).text
        return PrecommitAttachment(commitSignature: commit, logSize: header.logSize, logRoot: header.logRoot,
                                   checkpointSignature: key.signature(for: Array(text.utf8)))
    }

    /// Both signatures are `member`'s and name `header` committed in `round` (the precommit's).
    public func verify(header: BlockHeader, round: UInt32, member: Member) -> Bool {
        guard logSize == header.logSize, logRoot == header.logRoot else { return false }
        let message = CommitCertificate.message(chainID: header.chainID, height: header.height, round: round, blockHash: header.hash)
        let text = Checkpoint(header: header, round: round).text
        return member.signingKey.isValidSignature(commitSignature, for: message)
            && member.signingKey.isValidSignature(checkpointSignature, for: Array(text.utf8))
    }
}
