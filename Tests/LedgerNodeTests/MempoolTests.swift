import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
@testable import LedgerNode
import Synchronization
import XCTest

final class MempoolTests: XCTestCase {
    let keys = MemberSecretKeys(memberID: "samr")

    func genesis() throws -> Genesis {
        try Genesis(bytes: try Genesis.render(chainID: "t", genesisTime: "2026-11-21T00:00:00Z", members: [
            Member(id: "samr", name: "samr", roles: [.validator, .custodian, .governmentIssuer], signingKey: keys.signing.publicKey,
                   encryptionKey: keys.encryption.publicKey)]))
    }

    func submissions(_ n: Int, nonceBase: UInt64 = 0) throws -> [Submission] {
        let genesis = try genesis()
        var nonce = nonceBase
        return try DemoRecords.requests(count: n, subjects: 5, seed: 1).map { r in
            nonce += 1
            return try r.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
    }

    /// A store read that fails while a pending transaction is checked, by a proposer picking
    /// for a block or by the sweep, is no verdict on it: it stays. One the committed ledger made
    /// invalid (its nonce used) is dropped, and a valid one goes in the block.
    func testAFailedStoreReadIsNoVerdictOnAPendingTransaction() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pending-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let genesis = try genesis()
        let store = try ChainStore.create(path: directory, genesis: genesis)
        let validator = TransactionValidator.standard(genesis: genesis)
        let tx = try submissions(1)[0].transaction
        for forBlock in [true, false] {
            let failing = ReadsWithNonces(store: store, nonceUsed: .failure(StorageError(.read, "IO error: injected")))
            guard case .unreadable(let e) = ConsensusNode.check(pending: tx, validator: validator, state: failing, forBlock: forBlock) else {
                return XCTFail("a failed read dropped or passed the transaction (forBlock \(forBlock))")
            }
            XCTAssertEqual(e.code, .read)
            let replayed = ReadsWithNonces(store: store, nonceUsed: .success(true))
            guard case .stale(let reason) = ConsensusNode.check(pending: tx, validator: validator, state: replayed, forBlock: forBlock) else {
                return XCTFail("a transaction whose nonce is used was kept (forBlock \(forBlock))")
            }
            XCTAssertEqual((reason as? LedgerError)?.code, .replay, "\(reason)")
            guard case .valid = ConsensusNode.check(pending: tx, validator: validator, state: store, forBlock: forBlock) else {
                return XCTFail("a valid transaction was not taken (forBlock \(forBlock))")
            }
        }
    }

    /// A transaction evicted and admitted again (gossiped back, or resubmitted) is offered once, in
    /// its new place: its old position in the arrival order does not count for it too (it was
    /// offered twice, and a block holding it twice is refused by every peer; found in review,
    /// 2026-12-06).
    func testATransactionEvictedAndAdmittedAgainIsOfferedOnce() throws {
        let pool = Mempool(capacity: 10)
        let subs = try submissions(3)
        try pool.admit(Array(subs[0..<2]), continuation: nil)
        let evicted = subs[1].transaction.id
        pool.evict { $0.transaction.id == evicted ? LedgerError(.replay, "stale") : nil }
        try pool.admit([subs[2], subs[1]], continuation: nil)
        let offered = pool.oldest(10, maxBytes: .max).map(\.transaction.id)
        XCTAssertEqual(offered, [subs[0], subs[2], subs[1]].map(\.transaction.id))
        // Once committed, it is gone from every position.
        pool.committed([subs[1].transaction], height: 1, firstLogIndex: 0)
        XCTAssertEqual(pool.oldest(10, maxBytes: .max).map(\.transaction.id), [subs[0], subs[2]].map(\.transaction.id))
    }

    /// A submitter's wait timer does not keep its waiter alive: once its transactions commit,
    /// the waiter (results, continuation) is freed though the timer has long to run; a timer
    /// that fires first ends the wait with the figures and leaves the transactions pending.
    func testAWaitTimerHoldsItsWaiterOnlyUntilTheWaitEnds() async throws {
        let pool = Mempool(capacity: 10)
        let subs = try submissions(3)
        final class Probe: @unchecked Sendable { weak var waiter: Mempool.Waiter? }
        let probe = Probe()
        let results = try await withCheckedThrowingContinuation { continuation in
            do {
                let (_, waiter) = try pool.admitWaiting([subs[0]], continuation: continuation)
                probe.waiter = waiter
                pool.stopWaiting(waiter!, after: .seconds(600)) { _, _ in LedgerError(.notCommitted, "timed out") }
                pool.committed([subs[0].transaction], height: 1, firstLogIndex: 0)
            } catch { continuation.resume(throwing: error) }
        }
        XCTAssertEqual(results.map(\.logIndex), [0])
        XCTAssertNil(probe.waiter, "the pending 600 s timer still held the waiter of a committed submission")
        do {
            _ = try await withCheckedThrowingContinuation { continuation in
                do {
                    let (_, waiter) = try pool.admitWaiting(Array(subs[1...2]), continuation: continuation)
                    pool.stopWaiting(waiter!, after: .milliseconds(20)) { committed, total in LedgerError(.notCommitted, "\(committed) of \(total)") }
                    pool.committed([subs[1].transaction], height: 2, firstLogIndex: 1)
                } catch { continuation.resume(throwing: error) }
            }
            XCTFail("the wait did not end")
        } catch {
            XCTAssertEqual("\(error)", "\(LedgerError(.notCommitted, "1 of 2"))")
        }
        XCTAssertTrue(pool.contains(subs[2].transaction.id))
    }

