import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore
import Synchronization
import XCTest

/// A request's nonce is used up by the record that answers or refuses it, not by refusals of
/// copies (a replay, a stale copy) or of forgeries. Stores written before format v3 also marked
/// the nonces of replay and stale-copy refusals; opening one read-write rebuilds that index
/// from the log (docs/FORMAT.md §12.1).
final class RequestNonceIndexTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = NSTemporaryDirectory() + "nonce-index-\(UUID().uuidString.prefix(8))" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testOnlyRecordsThatUseANonceMarkItAndAnOlderStoreIsRebuilt() throws {
        let c = try PolicyConsortium()
        var store: ChainStore? = try ChainStore.create(path: dir, genesis: c.genesis)
        var txNonce: UInt64 = 0
        func record(_ nonce: UInt64, _ reason: String) -> Submission {
            let body = QueryRecordBody(requester: "bank-a", subject: nil, policy: reason.isEmpty ? SHA256.hash([2]) : Hashes.zero, purpose: .loanApplication,
                                       requestHash: SHA256.hash(Array("request \(nonce) \(reason)".utf8)), requestNonce: nonce,
                                       requestedAtMillis: nowMillis, asOfHeight: 1, outcome: reason.isEmpty ? .answered : .refused,
                                       reason: reason, resultHash: reason.isEmpty ? SHA256.hash([1]) : Hashes.zero, consent: Hashes.zero)
            txNonce += 1
            let samr = c.genesis.member("samr")!
            let header = TransactionHeader(chainID: c.genesis.chainID, signer: "samr", keyID: samr.keyID, nonce: txNonce, issuedAtMillis: nowMillis)
            return Submission(transaction: Transaction.sign(header: header, body: .queryRecord(body), key: c.keys["samr"]!.signing), envelope: nil)
        }
        // Nonce 1 answered, then a replay of it refused; nonce 2 only refused as a replay (its
        // answer still to come), nonce 3 as a forgery, nonce 4 as stale; nonce 5 refused for want of consent.
        let answered = record(1, ""), replay = record(1, "replayed_request")
        let subs = [answered, replay, record(2, "replayed_request"), record(3, "bad_signature"), record(4, "outside_time_window"),
                    record(5, "no_consent")]
        try store!.appendBlock(subs, timestampMillis: nowMillis, proposer: "samr", signers: [(c.genesis.member("samr")!, c.keys["samr"]!.signing)])
        func used(_ s: ChainStore) throws -> [Bool] { try (1...5).map { try s.queryNonceUsed(requester: "bank-a", nonce: $0) } }
        XCTAssertEqual(try used(store!), [true, false, false, false, true])

        // The index as versions before v3 wrote it: every authenticated refusal marked its nonce,
        // the latest record of a nonce overwriting the earlier one's id.
        store = nil
        let key = { (n: UInt64) -> [UInt8] in
            var w = ByteWriter(); w.raw(Array("query-nonce/".utf8)); w.string8("bank-a"); w.u64(n); return w.bytes
        }
        do {
            let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            XCTAssertEqual(try db.get("meta", key(1)), answered.transaction.id)
            try batch.put("meta", key(1), replay.transaction.id)
            try batch.put("meta", key(2), subs[2].transaction.id)
            try batch.put("meta", key(4), subs[4].transaction.id)
            try batch.put("meta", Array("format".utf8), Array("creditledger-store/v2".utf8))
            try db.write(batch)
        }
        store = try ChainStore(path: dir, mode: .readOnly, verifyDepth: 0)
        XCTAssertEqual(try used(store!), [true, true, false, true, true], "read-only, the store is left as it is")
        store = nil
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertEqual(try used(store!), [true, false, false, false, true])
        XCTAssertTrue(store!.builtAtOpen?.contains("rebuilt the request-nonce index") == true, store!.builtAtOpen ?? "nil")
        XCTAssertTrue(store!.builtAtOpen?.contains("2 nonces used, 4 keys before") == true, store!.builtAtOpen ?? "nil")
        XCTAssertEqual(try store!.database.get("meta", key(1)), answered.transaction.id, "the nonce points at the record that used it")
        XCTAssertEqual(try store!.database.get("meta", Array("format".utf8)), Array(ChainStore.storeFormat.utf8))
        store = nil
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertNil(store!.builtAtOpen, "rebuilt once")

        // An upgrade cut short leaves the marker written before its first change (which binaries
        // of the older format refuse): the next open redoes it whole.
        func rewrite(format: String, staleNonce: UInt64) throws {
            store = nil
            let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            try batch.put("meta", key(staleNonce), subs[Int(staleNonce)].transaction.id)
            try batch.put("meta", Array("format".utf8), Array(format.utf8))
            try db.write(batch)
        }
        try rewrite(format: "creditledger-store/upgrading-to-v4", staleNonce: 2)
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertEqual(try used(store!), [true, false, false, false, true])
        XCTAssertTrue(store!.builtAtOpen?.contains("rebuilt the request-nonce index") == true, store!.builtAtOpen ?? "nil")
        XCTAssertEqual(try store!.database.get("meta", Array("format".utf8)), Array(ChainStore.storeFormat.utf8))
        // A v3 store's nonce index is already right: only the format marker changes.
        try rewrite(format: "creditledger-store/v3", staleNonce: 3)
        // An upgrade is announced before it starts (the node logs it: it can take minutes).
        let told = Mutex<[String]>([])
        ChainStore.onLongWork { line in told.withLock { $0.append(line) } }
        defer { ChainStore.onLongWork { _ in } }
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertEqual(store!.builtAtOpen, "upgraded the store from creditledger-store/v3 to \(ChainStore.storeFormat)")
        XCTAssertEqual(told.withLock { $0 }.count, 1)
        XCTAssertTrue(told.withLock { $0 }.first?.contains("upgrading the store in \(dir) from creditledger-store/v3 to \(ChainStore.storeFormat)") == true, "\(told.withLock { $0 })")
        XCTAssertEqual(try used(store!), [true, false, true, false, true], "the v3 index is kept as it was")
        XCTAssertEqual(try store!.database.get("meta", Array("format".utf8)), Array(ChainStore.storeFormat.utf8))

        // The marker goes first: an upgrade that fails part-way (here the rebuild meets a
        // transaction it cannot decode) leaves a store that older binaries refuse, not a v2 store
        // with its nonce index half rebuilt.
        try rewrite(format: "creditledger-store/v2", staleNonce: 2)
        do {
            let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            var w = ByteWriter(); w.u64(5)
            try batch.put("transactions", w.bytes, [0xFF, 0x00])
            try db.write(batch)
        }
        XCTAssertThrowsError(try ChainStore(path: dir, verifyDepth: 0))
        let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
        XCTAssertEqual(try db.get("meta", Array("format".utf8)), Array("creditledger-store/upgrading-to-v5".utf8))
    }
}
