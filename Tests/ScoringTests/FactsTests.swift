import LedgerCore
import LedgerCrypto
@testable import Scoring
import XCTest

/// From records to facts: corrections replace, revocations remove, credit repair, future dates, limits.
final class FactsTests: XCTestCase {
    let c = try! ScoringConsortium()
    let asOf = try! LedgerDate(iso: "2026-11-21")

    func penalty(_ severity: Severity, _ date: String = "2026-01-10", subject: String = "92330106MA2H4K7Q3A") -> AttestationBody {
        var r = Records(subject)
        r.add(.penalty, date, severity, ["amount_yuan": 1000])
        return r.list[0]
    }

    func testCorrectionsReplaceAndRevocationsRemove() throws {
        let subject = try USCC("92330106MA2H4K7Q3A")
        let a = try c.attest(penalty(.minor), by: "samr", nonce: 1).transaction
        let b = try c.attest(penalty(.general, "2026-02-01"), by: "samr", nonce: 2).transaction
        let fix = try c.amend(AmendmentBody(action: .correction, target: a.id, reason: "severity", replacement: penalty(.serious)), by: "samr", nonce: 3).transaction
        let fixAgain = try c.amend(AmendmentBody(action: .correction, target: fix.id, reason: "date", replacement: penalty(.serious, "2026-03-03")), by: "samr", nonce: 4).transaction
        let revoke = try c.amend(AmendmentBody(action: .revocation, target: b.id, reason: "issued_in_error", replacement: nil), by: "samr", nonce: 5).transaction
        func facts(_ inputs: [Transaction]) throws -> [Fact] { try SubjectFacts(subject: subject, inputs: inputs, asOfDate: asOf).facts }

        XCTAssertEqual(try facts([a, b]).map(\.severity), [.minor, .general])
        XCTAssertEqual(try facts([a, b, fix]).map(\.severity), [.serious, .general], "the correction replaces in place")
        XCTAssertEqual(try facts([a, b, fix, fixAgain]).map(\.eventDate), [try LedgerDate(iso: "2026-03-03"), try LedgerDate(iso: "2026-02-01")],
                       "a correction of a correction replaces the same record")
        XCTAssertEqual(try facts([a, b, fix, revoke]).map(\.severity), [.serious])
        let revokeFirst = try c.amend(AmendmentBody(action: .revocation, target: a.id, reason: "x", replacement: nil), by: "samr", nonce: 6).transaction
        XCTAssertEqual(try facts([a, b, revokeFirst, fix, fixAgain]).map(\.severity), [.general], "a correction of a revoked record does not revive it")
        XCTAssertEqual(try facts([a, b, fix, revokeFirst]).map(\.severity), [.general], "revoking the original removes its corrected version")

        // Scores follow: the revocation changes the individual-business score.
        let model = try Models.individualBusiness()
        let before = try Evaluator.evaluate(model, try SubjectFacts(subject: subject, inputs: [a, b], asOfDate: asOf))
        let after = try Evaluator.evaluate(model, try SubjectFacts(subject: subject, inputs: [a, b, revoke], asOfDate: asOf))
        XCTAssertEqual(before.dimensions.first { $0.code == "violations" }?.points, -40)
        XCTAssertEqual(after.dimensions.first { $0.code == "violations" }?.points, -10)
    }

    func testInputsMustBeRecordsOfTheSubject() throws {
        let subject = try USCC("92330106MA2H4K7Q3A")
        let other = try c.attest(penalty(.minor, subject: "92330106MA2B6TX01T"), by: "samr", nonce: 1).transaction
        XCTAssertThrowsError(try SubjectFacts(subject: subject, inputs: [other], asOfDate: asOf)) { XCTAssertTrue("\($0)".contains("not 92330106MA2H4K7Q3A"), "\($0)") }
        let a = try c.attest(penalty(.minor), by: "samr", nonce: 2).transaction
        let orphan = try c.amend(AmendmentBody(action: .revocation, target: other.id, reason: "x", replacement: nil), by: "samr", nonce: 3).transaction
        XCTAssertThrowsError(try SubjectFacts(subject: subject, inputs: [a, orphan], asOfDate: asOf)) { XCTAssertTrue("\($0)".contains("not an earlier input"), "\($0)") }
        let consent = Transaction.sign(header: c.header("bank-a", nonce: 9), body: .consent(ConsentBody(action: .grant, subject: subject, grantee: "bank-a",
            purpose: .loanApplication, expiresAt: 1, evidence: Hashes.zero)), key: c.keys["bank-a"]!.signing)
        XCTAssertThrowsError(try SubjectFacts(subject: subject, inputs: [a, consent], asOfDate: asOf))
        let many = Array(repeating: a, count: FieldLimits.scoreInputs + 1)
        XCTAssertThrowsError(try SubjectFacts(subject: subject, inputs: many, asOfDate: asOf)) { XCTAssertEqual(($0 as? LedgerError)?.code, .fieldTooLarge) }
        // A model for enterprises does not score an individual business.
        XCTAssertThrowsError(try Evaluator.evaluate(try Models.enterprise(), try SubjectFacts(subject: subject, inputs: [a], asOfDate: asOf)))
    }

    func testFutureFactsAndIndustry() throws {
        var r = Records("91330106MA27C1308F")
        r.add(.registration, "2020-01-01", industry: "C13")
        r.add(.license, "2026-12-01", industry: "I65")
        r.add(.registration, "2023-01-01", industry: "")
        let facts = try r.facts()
        XCTAssertEqual(facts.facts.count, 2, "a record dated after the as-of date is not yet a fact")
        XCTAssertEqual(facts.industry, "C13", "industry of the last registration that names one")
        var r2 = Records("91330106MA27C1308F")
        r2.add(.license, "2021-01-01", industry: "H62")
        r2.add(.license, "2022-01-01", industry: "I65")
        XCTAssertEqual(try r2.facts().industry, "I65", "no registration names one: the last fact that does")
        XCTAssertEqual(try r2.score(try Models.enterprise()).industrySet, "services")
    }

    func testAttributeValuesAreClampedAndSumsBounded() throws {
        var r = Records("92330106MA2B6TX01T")
        for _ in 0..<1024 { r.add(.honor, "2026-01-01", ["x": Int64.max]) }
        let model = try ScoringModel(document: Array(VetoAndBoundaryTests.probe.utf8))
        let result = try r.score(model)
        XCTAssertEqual(result.points, 10_000, "clamped to the dimension, no overflow")
        XCTAssertEqual(result.indicators[0].value, ScoringModel.Limits.value, "sum clamped to ±10^12")
    }
}