    /// Full means a clear error, and nothing of the refused batch is admitted.
    func testFullMempoolRefusesWithAClearErrorAndAdmitsNothing() throws {
        let pool = Mempool(capacity: 10)
        let subs = try submissions(12)
        try pool.admit(Array(subs[0..<8]), continuation: nil)
        XCTAssertThrowsError(try pool.admit(Array(subs[8..<12]), continuation: nil)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .mempoolFull)
            XCTAssertTrue("\(error)".contains("limit 10"), "\(error)")
        }
        XCTAssertEqual(pool.count, 8)
        XCTAssertFalse(pool.contains(subs[8].transaction.id))
    }

    /// Bytes are bounded too: a batch that would take the pool past its byte capacity is refused
    /// whole, with the figures; once committed transactions leave, it fits.
    func testMempoolBytesAreBounded() throws {
        let subs = try submissions(6)
        let four = subs[0..<4].reduce(0) { $0 + $1.byteCount }
        let pool = Mempool(capacity: 100, capacityBytes: four)
        try pool.admit(Array(subs[0..<3]), continuation: nil)
        XCTAssertThrowsError(try pool.admit(Array(subs[3..<5]), continuation: nil)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .mempoolFull)
            XCTAssertTrue("\(error)".contains("bytes of transactions and envelopes, limit \(four)"), "\(error)")
        }
        XCTAssertEqual(pool.count, 3)
        XCTAssertFalse(pool.contains(subs[3].transaction.id))
        pool.committed(subs[0..<2].map(\.transaction), height: 1, firstLogIndex: 0)
        XCTAssertEqual(try pool.admit(Array(subs[3..<5]), continuation: nil).count, 2)
    }

    /// A submission larger than a block can hold is refused with the figures when submitted
    /// and skipped when gossiped: it would otherwise sit first in line and stop every block.
    func testASubmissionNoBlockCanHoldIsNotAdmitted() async throws {
        let subs = try submissions(6)
        let big = subs.map(\.byteCount).max()!
        XCTAssertLessThan(subs.map(\.byteCount).min()!, big, "the test needs submissions of different sizes")
        let pool = Mempool(capacity: 100, maxSubmissionBytes: big - 1)
        do {
            _ = try await withCheckedThrowingContinuation { (c: CheckedContinuation<[CommitResult], any Error>) in
                do {
                    try pool.admit(subs, continuation: c)
                    pool.close(LedgerError(.invalidValue, "admitted"))   // resumes the waiter rather than leave the test hanging
                } catch { c.resume(throwing: error) }
            }
            XCTFail("a submission larger than a block was admitted")
        } catch {
            XCTAssertTrue("\(error)".contains("a block of this network holds at most \(big - 1)"), "\(error)")
        }
        XCTAssertEqual(pool.count, 0, "nothing of the batch was admitted")
        let gossiped = try pool.admit(subs, continuation: nil)
        XCTAssertEqual(gossiped.count, subs.filter { $0.byteCount < big }.count)
        XCTAssertFalse(pool.contains(subs.first { $0.byteCount == big }!.transaction.id))
        XCTAssertEqual(pool.oldest(10, maxBytes: 10 * big).count, gossiped.count, "blocks are built from the rest")
    }

    /// Gossip of a known transaction is ignored; a second transaction with a pending nonce is not admitted.
    func testDeduplicatesByIdAndNonce() throws {
        let pool = Mempool(capacity: 100)
        let subs = try submissions(3)
        XCTAssertEqual(try pool.admit(subs, continuation: nil).count, 3)
        XCTAssertEqual(try pool.admit(subs, continuation: nil).count, 0)
        let sameNonces = try submissions(3, nonceBase: 0)   // other transactions reusing the pending (signer, nonce) pairs
        XCTAssertEqual(try pool.admit(sameNonces, continuation: nil).count, 0)
        XCTAssertEqual(pool.count, 3)
        XCTAssertEqual(pool.oldest(2, maxBytes: 1 << 20).map(\.transaction.id), subs.prefix(2).map(\.transaction.id))
        pool.committed([subs[0].transaction], height: 1, firstLogIndex: 0)
        XCTAssertEqual(pool.count, 2)
        XCTAssertFalse(pool.contains(subs[0].transaction.id))
    }

    /// Peer messages take transactions the node already holds from the mempool instead of
    /// decoding them again, but only when the bytes are the same: a proposal that pairs a held
    /// transaction with another envelope gets that envelope, and a lookup that returns the wrong
    /// transaction changes nothing.
    func testPeerMessagesReuseHeldTransactionsOnlyWhenTheBytesMatch() throws {
        let subs = try submissions(3)
        XCTAssertTrue(subs.allSatisfy { $0.envelope != nil })
        let pool = Mempool(capacity: 10)
        try pool.admit(Array(subs[0..<2]), continuation: nil)
        let swapped = Submission(transaction: subs[1].transaction, envelope: subs[2].envelope)
        let carried = [subs[0], swapped, subs[2]]
        let built = BlockBuilder.build(chainID: "test", height: 1, timestampMillis: 1, previousHash: Hashes.zero,
                                       frontier: MerkleFrontier(), transactions: carried.map(\.transaction), proposer: "p")
        let bytes = NetMessage.blockContent(CandidateBlock(header: built.header, submissions: carried)).encoded
        func decoded(_ known: NetMessage.Known?) throws -> [Submission] {
            guard case .blockContent(let block) = try NetMessage.decode(bytes, limits: Limits(), known: known) else {
                XCTFail("not a block message"); return []
            }
            return block.submissions
        }
        func summary(_ list: [Submission]) -> [[UInt8]] {
            list.flatMap { [$0.transaction.encoded, $0.transaction.id, $0.envelope?.encoded ?? [], $0.envelope?.hash ?? []] }
        }
        let plain = try decoded(nil)
        let lookups = Mutex(0)
        let reused = try decoded { id in lookups.withLock { $0 += 1 }; return pool.submission(id) }
        XCTAssertEqual(lookups.withLock { $0 }, 3)
        XCTAssertEqual(summary(reused), summary(plain))
        XCTAssertEqual(reused[1].envelope?.encoded, subs[2].envelope?.encoded, "the envelope the message carries, not the held one")
        let lying = try decoded { _ in subs[0] }
        XCTAssertEqual(summary(lying), summary(plain))
        XCTAssertEqual(lying[2].transaction.id, subs[2].transaction.id)
        // Gossip is decoded without lookups: its transactions are new to the receiver.
        let gossip = NetMessage.transactions(carried).encoded
        guard case .transactions(let list) = try NetMessage.decode(gossip, limits: Limits(), known: { id in
            lookups.withLock { $0 += 1 }; return pool.submission(id)
        }) else { return XCTFail("not a transactions message") }
        XCTAssertEqual(summary(list), summary(plain))
        XCTAssertEqual(lookups.withLock { $0 }, 3, "gossip consulted the mempool")
    }
}

