import Foundation
import LedgerCore
import LedgerCrypto

/// Transactions validated and waiting for a block: deduplicated by id and by (signer, nonce),
/// bounded, in arrival order. Submitters wait on their transactions' commit.
public final class Mempool: @unchecked Sendable {
    public struct Full: Error {}

    final class Waiter {
        var results: [CommitResult?]
        var remaining: Int
        let continuation: CheckedContinuation<[CommitResult], any Error>
        init(count: Int, continuation: CheckedContinuation<[CommitResult], any Error>) {
            results = Array(repeating: nil, count: count); remaining = count; self.continuation = continuation
        }
    }

    struct Entry {
        let submission: Submission
        var waiters: [(Waiter, Int)]
        let sequence: UInt64
    }

    public let capacity: Int
    /// Bytes of transactions and envelopes held at most; past it a submission is refused.
    public let capacityBytes: Int
    private var bytes = 0
    private let lock = NSLock()
    private var entries: [HashKey: Entry] = [:]
    /// Arrival order. It may hold removed entries (skipped lazily), and an id removed and then
    /// admitted again is in it twice: only the position whose sequence matches the live entry
    /// counts (the earlier one proposed a transaction twice in a block; found in review, 2026-12-06).
    private var order: [(id: HashKey, sequence: UInt64)] = []
    private var orderHead = 0
    private var nonces: [NonceKey: HashKey] = [:]
    private var sequence: UInt64 = 0
    private var closed = false

    /// Bytes of one submission (transaction and envelope) at most: what a block can hold. A
    /// larger one is refused when submitted and skipped when gossiped.
    public let maxSubmissionBytes: Int

    public init(capacity: Int, capacityBytes: Int = 512 << 20, maxSubmissionBytes: Int = .max) {
        self.capacity = capacity; self.capacityBytes = capacityBytes; self.maxSubmissionBytes = maxSubmissionBytes
    }

    public var count: Int { lock.withLock { entries.count } }
    public var isEmpty: Bool { lock.withLock { entries.isEmpty } }

    public func contains(_ id: Hash) -> Bool { lock.withLock { entries[HashKey(id)] != nil } }

    /// The pending submission with this id, if any.
    func submission(_ id: Hash) -> Submission? { lock.withLock { entries[HashKey(id)]?.submission } }

    /// Adds submissions that passed validation; all or none. With `continuation`, it is resumed
    /// when all are committed (or the mempool drops them). Transactions already pending are
    /// refused when they come with a continuation (a client resubmitting), and skipped silently
    /// when gossiped (`continuation == nil`). Returns the submissions that were new.
    @discardableResult
    func admit(_ submissions: [Submission], continuation: CheckedContinuation<[CommitResult], any Error>?) throws -> [Submission] {
        try admitWaiting(submissions, continuation: continuation).fresh
    }

    /// `admit`, also returning the waiter made for `continuation`, for `stopWaiting`.
    func admitWaiting(_ submissions: [Submission], continuation: CheckedContinuation<[CommitResult], any Error>?) throws -> (fresh: [Submission], waiter: Waiter?) {
        try lock.withLock {
            guard !closed else { throw LedgerError(.mempoolFull, "node is shutting down") }
            var fresh: [Submission] = []
            var batchNonces = Set<NonceKey>()
            for (i, s) in submissions.enumerated() {
                let tx = s.transaction
                let key = NonceKey(tx.header)
                let index = submissions.count > 1 ? i : nil
                guard s.byteCount <= maxSubmissionBytes else {
                    if continuation != nil {
                        throw BatchError(index: index, error: LedgerError(.transactionTooLarge,
                            "transaction and envelope take \(s.byteCount) bytes; a block of this network holds at most \(maxSubmissionBytes) (limits.max_request_bytes bounds a block)"))
                    }
                    continue
                }
                if entries[HashKey(tx.id)] != nil {
                    if continuation != nil { throw BatchError(index: index, error: LedgerError(.replay, "transaction \(tx.id.hexString) was already submitted and is pending")) }
                    continue
                }
                if nonces[key] != nil || !batchNonces.insert(key).inserted {
                    if continuation != nil {
                        let holder = nonces[key].map { " (\($0.bytes.hexString))" } ?? " of this batch"
                        throw BatchError(index: index, error: LedgerError(.replay, "nonce \(tx.header.nonce) of \(tx.header.signer) is already used by a pending transaction\(holder)"))
                    }
                    continue
                }
                fresh.append(s)
            }
            guard entries.count + fresh.count <= capacity else {
                throw LedgerError(.mempoolFull, "mempool holds \(entries.count) transactions, limit \(capacity); retry later")
            }
            let freshBytes = fresh.reduce(0) { $0 + $1.byteCount }
            guard bytes + freshBytes <= capacityBytes else {
                throw LedgerError(.mempoolFull, "mempool holds \(bytes) bytes of transactions and envelopes, limit \(capacityBytes); retry later")
            }
            bytes += freshBytes
            // With a continuation every submission is fresh (duplicates threw above); without one,
            // only the fresh ones are added.
            let waiter = continuation.map { Waiter(count: submissions.count, continuation: $0) }
            for (i, s) in (continuation == nil ? fresh : submissions).enumerated() {
                let id = HashKey(s.transaction.id)
                sequence += 1
                entries[id] = Entry(submission: s, waiters: waiter.map { [($0, i)] } ?? [], sequence: sequence)
                order.append((id, sequence))
                nonces[NonceKey(s.transaction.header)] = id
            }
            return (fresh, waiter)
        }
    }

