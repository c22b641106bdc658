import LedgerCore
@testable import Scoring
import XCTest

/// docs/SCORING.md §9, worked by hand there: inputs → exact dimension points, total and grade.
final class WorkedExampleTests: XCTestCase {
    func dims(_ r: ScoreResult) -> [String: Int32] { Dictionary(uniqueKeysWithValues: r.dimensions.map { ($0.code, $0.points) }) }
    func indicator(_ r: ScoreResult, _ id: String) -> Int64? { r.indicators.first { $0.id == id }?.points }

    /// Example A: 西湖茶叶店, individual business.
    func testExampleAIndividualBusiness() throws {
        let r = try Examples.teaShop().score(try Models.individualBusiness())
        XCTAssertEqual(r.dimensions.map(\.code), ["honesty", "lawful", "discipline", "violations", "social", "basic"])
        XCTAssertEqual(dims(r), ["honesty": 130, "lawful": 140, "discipline": 150, "violations": -10, "social": 50, "basic": 225])
        XCTAssertEqual(r.points, 685)
        XCTAssertEqual(r.pointsGrade, .a)
        XCTAssertEqual(r.grade, .a)
        XCTAssertEqual(r.vetoes, [])
        XCTAssertNil(r.industrySet)
        XCTAssertEqual(r.factCount, 10)
        // The indicator lines of the worked example.
        let expected: [String: Int64] = [
            "tax_grade": 90, "utilities_on_time": 50, "utilities_overdue": -10, "loan_on_time": 0, "loan_overdue": 0,
            "registered": 80, "licensed": 60, "clean_record": 0, "reports_on_time": 100, "reports_late": 0,
            "social_insurance": 50, "insurance_arrears": 0, "penalty_minor": -10, "penalty_general": 0, "penalty_serious": 0,
            "judgments": 0, "judgments_minor": 0, "abnormal_operation": 0, "dishonest_debtor": 0, "serious_violation": 0,
            "honors": 30, "honors_high": 0, "jobs": 20, "years_in_operation": 200, "capital": 25,
        ]
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: r.indicators.map { ($0.id, $0.points) }), expected)
        XCTAssertEqual(r.indicators.first { $0.id == "years_in_operation" }?.value, 2782)
        XCTAssertNil(r.indicators.first { $0.id == "loan_on_time" }?.value, "no loan record: the measure has no value")
    }

    /// Example B: 之江食品有限公司, manufacturing enterprise: general plus manufacturing indicators.
    func testExampleBEnterpriseManufacturing() throws {
        let r = try Examples.foodFactory().score(try Models.enterprise())
        XCTAssertEqual(r.industrySet, "manufacturing")
        XCTAssertEqual(dims(r), ["profile": 200, "operations": 244, "innovation": 70, "compliance": 200, "social": 90, "risk_warning": 60])
        XCTAssertEqual(r.points, 864)
        XCTAssertEqual(r.grade, .s)
        XCTAssertEqual(indicator(r, "years_in_operation"), 150)
        XCTAssertEqual(r.indicators.first { $0.id == "years_in_operation" }?.value, 4282)
        XCTAssertEqual(indicator(r, "mfg_patents"), 20)
        XCTAssertEqual(indicator(r, "key_changes"), 0, "one key change in a year is not yet frequent")
        XCTAssertEqual(indicator(r, "property_mortgaged"), -40)
        XCTAssertEqual(indicator(r, "software"), 0)
        XCTAssertNil(indicator(r, "svc_trademarks"), "services indicators do not apply to manufacturing")
    }

    /// Example C: the veto caps the grade regardless of points.
    func testExampleCVetoCapsTheGrade() throws {
        let r = try Examples.foodFactoryListed().score(try Models.enterprise())
        XCTAssertEqual(dims(r)["compliance"], 0)
        XCTAssertEqual(r.points, 664)
        XCTAssertEqual(r.pointsGrade, .a)
        XCTAssertEqual(r.vetoes, ["dishonest_judgment_debtor"])
        XCTAssertEqual(r.grade, .c)
    }

    /// Example C′: a credit repair of the listing lifts both the deduction and the veto.
    func testExampleCRepairedLiftsTheVeto() throws {
        var records = Examples.foodFactoryListed()
        records.add(.creditRepair, "2026-11-01", industry: "C13", ["repaired_category": 8])
        let r = try records.score(try Models.enterprise())
        XCTAssertEqual(r.points, 864)
        XCTAssertEqual(r.vetoes, [])
        XCTAssertEqual(r.grade, .s)
        // A repair dated before the listing covers nothing.
        var early = Examples.foodFactoryListed()
        early.add(.creditRepair, "2026-07-31", industry: "C13", ["repaired_category": 8])
        XCTAssertEqual(try early.score(try Models.enterprise()).grade, .c)
    }

    /// Examples D: the risk-warning model on A, B and C (logit, table interpolation, colour).
    func testExampleDRiskWarning() throws {
        let model = try Models.riskWarning()
        let a = try Examples.teaShop().score(model)
        XCTAssertEqual(a.risk?.logitMilli, -3030)
        XCTAssertEqual(a.risk?.probabilityBasisPoints, 461, "373 + (474 − 373) × 220 / 250, truncated")
        XCTAssertEqual(a.risk?.level, .green)
        XCTAssertEqual(a.risk?.bandBasisPoints, 0..<500)
        XCTAssertEqual(a.points, 461)
        XCTAssertEqual(a.grade, .a)
        XCTAssertEqual(a.dimensions.map(\.code), model.features.map(\.id) + ["logit_milli", "level"])
        XCTAssertEqual(dims(a)["penalties"], 350)
        XCTAssertEqual(dims(a)["utilities_overdue_months"], 120)
        XCTAssertEqual(dims(a)["level"], 1)

        let b = try Examples.foodFactory().score(model)
        XCTAssertEqual(b.risk?.logitMilli, -2500)
        XCTAssertEqual(b.risk?.probabilityBasisPoints, 759)
        XCTAssertEqual(b.risk?.level, .yellow)
        XCTAssertEqual(b.grade, .b)

        let c = try Examples.foodFactoryListed().score(model)
        XCTAssertEqual(c.risk?.logitMilli, 0)
        XCTAssertEqual(c.risk?.probabilityBasisPoints, 5000)
        XCTAssertEqual(c.risk?.level, .red)
        XCTAssertEqual(c.risk?.bandBasisPoints, 3500..<10_001)
        XCTAssertEqual(dims(c)["level"], 4)
        XCTAssertEqual(c.grade, .d)
    }

    /// The logistic table: exact at grid points, interpolated between, constant outside.
    func testLogisticTable() {
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: 0), 5000)
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: -8000), 3)
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: -100_000), 3)
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: 8000), 9997)
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: 120_000_000), 9997)
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: 125), 5311, "5000 + 622 × 125 / 250")
        XCTAssertEqual(LogisticTable.probabilityBasisPoints(logitMilli: -1), 4997, "4378 + 622 × 249 / 250 = 4378 + 619.5, truncated")
        var previous: Int64 = 0
        for z in stride(from: Int64(-9000), through: 9000, by: 7) {
            let p = LogisticTable.probabilityBasisPoints(logitMilli: z)
            XCTAssertGreaterThanOrEqual(p, previous, "monotone at \(z)")
            previous = p
        }
        XCTAssertEqual(LogisticTable.basisPoints.count, 65)
        for (i, p) in LogisticTable.basisPoints.enumerated() {
            XCTAssertEqual(p + LogisticTable.basisPoints[64 - i], 10_000, "the table is symmetric about z = 0 (entry \(i))")
        }
    }

    /// Day arithmetic used by `within_days` and `days_since_*`.
    func testCalendar() throws {
        XCTAssertEqual(try LedgerDate(iso: "1970-01-01").dayNumber, 0)
        XCTAssertEqual(try LedgerDate(iso: "2026-11-21").dayNumber - (try LedgerDate(iso: "2019-04-10").dayNumber), 2782)
        XCTAssertEqual(try LedgerDate(iso: "2026-11-21").dayNumber - (try LedgerDate(iso: "2015-03-02").dayNumber), 4282)
        XCTAssertEqual(try LedgerDate(chinaStandardTimeMillis: asOfMillis), try LedgerDate(iso: "2026-11-21"))
        // 16:00 UTC is already the next day in China.
        XCTAssertEqual(try LedgerDate(chinaStandardTimeMillis: asOfMillis + 12 * 3_600_000), try LedgerDate(iso: "2026-11-22"))
        // A block time past what a date holds is an error (it trapped: found in review, 2026-12-06).
        XCTAssertThrowsError(try LedgerDate(chinaStandardTimeMillis: .max))
        for day in stride(from: Int64(-1000), through: 40_000, by: 37) {
            let (y, m, d) = CivilCalendar.civil(fromDays: day)
            XCTAssertEqual(CivilCalendar.days(year: y, month: m, day: d), day)
        }
    }
}
