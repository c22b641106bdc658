import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import XCTest

/// Nonces the CLI derives (so that a command run again is a replay, not a second record) are on
/// the ledger for every member to read. Derived from the public key, they let anyone test a guess
/// of what they came from: a request file's sealed payload, or a consent form (found in review,
/// 2026-12-07). They are keyed with the member's secret now.
final class DerivedNonceTests: XCTestCase {
    func testDerivedNoncesAreStableButNeedTheSecretKey() throws {
        let keys = MemberSecretKeys(memberID: "bank-a")
        let file = Array(#"{"subject":"91350100M000100Y43","payload":{"name":"a guessable name"}}"#.utf8)
        let nonce = AttestationRequest.nonce(keys: keys, file: file)
        XCTAssertEqual(AttestationRequest.nonce(keys: keys, file: file), nonce, "a rerun must be a replay")
        XCTAssertNotEqual(AttestationRequest.nonce(keys: keys, file: file + [0x20]), nonce)
        XCTAssertNotEqual(AttestationRequest.nonce(keys: MemberSecretKeys(memberID: "bank-a"), file: file), nonce, "another key, another nonce")
        // What anyone could compute from the public key and a guessed file: not the nonce.
        var guess = ByteWriter()
        guess.raw(Array("CreditLedger/v1/submit-nonce\n".utf8))
        guess.raw(keys.signing.publicKey.bytes)
        guess.raw(SHA256.hash(file))
        XCTAssertNotEqual(SHA256.hash(guess.bytes).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }, nonce)

        let subject = try USCC("91350100M000100Y43")
        func consent(_ evidence: Hash, _ k: MemberSecretKeys = keys) -> UInt64 {
            QueryClient.consentNonce(keys: k, subject: subject, grantee: "bank-a", purpose: .loanApplication, evidence: evidence,
                                     days: 30, revoking: nil, issuedAtMillis: 1_795_000_000_000)
        }
        let evidence = ConsentEvidence.commitment(formSHA256: SHA256.hash(file), salt: SecureRandom.bytes(32))
        XCTAssertEqual(consent(evidence), consent(evidence))
        XCTAssertNotEqual(consent(evidence), consent(SHA256.hash(file)), "the salted evidence, not the form's hash, goes in")
    }
}
