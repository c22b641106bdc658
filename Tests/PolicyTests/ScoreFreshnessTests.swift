import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
@testable import LedgerStore
import Scoring
import XCTest

extension QueryServiceTests {
    /// A score update made from an older state can commit after one made from a newer state (a
    /// delayed endorsement, a re-score running beside live scoring). Validators accept it; the
    /// grade banks are given, and the statistics' grade cell, must stay the fresher one, which
    /// covers the newer records.
    func testAScoreMadeFromAnOlderStateDoesNotHideAFresherOne() async throws {
        let engine = ScoreEngine(genesis: consortium.genesis)
        let model = try ScoringModel(document: store.latestModel(name: "enterprise")!.document)
        func update(asOf logSize: UInt64) throws -> (Submission, ScoreUpdateBody) {
            let (records, date) = try store.scoreInputs(subject: food, asOfLogSize: logSize)
            let body = try engine.makeScoreUpdate(subject: food, inputs: records.map(\.transaction), model: model,
                                                  asOf: ScoreAsOf(logSize: logSize, date: date))
            return (Submission(transaction: Transaction.sign(header: header("samr"), body: .scoreUpdate(body),
                                                             key: consortium.keys["samr"]!.signing), envelope: nil), body)
        }
        let before = store.head.logSize
        let (stale, staleBody) = try update(asOf: before)
        // The food company becomes a dishonest judgment debtor; the fresh score covers it.
        try await submit([try attestation(food, .dishonestJudgmentDebtor, "2026-11-01", payload: "{\"case\":\"x\"}")])
        let (fresh, freshBody) = try update(asOf: store.head.logSize)
        XCTAssertNotEqual(freshBody.points, staleBody.points, "the listing changes the points (\(staleBody.points) → \(freshBody.points))")
        let freshIndex = try await submit([fresh])[0].logIndex
        try await submit([stale])   // made earlier, committed later

        let (_, answer) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(answer.answered, answer.receipt.message)
        XCTAssertEqual(try fields(answer.receipt)["grade"] as? String, freshBody.grade.name, "the stale score hid the listing")
        let proven = try XCTUnwrap(answer.receipt.facts.first { $0.role == "score_update" })
        XCTAssertEqual(proven.transaction, fresh.transaction.encoded.base64String, "the receipt proves the fresh update")
        let cell = try XCTUnwrap(try store.database.get(ChainStore.Family.meta, ChainStore.QueryKey.cell(model: "enterprise", subject: food)))
        XCTAssertEqual(Array(cell.prefix(8)), ChainStore.u64Key(freshIndex), "the statistics' cell keeps the fresh update")
    }
}
