import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore
import XCTest

/// A query reads the requester's consents about the subject from their own index (subject and
/// grantee), not by walking the subject's whole history: other members' consents, records and
/// score updates about a busy subject cost it nothing (docs/FORMAT.md §12.1).
final class ConsentIndexTests: XCTestCase {
    var dir = ""
    var nonce: UInt64 = 0
    var seed: UInt64 = 11

    override func setUp() { dir = NSTemporaryDirectory() + "consent-index-\(UUID().uuidString.prefix(8))" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func uscc() -> USCC {
        USCCGenerator.make(kind: .enterprise, division: "330106") { n in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
    }

    func consent(_ c: PolicyConsortium, _ subject: USCC, to bank: String, revoking: Hash? = nil) throws -> Submission {
        nonce += 1
        return try QueryClient.consent(genesis: c.genesis, keys: c.keys[bank]!, subject: subject, grantee: bank, purpose: .loanApplication,
                                       expiresAt: revoking == nil ? nowMillis / 1000 + 86_400 : 0,
                                       evidence: SHA256.hash(Array("form \(nonce)".utf8)), revoking: revoking,
                                       nonce: nonce, issuedAtMillis: nowMillis)
    }

    func testConsentsComeFromTheirOwnIndexWhichAnOlderStoreBuildsWhenOpened() throws {
        let c = try PolicyConsortium()
        let subject = uscc(), other = uscc()
        var store: ChainStore? = try ChainStore.create(path: dir, genesis: c.genesis)
        func append(_ subs: [Submission]) throws -> [UInt64] {
            let first = store!.head.logSize
            try store!.appendBlock(subs, timestampMillis: nowMillis + store!.head.height, proposer: "samr",
                                   signers: [(c.genesis.member("samr")!, c.keys["samr"]!.signing)])
            return subs.indices.map { first + UInt64($0) }
        }
        // bank-a's grant, then 300 consents of bank-b about the same subject, then bank-a's
        // revocation and five new grants.
        let grant = try consent(c, subject, to: "bank-a")
        let first = try append([grant, try consent(c, other, to: "bank-b")])
        let spam = try append(try (0..<300).map { _ in try consent(c, subject, to: "bank-b") })
        let revoke = try append([try consent(c, subject, to: "bank-a", revoking: grant.transaction.id)])
        let later = try append(try (0..<5).map { _ in try consent(c, subject, to: "bank-a") })
        let bankA = [first[0]] + revoke + later

        func answers(_ s: ChainStore) throws -> [[UInt64]] {
            let size = s.head.logSize
            return try [
                s.consents(of: subject, grantee: "bank-a", before: size, limit: 100),
                s.consents(of: subject, grantee: "bank-a", before: size, limit: 2),
                s.consents(of: subject, grantee: "bank-a", before: revoke[0], limit: 100),
                s.consents(of: subject, grantee: "bank-b", before: size, limit: 1_024),
                s.consents(of: subject, grantee: "bank-b", before: size, limit: 10),
                s.consents(of: other, grantee: "bank-b", before: size, limit: 100),
                s.consents(of: other, grantee: "bank-a", before: size, limit: 100),
                s.consents(of: subject, grantee: "bank-a", before: 0, limit: 100),
            ].map { $0.map(\.logIndex) }
        }
        let expected: [[UInt64]] = [bankA, Array(later.suffix(2)), [first[0]], spam, Array(spam.suffix(10)), [first[1]], [], []]
        XCTAssertEqual(try answers(store!), expected)
        let found = try store!.consents(of: subject, grantee: "bank-a", before: store!.head.logSize, limit: 100)
        XCTAssertEqual(found.first?.transaction.id, grant.transaction.id)
        guard case .consent(let r)? = found.dropFirst().first?.transaction.body else { return XCTFail("the revocation comes second") }
        XCTAssertEqual(r.action, .revoke)

        XCTAssertEqual(try store!.database.get("meta", Array("format".utf8)), Array(ChainStore.storeFormat.utf8))
        XCTAssertEqual(ChainStore.storeFormat, "creditledger-store/v5")

        // A store written before the index (format v1): its consent keys and marker removed.
        store = nil
        do {
            let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            let it = try db.makeIterator("meta")
            let prefix = Array("consent".utf8)   // `consent/…` and `consent-index/v1`
            it.seek(prefix)
            while it.isValid, it.key.starts(with: prefix) { try batch.delete("meta", it.key); it.next() }
            try it.checkStatus()
            XCTAssertEqual(batch.count, bankA.count + spam.count + 2, "one key per consent, and the marker")
            try batch.put("meta", Array("format".utf8), Array("creditledger-store/v1".utf8))
            try db.write(batch)
        }
        // Read-only, it is left as it is, and asking for consents says why they cannot be read.
        // Its audit checks the families every format holds and says what it left unchecked,
        // instead of reporting the index it has not built yet as damage (found in review).
        do {
            let readOnly = try ChainStore(path: dir, mode: .readOnly, verifyDepth: 0)
            let audit = try readOnly.auditIndexesNoting()
            XCTAssertNil(audit.problem)
            XCTAssertTrue(audit.unchecked?.contains("the store is at format creditledger-store/v1, not creditledger-store/v5") == true, audit.unchecked ?? "nil")
            XCTAssertThrowsError(try readOnly.consents(of: subject, grantee: "bank-a", before: readOnly.head.logSize, limit: 10)) { error in
                XCTAssertEqual((error as? LedgerError)?.code, .unsupportedVersion)
                XCTAssertTrue("\(error)".contains("no consent index"), "\(error)")
            }
        }
        // Opened read-write, the index is built from the subject index and answers as before.
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertEqual(try answers(store!), expected)
        let upgraded = try store!.auditIndexesNoting()
        XCTAssertNil(upgraded.problem)
        XCTAssertNil(upgraded.unchecked, "the built index is audited too")
        XCTAssertTrue(store!.builtAtOpen?.contains("\(bankA.count + spam.count + 1) consents") == true, "for the node's log: \(store!.builtAtOpen ?? "nil")")
        XCTAssertTrue(store!.builtAtOpen?.contains("from creditledger-store/v1 to creditledger-store/v5") == true, store!.builtAtOpen ?? "nil")
        XCTAssertEqual(try store!.database.get("meta", Array("format".utf8)), Array("creditledger-store/v5".utf8),
                       "upgraded, so a binary that does not keep the index refuses the store")
        store = nil
        store = try ChainStore(path: dir, mode: .readOnly, verifyDepth: 0)
        XCTAssertEqual(try answers(store!), expected, "the built index was stored")
        store = nil
        store = try ChainStore(path: dir, verifyDepth: 0)
        XCTAssertNil(store!.builtAtOpen, "built once")

        // A format this version does not know is refused, the store untouched.
        store = nil
        do {
            let db = try Database(path: dir, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            try batch.put("meta", Array("format".utf8), Array("creditledger-store/v9".utf8))
            try db.write(batch)
        }
        XCTAssertThrowsError(try ChainStore(path: dir, verifyDepth: 0)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .unsupportedVersion)
            XCTAssertTrue("\(error)".contains("creditledger-store/v9 is not creditledger-store/v5"), "\(error)")
        }
    }
}
