import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import Logging
import Policy
import Scoring

/// Where a committed transaction sits.
public struct CommitResult: Sendable, Equatable {
    public let id: Hash
    public let height: UInt64
    public let logIndex: UInt64
}

/// The ledger engine of a single-validator (dev) chain: admits transactions, batches them
/// into blocks, commits each block durably, and only then answers the submitters.
public final class Ledger: @unchecked Sendable {
    public let store: ChainStore
    public let validator: TransactionValidator
    public let genesis: Genesis
    /// Takes erased envelopes off the disk after the block erasing them.
    let purger: EnvelopePurger
    let validatorKeys: MemberSecretKeys
    private var lastNonce: UInt64 = 0
    private let validatorMember: Member
    private let clock: @Sendable () -> UInt64
    private let blockInterval: Duration
    let logger: Logger

    private final class Waiter {
        var results: [CommitResult?]
        var remaining: Int
        /// Bytes of the batch's transactions and envelopes.
        let bytes: Int
        let continuation: CheckedContinuation<[CommitResult], any Error>
        init(count: Int, bytes: Int, continuation: CheckedContinuation<[CommitResult], any Error>) {
            results = Array(repeating: nil, count: count)
            remaining = count
            self.bytes = bytes
            self.continuation = continuation
        }
    }

    private struct Pending {
        let submission: Submission
        let waiter: Waiter
        let slot: Int
        /// For an amendment, the original record of its target (its block claim).
        let record: Hash?
    }

    /// Guards the queue and the flags below; the block producer waits on it for work.
    private let lock = NSCondition()
    /// The newest block's timestamp; block timestamps never go back. Used by `commitPending` only.
    private var lastBlockMillis: UInt64?
    /// Admitted batches in arrival order, each batch's entries together; blocks take whole batches.
    private var queue: [Pending] = []
    /// Bytes of the transactions and envelopes in `queue`.
    private var queuedBytes = 0
    /// Set when a block could not be written: the node takes no more transactions until restarted.
    private var writeFailure: StorageError?
    /// The last block refused for lack of space (nothing written), until a block is written:
    /// health reports it, and the node goes on taking transactions, each block refused the same
    /// way until space is freed.
    private var spaceFailure: StorageError?
    /// Transactions queued or being written: a duplicate is refused until they commit or fail.
    private var inFlightIDs = Set<Hash>()
    private var inFlightNonces = Set<NonceKey>()

