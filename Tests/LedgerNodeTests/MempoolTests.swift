import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import XCTest

final class MempoolTests: XCTestCase {
    func submissions(_ n: Int, nonceBase: UInt64 = 0) throws -> [Submission] {
        let keys = MemberSecretKeys(memberID: "samr")
        let genesis = try Genesis(bytes: try Genesis.render(chainID: "t", genesisTime: "2026-11-21T00:00:00Z", members: [
            Member(id: "samr", name: "samr", roles: [.validator, .custodian, .governmentIssuer], signingKey: keys.signing.publicKey,
                   encryptionKey: keys.encryption.publicKey)]))
        var nonce = nonceBase
        return try DemoRecords.requests(count: n, subjects: 5, seed: 1).map { r in
            nonce += 1
            return try r.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
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
}