    /// Ends `waiter`'s wait `after` from now (`stopWaiting`) unless it has ended by then. The
    /// timer holds the waiter weakly: every admitted submission, each query's audit record among
    /// them, sets one for the whole commit wait (50 s by default), and holding the waiter (its
    /// results and continuation) that long kept rate × wait of them alive after their commit
    /// (found in review, 2026-12-08). What stays is the timer's small closure until it fires.
    func stopWaiting(_ waiter: Waiter, after: DispatchTimeInterval, timedOut: @escaping @Sendable (_ committed: Int, _ total: Int) -> any Error) {
        nonisolated(unsafe) weak let weakWaiter = waiter
        DispatchQueue.global().asyncAfter(deadline: .now() + after) { [self] in
            if let waiter = weakWaiter { stopWaiting(waiter, timedOut: timedOut) }
        }
    }

    /// Answers `waiter`'s submitter now, if its transactions have not all committed (or been
    /// dropped) yet: with the error `timedOut` makes from how many of them had committed and how
    /// many there are. The transactions stay pending and still commit; only the wait ends.
    func stopWaiting(_ waiter: Waiter, timedOut: (_ committed: Int, _ total: Int) -> any Error) {
        let committed: Int? = lock.withLock {
            guard waiter.remaining > 0 else { return nil }
            waiter.remaining = 0
            return waiter.results.compactMap { $0 }.count
        }
        if let committed { waiter.continuation.resume(throwing: timedOut(committed, waiter.results.count)) }
    }

    /// Up to `max` transactions in arrival order, for a block proposal.
    /// `overheadPerItem` is added to each submission's transaction and envelope bytes (what a
    /// message spends on lengths and flags), so `maxBytes` bounds the encoded size.
    func oldest(_ max: Int, maxBytes: Int, overheadPerItem: Int = 0) -> [Submission] {
        lock.withLock {
            var out: [Submission] = []
            var bytes = 0
            var i = orderHead
            while i < order.count, out.count < max {
                if let e = live(order[i]) {
                    let size = e.submission.byteCount + overheadPerItem
                    if bytes + size > maxBytes { break }
                    bytes += size
                    out.append(e.submission)
                }
                i += 1
            }
            return out
        }
    }

    /// Removes committed transactions (answering their waiters) and any pending transaction whose
    /// nonce a committed one used (answering those waiters with a replay error).
    func committed(_ transactions: [Transaction], height: UInt64, firstLogIndex: UInt64) {
        var finished: [(Waiter, Result<[CommitResult], any Error>)] = []
        lock.withLock {
            for (offset, tx) in transactions.enumerated() {
                let key = NonceKey(tx.header)
                let id = HashKey(tx.id)
                if let other = nonces[key], other != id, let e = entries.removeValue(forKey: other) {
                    nonces[key] = nil
                    bytes -= e.submission.byteCount
                    for (w, slot) in e.waiters where w.remaining > 0 {
                        w.remaining = 0
                        finished.append((w, .failure(Self.dropped(slot, of: w, LedgerError(.replay, "nonce \(tx.header.nonce) of \(tx.header.signer) was used by another committed transaction")))))
                    }
                }
                guard let e = entries.removeValue(forKey: id) else { continue }
                nonces[key] = nil
                bytes -= e.submission.byteCount
                for (w, slot) in e.waiters where w.remaining > 0 {
                    w.results[slot] = CommitResult(id: tx.id, height: height, logIndex: firstLogIndex + UInt64(offset))
                    w.remaining -= 1
                    if w.remaining == 0 { finished.append((w, .success(w.results.map { $0! }))) }
                }
            }
            compact()
        }
        for (w, r) in finished { w.continuation.resume(with: r) }
    }