    /// Whether the transaction is queued or being written.
    func pending(_ id: Hash) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return inFlightIDs.contains(id)
    }
    /// What queued or in-flight transactions claim (`Transaction.blockExclusiveClaims`): models
    /// and policies being installed, payload commitments and request nonces being recorded,
    /// records being corrected or erased. Validators check these only against committed state,
    /// so a second install of the same document, or of the same name and version, a second record
    /// with the same payload commitment, or an erasure of a record with a correction pending, is
    /// refused here until the first commits or fails. In two blocks, the second would make a chain
    /// that verification refuses (or an erasure that leaves a correction's copy of the payload).
    private var inFlightClaims = BlockClaims()
    /// Blocks committed (or failed) since start; lets admission detect a commit during its checks.
    private var committedBlocks: UInt64 = 0
    private var stopped = false
    /// Re-scores every subject after a model install (docs/SCORING.md §8.1); nil unless enabled.
    private var upgrade: UpgradeRescorer?
    let scoreEngine: ScoreEngine
    /// Writes one block durably; the store's `appendBlock` (tests replace it to make writes fail).
    var writeBlock: (_ submissions: [Submission], _ timestampMillis: UInt64) throws -> BlockHeader
    /// Times each block's synced write, for the log and `GET /v1/status`.
    let writeWatch: BlockWriteWatch

    /// A block's transactions and envelopes stay under this many bytes, as a consortium proposer's
    /// do (24 MiB; tests lower it). A batch over it is refused.
    var maxBlockBytes = LedgerClient.maxBatchBytes
    /// Admitted transactions and envelopes waiting for a block are held up to this many bytes
    /// (512 MiB; tests lower it); past it a submission is refused with `mempool_full`. The
    /// transaction count has its own limit in genesis.
    var maxQueuedBytes = 512 << 20

    /// - Parameters:
    ///   - clock: milliseconds since 1970, for block timestamps (injected; tests pass a fixed clock).
    ///   - blockInterval: blocks are committed when transactions are pending, at most one per interval.
    ///   - rescoreStateDirectory: when given, and the member is a scorer and the chain requires no
    ///     score endorsements, every subject is re-scored in the background after a model install
    ///     (docs/SCORING.md §8.1); the directory keeps the `rescore-done` list.
    public init(store: ChainStore, validatorKeys: MemberSecretKeys, clock: @escaping @Sendable () -> UInt64,
                blockInterval: Duration = .milliseconds(200), logger: Logger = Logger(label: "creditledger.ledger"),
                rescoreStateDirectory: String? = nil) throws {
        self.store = store
        self.genesis = store.genesis
        self.validator = TransactionValidator.standard(genesis: store.genesis)
        guard let member = store.genesis.member(validatorKeys.memberID), member.has(.validator),
              member.signingKey == validatorKeys.signing.publicKey else {
            throw LedgerError(.unknownSigner, "key of \(validatorKeys.memberID) is not a validator key in this genesis")
        }
        guard store.genesis.validators.count == 1 else {
            throw LedgerError(.invalidGenesis, "the dev ledger runs one validator; this genesis has \(store.genesis.validators.count) (use `credit-node run`)")
        }
        self.validatorMember = member
        self.validatorKeys = validatorKeys
        self.clock = clock
        self.blockInterval = blockInterval
        self.logger = logger
        purger = EnvelopePurger(store: store, logger: logger)
        self.scoreEngine = ScoreEngine(genesis: store.genesis)
        let signers = [(member, validatorKeys.signing)]
        self.writeWatch = BlockWriteWatch(watching: store, logger: logger)
        self.writeBlock = { submissions, timestamp in
            try store.appendBlock(submissions, timestampMillis: timestamp, proposer: member.id, signers: signers)
        }
        if let dir = rescoreStateDirectory, member.has(.scorer), store.genesis.scoreEndorsementsRequired == 0 {
            upgrade = UpgradeRescorer(host: self, stateDirectory: dir)
        }
    }

    /// Nonces for transactions the node signs itself (query audit records): unique and increasing.
    public func ownNonce() -> UInt64 {
        lock.withLock {
            lastNonce = max(lastNonce + 1, clock() * 1000)
            return lastNonce
        }
    }

    /// The background re-score after a model install, for GET /v1/status (nil when none ran).
    public var rescoreStatus: [String: any Sendable]? { upgrade?.status }

    /// Transactions admitted and waiting for the next block.
    public var queuedCount: Int { lock.withLock { queue.count } }

    /// Why the node stopped taking transactions, if a block could not be written.
    /// A space failure holds only while the disk is still short: a node whose traffic is queries
    /// (their audit records are what would write the next block) was otherwise locked out of
    /// them for good once space was freed (found in review).
    public var writeFailureReason: String? {
        let (write, space) = lock.withLock { (writeFailure, spaceFailure) }
        if let write { return write.reason }
        guard let space else { return nil }
        if store.database.spaceProblem(forWriting: 0) == nil {
            lock.withLock { if spaceFailure == space { spaceFailure = nil } }
            return nil
        }
        return space.reason
    }

    /// Validates all submissions; if any fails nothing is queued (the error names its index).
    /// Returns when every one is committed durably.
    public func submit(_ submissions: [Submission], signedHere: Bool) async throws -> [CommitResult] {
        guard !submissions.isEmpty else { return [] }
        try validator.checkSubmissions(submissions, signedBy: signedHere ? validatorMember : nil)
        let bytes = submissions.reduce(0) { $0 + $1.byteCount }
        guard bytes <= maxBlockBytes else {
            throw LedgerError(.fieldTooLarge, "batch holds \(bytes) bytes of transactions and envelopes; a block holds at most \(maxBlockBytes)")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let waiter = Waiter(count: submissions.count, bytes: bytes, continuation: continuation)
            do {
                try admit(submissions, waiter: waiter, signedHere: signedHere)
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    private func admit(_ submissions: [Submission], waiter: Waiter, signedHere: Bool) throws {
        // Checks against committed state run outside the lock, so requests do not queue behind
        // each other's RocksDB reads. A block committed meanwhile moves `committedBlocks`; the
        // checks are then repeated under the lock, so a nonce that just committed is not admitted twice.
        var checkedAt = lock.withLock { committedBlocks }
        try checkCommittedState(submissions, signedHere: signedHere)
        let records = try submissions.map { try validator.amendedRecord(of: $0.transaction, state: store) }
        try lock.withLock {
            if let writeFailure { throw writeFailure }
            guard !stopped else { throw LedgerError(.mempoolFull, "node is shutting down") }
            guard queue.count + submissions.count <= genesis.limits.maxMempoolTransactions else {
                throw LedgerError(.mempoolFull,
                    "mempool holds \(queue.count) transactions, limit \(genesis.limits.maxMempoolTransactions); retry later")
            }
            guard queuedBytes + waiter.bytes <= maxQueuedBytes else {
                throw LedgerError(.mempoolFull,
                    "mempool holds \(queuedBytes) bytes of transactions and envelopes, limit \(maxQueuedBytes); retry later")
            }
            if checkedAt != committedBlocks {
                try checkCommittedState(submissions, signedHere: signedHere)
                checkedAt = committedBlocks
            }
            var batchIDs = Set<Hash>()
            var batchNonces = Set<NonceKey>()
            var batchClaims = inFlightClaims
            for (i, s) in submissions.enumerated() {
                let tx = s.transaction
                // The same bytes sent again (a client resending after a timeout, as the README
                // advises) are a replay of the pending one, not a conflict with its claims (which
                // were checked first, found by black-box testing).
                let nonce = NonceKey(tx.header)
                if inFlightIDs.contains(tx.id) || !batchIDs.insert(tx.id).inserted {
                    throw BatchError(index: submissions.count > 1 ? i : nil,
                                     error: LedgerError(.replay, "transaction \(tx.id.hexString) (nonce \(tx.header.nonce) of \(tx.header.signer)) was already submitted and is pending"))
                }
                if inFlightNonces.contains(nonce) || !batchNonces.insert(nonce).inserted {
                    throw BatchError(index: submissions.count > 1 ? i : nil,
                                     error: LedgerError(.replay, "nonce \(tx.header.nonce) of \(tx.header.signer) is already used by a pending transaction"))
                }
                if let claim = batchClaims.conflict(tx, record: records[i]) {
                    throw BatchError(index: submissions.count > 1 ? i : nil, error: LedgerError(.conflict, Self.pendingConflict(claim)))
                }
                batchClaims.take(tx, record: records[i])
            }
            for (i, s) in submissions.enumerated() {
                queue.append(Pending(submission: s, waiter: waiter, slot: i, record: records[i]))
            }
            queuedBytes += waiter.bytes
            inFlightIDs.formUnion(batchIDs)
            inFlightNonces.formUnion(batchNonces)
            inFlightClaims = batchClaims
            lock.signal()
        }
    }

    /// Why a transaction whose claim a pending one holds is refused.
    static func pendingConflict(_ claim: String) -> String {
        if claim.hasPrefix("payload commitment") { return "\(claim) is already that of a pending record" }
        if claim.hasPrefix("model") || claim.hasPrefix("policy") { return "\(claim) is already being installed by a pending transaction" }
        if claim.hasPrefix("request nonce") { return "\(claim) is already being recorded by a pending query record" }
        if claim.hasPrefix("record ") { return "\(claim): a pending transaction revokes that record, or amends it beside this revocation; retry once it commits (after a revocation, nothing more of that record is taken)" }
        return "\(claim): a pending transaction corrects, revokes or erases that record; retry once it commits (after a revocation, nothing more of that record is taken)"
    }

    /// Replay guard and references against committed state. A committed transaction always
    /// has its nonce recorded, so the nonce check also refuses resubmitted bytes. This node's
    /// own transactions (`signedHere`) were made from committed state: only their nonce is checked.
    private func checkCommittedState(_ submissions: [Submission], signedHere: Bool) throws {
        for (i, s) in submissions.enumerated() {
            do { try validator.checkAgainstCommitted(s.transaction, state: store, signedHere: signedHere) } catch {
                throw BatchError(index: submissions.count > 1 ? i : nil, error: error)
            }
        }
    }

    /// Runs until the task is cancelled: commits a block whenever transactions are pending.
    ///
    /// The producer is a thread of its own, not a task: a commit blocks on its synced write, and
    /// waking a task would wait for a free cooperative thread (two on this machine class, both
    /// busy evaluating queries under load). Submitters wait for their block on it directly.
    public func runBlockProducer() async {
        upgrade?.resume()
        defer { upgrade?.stop() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                // The thread object outlives its work (it is released as the thread exits, possibly
                // while the process exits); it must not hold the last reference to the ledger, whose
                // release closes the store. So it holds the ledger only while producing.
                let owner = ProducerOwner(self)
                let thread = Thread {
                    owner.take()?.produceBlocks()
                    done.resume()
                }
                thread.name = "creditledger.ledger.commit"
                thread.start()
            }
        } onCancel: {
            lock.withLock { stopped = true; lock.broadcast() }
        }
    }

    private func produceBlocks() {
        var lastBlock = ContinuousClock.now - blockInterval
        while true {
            let stop = lock.withLock { () -> Bool in
                while queue.isEmpty && !stopped { lock.wait() }
                return stopped
            }
            if stop { break }
            // At most one block per interval; a stop cuts the wait short.
            let next = lastBlock + blockInterval
            if ContinuousClock.now < next {
                let wakeAt = Date().addingTimeInterval((next - ContinuousClock.now).inSeconds)
                lock.withLock { while !stopped && Date() < wakeAt { _ = lock.wait(until: wakeAt) } }
            }
            lastBlock = ContinuousClock.now
            commitPending()
        }
        // Graceful stop: new submissions are refused; what was admitted is committed (unless a
        // write failed: then nothing more is written).
        while lock.withLock({ !queue.isEmpty && writeFailure == nil }) { commitPending() }
        failPending(LedgerError(.mempoolFull, "node stopped before the transaction committed"))
    }

    /// Builds, signs and durably writes one block of whole batches from the queue head: a batch
    /// commits in one block or not at all. After a failed write nothing more is written: whether
    /// that block reached the disk is known only after a restart, and a second block at the same
    /// height could contradict it. Every waiting submitter is told so; new ones are refused.
    func commitPending() {
        let batch: [Pending] = lock.withLock {
            guard writeFailure == nil else { return [] }
            // Entries of a batch are contiguous and a batch starts at slot 0 (admitted under one lock).
            var n = 0, bytes = 0
            while n < queue.count {
                let w = queue[n].waiter
                if n > 0, n + w.results.count > genesis.limits.maxBlockTransactions || bytes + w.bytes > maxBlockBytes { break }
                n += w.results.count
                bytes += w.bytes
            }
            let taken = Array(queue.prefix(n))
            queue.removeFirst(n)
            queuedBytes -= bytes
            return taken
        }
        guard !batch.isEmpty else { return }
        let submissions = batch.map(\.submission)
        var committed: BlockHeader? = nil
        var failure: StorageError? = nil
        var rest: [Pending] = []
        var restError: LedgerError? = nil
        do {
            // A block's time never goes back: the last block's is read once per start. A failed
            // read stops the node as a failed write does; it used to count as 0, and a wall clock
            // behind the last block then wrote a block the verifier refuses, for good (found in
            // review, 2026-12-06).
            if lastBlockMillis == nil { lastBlockMillis = try store.blockHeader(height: store.head.height)?.timestampMillis ?? 0 }
            committed = try writeBlock(submissions, max(clock(), lastBlockMillis ?? 0))
            purger.committed(submissions)
            if lock.withLock({ () -> Bool in defer { spaceFailure = nil }; return spaceFailure != nil }) {
                logger.notice("block \(committed!.height) written: there is disk space again")
            }
        } catch let e as StorageError where e.code == .noSpace {
            // Refused before the store saw it: nothing was written, so the node goes on, and its
            // submitters send again (it stopped taking transactions until restarted).
            let height = store.head.height + 1
            let first = lock.withLock { spaceFailure == nil }
            if first { logger.error("block \(height) could not be written: \(e.reason); its transactions were refused, and so is every block until space is freed") }
            failure = StorageError(.noSpace, "block \(height) could not be written: \(e.reason). Its transactions were not recorded: send them again once space is freed")
            lock.withLock { spaceFailure = failure }
        } catch {
            let height = store.head.height + 1
            logger.critical("block \(height) could not be written: \(error); this node takes no more transactions until it is restarted")
            failure = StorageError(.write, "block \(height) could not be written (\(error)). Whether it reached the disk shows after the node restarts (look the transaction up then); until then this node takes no transactions")
            restError = LedgerError(.mempoolFull, "not committed: this node stopped taking transactions when block \(height) could not be written (\(error)); submit again once it is restarted")
            rest = lock.withLock {
                writeFailure = StorageError(.write, "this node stopped taking transactions when block \(height) could not be written (\(error)); it must be restarted")
                defer { queue.removeAll(); queuedBytes = 0 }
                return queue
            }
        }
        var finished: [(Waiter, Result<[CommitResult], any Error>)] = []
        lock.withLock {
            committedBlocks += 1
            for p in rest {
                let tx = p.submission.transaction
                inFlightIDs.remove(tx.id)
                inFlightNonces.remove(NonceKey(tx.header))
                inFlightClaims.release(tx, record: p.record)
                if p.waiter.remaining > 0 {
                    p.waiter.remaining = 0
                    finished.append((p.waiter, .failure(restError!)))
                }
            }
            for (offset, p) in batch.enumerated() {
                let tx = p.submission.transaction
                inFlightIDs.remove(tx.id)
                inFlightNonces.remove(NonceKey(tx.header))
                inFlightClaims.release(tx, record: p.record)
                if let failure {
                    if p.waiter.remaining > 0 {
                        p.waiter.remaining = 0
                        finished.append((p.waiter, .failure(failure)))
                    }
                    continue
                }
                guard p.waiter.remaining > 0 else { continue }
                p.waiter.results[p.slot] = CommitResult(id: tx.id, height: committed!.height,
                                                        logIndex: committed!.firstLogIndex + UInt64(offset))
                p.waiter.remaining -= 1
                if p.waiter.remaining == 0 { finished.append((p.waiter, .success(p.waiter.results.map { $0! }))) }
            }
        }
        for (waiter, result) in finished { waiter.continuation.resume(with: result) }
        if let committed {
            lastBlockMillis = committed.timestampMillis
            upgrade?.committed(submissions, firstLogIndex: committed.firstLogIndex, logSize: committed.logSize)
            logger.debug("committed block \(committed.height) with \(batch.count) transactions, log size \(committed.logSize)")
        }
    }

    private func failPending(_ error: any Error) {
        let rest: [Pending] = lock.withLock {
            stopped = true
            defer { queue.removeAll(); queuedBytes = 0; inFlightIDs.removeAll(); inFlightNonces.removeAll(); inFlightClaims = BlockClaims() }
            return queue
        }
        var seen = Set<ObjectIdentifier>()
        for p in rest where seen.insert(ObjectIdentifier(p.waiter)).inserted && p.waiter.remaining > 0 {
            p.waiter.remaining = 0
            p.waiter.continuation.resume(throwing: error)
        }
    }
}

/// A rejected submission; `index` is the position in a batch, when it came in one.
public struct BatchError: Error, CustomStringConvertible {
    public let index: Int?
    public let error: any Error
    public var description: String { index.map { "transaction \($0): \(error)" } ?? "\(error)" }
}

extension Ledger: RescoreHost {
    var engine: ScoreEngine { scoreEngine }
    var memberID: String { validatorMember.id }
    func isDesignated(_ subject: USCC) -> Bool { true }   // the only scorer that writes
    var hasRoomForRescore: Bool { lock.withLock { queue.count <= genesis.limits.maxMempoolTransactions / 2 } }

    func submitRescored(_ body: ScoreUpdateBody) {
        let nonce = ownNonce()
        let header = TransactionHeader(chainID: genesis.chainID, signer: validatorMember.id, keyID: validatorMember.keyID,
                                       nonce: nonce, issuedAtMillis: clock())
        let s = Submission(transaction: Transaction.sign(header: header, body: .scoreUpdate(body), key: validatorKeys.signing), envelope: nil)
        Task {
            do { _ = try await self.submit([s]) } catch {
                self.logger.warning("score update for \(body.subject) refused: \(error)")
                self.upgrade?.released(body.subject)
            }
        }
    }
}

/// Hands the ledger to the block-producer thread once, then lets go of it.
private final class ProducerOwner: @unchecked Sendable {
    private let lock = NSLock()
    private var ledger: Ledger?
    init(_ ledger: Ledger) { self.ledger = ledger }
    func take() -> Ledger? { lock.withLock { defer { ledger = nil }; return ledger } }
}
