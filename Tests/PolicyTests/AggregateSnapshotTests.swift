import Foundation
import LedgerCore
@testable import LedgerNode
import LedgerStore
import Policy
import XCTest

extension QueryServiceTests {
    /// The grade-cell index keeps each subject's newest grade only, so cells read after a newer
    /// block was written cannot be cut back to an older head: a subject re-scored in that block
    /// would be missing from them. Aggregates therefore read the cells and the head from one
    /// snapshot, and an evaluation whose head is older than the cells starts again.
    func testAggregateCellsFromABlockNewerThanTheEvaluationsHeadAreNotServed() async throws {
        let head = store.head
        let facts = try StoreFacts(store: store, head: head, custodianKey: nil)
        let before = try facts.gradeCells(model: "enterprise", limit: 1_000)
        XCTAssertTrue(before.contains { $0.subject == food }, "the food company is scored")

        // A block re-scores the food company after the evaluation fixed its head.
        try await score([food])
        XCTAssertGreaterThan(store.head.logSize, head.logSize)
        XCTAssertThrowsError(try facts.gradeCells(model: "enterprise", limit: 1_000), "cells newer than the head were served") {
            XCTAssertTrue($0 is StoreFacts.HeadMoved, "\($0)")
        }
        // Read again at the new head: every subject is there, the re-scored one included.
        let (at, cells) = try store.gradeCellsWithHead(model: "enterprise", limit: 1_000)
        XCTAssertEqual(at, store.head)
        XCTAssertEqual(Set(cells.map(\.subject)), Set(before.map(\.subject)))

        // And the service answers at the new head, counting the re-scored subject.
        let (_, stats) = try await ask("bank-b", "industry-statistics", subject: "", purpose: "statistics",
                                       params: [("model", "enterprise"), ("industry", "C13"), ("district", "330106")])
        XCTAssertTrue(stats.answered, stats.receipt.message)
        XCTAssertEqual(try fields(stats.receipt)["subjects"] as? Int, 12)
    }

    /// Only a government issuer's record places a subject in a statistics cell. A bank's loan
    /// repayment naming another industry used to move the business into a cell of the bank's
    /// choosing at its next score, and the difference of two `industry-statistics` answers was
    /// its grade, without consent or a line in its query log.
    func testABanksRecordDoesNotMoveABusinessBetweenStatisticsCells() async throws {
        func stats() async throws -> Int? {
            let (_, out) = try await ask("bank-b", "industry-statistics", subject: "", purpose: "statistics",
                                         params: [("model", "enterprise"), ("industry", "C13"), ("district", "330106")])
            XCTAssertTrue(out.answered, out.receipt.message)
            return try fields(out.receipt)["subjects"] as? Int
        }
        let before = try await stats()
        try await submit([try attestation(food, .loanRepayment, "2026-10-01", industry: "K70", payload: "{\"loan\":\"L1\"}", by: "bank-a")])
        try await score([food])
        let cells = try store.gradeCellsWithHead(model: "enterprise", limit: 1_000).cells
        XCTAssertEqual(cells.first { $0.subject == food }?.industry, "C13", "a bank's record moved the business to another cell")
        let after = try await stats()
        XCTAssertEqual(after, before)
        // A government record that names a new industry does move it.
        try await submit([try attestation(food, .license, "2026-10-02", industry: "I65", payload: "{\"license\":\"X\"}")])
        try await score([food])
        XCTAssertEqual(try store.gradeCellsWithHead(model: "enterprise", limit: 1_000).cells.first { $0.subject == food }?.industry, "I65")
    }
}
