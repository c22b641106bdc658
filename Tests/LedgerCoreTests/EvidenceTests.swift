import LedgerCore
import LedgerCrypto
import XCTest

/// Evidence of equivocation (transaction kind 6): checked by every node and the verifier.
final class EvidenceTests: XCTestCase {
    let c = try! TestConsortium()

    func signedVote(_ voter: String, step: UInt8 = 1, height: UInt64 = 7, round: UInt32 = 2, block: Hash?) -> EvidenceBody.Signed {
        let bytes = ConsensusStatement.vote(chainID: c.genesis.chainID, step: step, height: height, round: round, blockHash: block, voter: voter)
        return .init(blockHash: block, polRound: -1, signature: c.keys[voter]!.signing.signature(for: bytes))
    }

    func evidenceTransaction(_ body: EvidenceBody, by reporter: String = "samr", nonce: UInt64 = 1) -> Submission {
        Submission(transaction: Transaction.sign(header: c.header(reporter, nonce: nonce), body: .evidence(body), key: c.keys[reporter]!.signing),
                   envelope: nil)
    }

    func testTwoSignedPrevotesForDifferentBlocksAreEvidence() throws {
        let a = Array(repeating: UInt8(1), count: 32), b = Array(repeating: UInt8(2), count: 32)
        let body = EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                first: signedVote("bank-b", block: a), second: signedVote("bank-b", block: b))
        let s = evidenceTransaction(body)
        try TransactionValidator(genesis: c.genesis).checkStateless(s)
        // It survives the canonical encoding.
        let decoded = try Transaction.decode(s.transaction.encoded)
        XCTAssertEqual(decoded.body, .evidence(body))
        // Auditors may report too; banks that are not validators may not.
        try TransactionValidator(genesis: c.genesis).checkStateless(evidenceTransaction(body, by: "auditor"))
    }

    func testWhatIsNotEvidenceIsRefused() throws {
        let v = TransactionValidator(genesis: c.genesis)
        let a = Array(repeating: UInt8(1), count: 32), b = Array(repeating: UInt8(2), count: 32)
        func code(_ body: EvidenceBody) -> LedgerError.Code? {
            do { try v.checkStateless(evidenceTransaction(body)); return nil } catch { return (error as? LedgerError)?.code }
        }
        // The same vote twice.
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                         first: signedVote("bank-b", block: a), second: signedVote("bank-b", block: a))), .invalidValue)
        // One honest vote copied twice with made-up proof-of-lock rounds, which a vote's
        // signature does not cover: both copies verify, yet the validator signed only once.
        let honest = signedVote("bank-b", block: a)
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                         first: .init(blockHash: a, polRound: -1, signature: honest.signature),
                                         second: .init(blockHash: a, polRound: 5, signature: honest.signature))), .invalidValue)
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                         first: .init(blockHash: a, polRound: 0, signature: honest.signature),
                                         second: .init(blockHash: b, polRound: 0, signature: signedVote("bank-b", block: b).signature))), .invalidValue)
        // The second signature is someone else's.
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                         first: signedVote("bank-b", block: a), second: signedVote("bank-a", block: b))), .badSignature)
        // Votes from different rounds are not equivocation: the signature over round 2 does not verify for round 3.
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .prevote, height: 7, round: 2,
                                         first: signedVote("bank-b", block: a), second: signedVote("bank-b", round: 3, block: b))), .badSignature)
        // A prevote presented as a precommit.
        XCTAssertEqual(code(EvidenceBody(offender: "bank-b", step: .precommit, height: 7, round: 2,
                                         first: signedVote("bank-b", block: a), second: signedVote("bank-b", block: b))), .badSignature)
        // The offender must be a validator.
        XCTAssertEqual(code(EvidenceBody(offender: "auditor", step: .prevote, height: 7, round: 2,
                                         first: signedVote("auditor", block: a), second: signedVote("auditor", block: b))), .invalidValue)
    }
}
