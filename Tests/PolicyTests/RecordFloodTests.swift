import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import XCTest

extension QueryServiceTests {
    /// A score update covers at most FieldLimits.scoreInputs records. A member that floods a
    /// subject past that (a bank writing repayment records about a business it does not lend
    /// to) must not freeze the grade banks are given: once no score can cover every record,
    /// grade policies refuse with no_score instead of answering from a score that leaves the
    /// newer records (a penalty, say) out.
    func testGradesAreRefusedOnceNoScoreCanCoverEveryRecord() async throws {
        let have = try store.subjectRecords(food, before: store.head.logSize, limit: 2_000).count
        let bank = consortium.genesis.member("bank-b")!
        func repayment(_ i: Int) throws -> Submission {
            let (commitment, envelope) = try PayloadSeal.seal(Array("{\"loan\":\(i)}".utf8), to: consortium.genesis.custodians)
            let body = AttestationBody(subject: food, subjectKind: .enterprise, category: .loanRepayment, severity: .none,
                                       eventDate: try LedgerDate(iso: "2026-01-05"), industry: "C13", payloadCommitment: commitment,
                                       envelopeHash: envelope.hash)
            let header = TransactionHeader(chainID: consortium.genesis.chainID, signer: bank.id, keyID: bank.keyID,
                                           nonce: nextNonce(), issuedAtMillis: nowMillis)
            return Submission(transaction: Transaction.sign(header: header, body: .attestation(body), key: consortium.keys["bank-b"]!.signing),
                              envelope: envelope)
        }
        // Up to the limit the subject is still scored, and answered.
        var flood = try (0..<(FieldLimits.scoreInputs - have)).map(repayment)
        while !flood.isEmpty { try await submit(Array(flood.prefix(500))); flood.removeFirst(min(500, flood.count)) }
        try await score([food])
        let (_, atLimit) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(atLimit.answered, atLimit.receipt.message)

        // One record more, and a penalty after it: no score update can cover them.
        try await submit([try repayment(-1), try attestation(food, .penalty, "2026-11-01", severity: .serious, payload: "{\"decision\":\"x\"}")])
        do {
            try await score([food])
            XCTFail("a score update over \(FieldLimits.scoreInputs) records was committed")
        } catch { XCTAssertTrue("\(error)".contains("cannot score"), "\(error)") }
        let (_, past) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertEqual(past.receipt.reason, "no_score", past.receipt.message)
        XCTAssertTrue(past.receipt.message.contains("more than \(FieldLimits.scoreInputs) records"), past.receipt.message)
        XCTAssertTrue(past.receipt.facts.contains { $0.role == "audit_record" }, "the refusal is on the ledger")
    }
}