    /// Drops transactions that no longer pass `stillValid` (checked against new committed state).
    func evict(where invalid: (Submission) -> (any Error)?) {
        var finished: [(Waiter, any Error)] = []
        lock.withLock {
            for (id, e) in entries {
                guard let error = invalid(e.submission) else { continue }
                entries[id] = nil
                nonces[NonceKey(e.submission.transaction.header)] = nil
                bytes -= e.submission.byteCount
                for (w, slot) in e.waiters where w.remaining > 0 { w.remaining = 0; finished.append((w, Self.dropped(slot, of: w, error))) }
            }
            compact()
        }
        for (w, e) in finished { w.continuation.resume(throwing: e) }
    }

    /// The error for a waiter one of whose transactions was dropped. In a consortium a batch's
    /// transactions may go into different blocks, so the others may have committed or still commit.
    private static func dropped(_ slot: Int, of w: Waiter, _ error: any Error) -> any Error {
        guard w.results.count > 1 else { return error }
        let committed = w.results.compactMap { $0 }.count
        return BatchError(index: slot, error: LedgerError((error as? LedgerError)?.code ?? .replay,
            "\((error as? LedgerError)?.reason ?? "\(error)"); \(committed) of the batch's other transactions had committed and the rest may still commit: look them up by id"))
    }

    private func live(_ position: (id: HashKey, sequence: UInt64)) -> Entry? {
        guard let e = entries[position.id], e.sequence == position.sequence else { return nil }
        return e
    }

    private func compact() {
        while orderHead < order.count, live(order[orderHead]) == nil { orderHead += 1 }
        if orderHead > 4096 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// Refuses new submissions and fails every waiter.
    func close(_ error: any Error) {
        var waiters: [Waiter] = []
        lock.withLock {
            closed = true
            for e in entries.values { for (w, _) in e.waiters where w.remaining > 0 { w.remaining = 0; waiters.append(w) } }
        }
        for w in waiters { w.continuation.resume(throwing: error) }
    }
}

/// Transactions (with their envelopes) whose stateless checks — signature, role, envelope —
/// already passed on this node, so the gossip path and block checks do not verify them twice.
/// Bounded: the oldest entries are forgotten first.
final class VerifiedCache: @unchecked Sendable {
    /// A transaction with the envelope it was checked with (none for records without one).
    struct Key: Hashable {
        let id: Hash
        let envelope: Hash?
        /// The id alone, in one call (it is unique per transaction; equality still checks both).
        func hash(into hasher: inout Hasher) { id.withUnsafeBytes { hasher.combine(bytes: $0) } }
    }
    private let lock = NSLock()
    private var set = Set<Key>()
    private var order: [Key] = []
    private var head = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    static func key(_ s: Submission) -> Key { Key(id: s.transaction.id, envelope: s.envelope?.hash) }

    func contains(_ s: Submission) -> Bool { contains(key: Self.key(s)) }
    func contains(key k: Key) -> Bool { lock.withLock { set.contains(k) } }
    func insert(_ s: Submission) { insert(key: Self.key(s)) }

    func insert(key k: Key) {
        lock.withLock {
            guard set.insert(k).inserted else { return }
            order.append(k)
            if set.count > capacity {
                set.remove(order[head]); head += 1
                if head > capacity / 2 { order.removeFirst(head); head = 0 }
            }
        }
    }
}

/// A signer's nonce: what the replay guard keeps unique (mempool, dev ledger, block checks).
struct NonceKey: Hashable {
    let signer: String
    let nonce: UInt64
    init(_ header: TransactionHeader) { signer = header.signer; nonce = header.nonce }
}