/// Reads `store`, except that every nonce lookup gives `nonceUsed` (a failure, or a used nonce).
private struct ReadsWithNonces: LedgerStateReader {
    let store: ChainStore
    let nonceUsed: Result<Bool, StorageError>
    func isNonceUsed(signer: String, nonce: UInt64) throws -> Bool { try nonceUsed.get() }
    func committedTransaction(id: Hash) throws -> Transaction? { try store.committedTransaction(id: id) }
    func committedLogSize() throws -> UInt64 { try store.committedLogSize() }
    func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        try store.subjectRecords(subject, before: logSize, limit: limit)
    }
    func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64? { try store.blockTimestamp(coveringLogSize: logSize) }
    func installedModel(hash: Hash) throws -> InstalledModel? { try store.installedModel(hash: hash) }
    func installedModels() throws -> [InstalledModel] { try store.installedModels() }
    func installedPolicy(hash: Hash) throws -> InstalledPolicy? { try store.installedPolicy(hash: hash) }
    func installedPolicies() throws -> [InstalledPolicy] { try store.installedPolicies() }
    func queryNonceUsed(requester: String, nonce: UInt64) throws -> Bool { try store.queryNonceUsed(requester: requester, nonce: nonce) }
    func committedLogSize(atHeight height: UInt64) throws -> UInt64? { try store.committedLogSize(atHeight: height) }
    func consents(of subject: USCC, grantee: String, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        try store.consents(of: subject, grantee: grantee, before: logSize, limit: limit)
    }
}
