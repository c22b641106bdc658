import LedgerCore
@testable import Scoring
import XCTest

/// Every veto caps the grade whatever the points; grade boundaries fall exactly at the thresholds.
final class VetoAndBoundaryTests: XCTestCase {
    /// An exemplary individual business, scoring S.
    static func exemplaryShop() -> Records {
        var r = Records("92330106MA2B6TX01T")
        r.add(.registration, "2012-05-06", industry: "F52", ["registered_capital_yuan": 600_000])
        r.add(.license, "2023-03-01", industry: "F52")
        r.add(.license, "2024-03-01", industry: "F52")
        r.add(.taxGrade, "2026-04-30", industry: "F52", ["tax_grade": 1])
        r.add(.utilitiesPayment, "2026-10-31", industry: "F52", ["months_on_time": 12, "months_overdue": 0])
        r.add(.loanRepayment, "2026-10-10", industry: "F52", ["months_on_time": 24, "months_overdue": 0])
        r.add(.annualReport, "2025-06-15", industry: "F52", ["on_time": 1])
        r.add(.annualReport, "2026-06-15", industry: "F52", ["on_time": 1])
        r.add(.socialInsurance, "2026-09-30", industry: "F52", ["employees_insured": 8, "months_arrears": 0])
        r.add(.honor, "2025-12-01", industry: "F52", ["level": 3])
        r.add(.honor, "2024-12-01", industry: "F52", ["level": 1])
        return r
    }

    /// A fact that matches `selector`, dated `daysAgo` before 2026-11-21.
    static func fact(for s: ScoringModel.Selector, into r: inout Records, daysAgo: Int64 = 10) {
        let category = Category.allCases.first { s.categories & (1 << UInt32($0.rawValue)) != 0 }!
        let severity = Severity.allCases.last { s.severities & (1 << $0.rawValue) != 0 } ?? (category.hasSeverity ? .serious : .none)
        var attributes: [String: Int64] = [:]
        for c in s.conditions { attributes[c.attribute] = c.min != Int64.min ? c.min : c.max }
        let (y, m, d) = CivilCalendar.civil(fromDays: (try! LedgerDate(iso: "2026-11-21")).dayNumber - daysAgo)
        r.add(category, String(format: "%04d-%02d-%02d", Int(y), Int(m), Int(d)), severity, industry: "F52", attributes)
    }

    func checkEveryVetoCaps(_ model: ScoringModel, base: Records, file: StaticString = #filePath, line: UInt = #line) throws {
        let clean = try base.score(model)
        XCTAssertEqual(clean.grade, .s, "the base subject must score S: \(clean.points)", file: file, line: line)
        XCTAssertEqual(clean.vetoes, [], file: file, line: line)
        XCTAssertGreaterThanOrEqual(model.vetoes.count, 5, file: file, line: line)
        for veto in model.vetoes {
            var r = base
            Self.fact(for: veto.selector, into: &r)
            let result = try r.score(model)
            XCTAssertTrue(result.vetoes.contains(veto.id), "\(veto.id) must trigger", file: file, line: line)
            XCTAssertLessThan(result.pointsGrade, veto.cap, "\(veto.id): points alone (\(result.points)) give \(result.pointsGrade.name), better than the cap", file: file, line: line)
            XCTAssertEqual(result.grade, veto.cap, "\(veto.id) caps the grade at \(veto.cap.name)", file: file, line: line)
        }
    }

    func testEveryIndividualBusinessVetoCapsTheGrade() throws {
        try checkEveryVetoCaps(try Models.individualBusiness(), base: Self.exemplaryShop())
    }

    func testEveryEnterpriseVetoCapsTheGrade() throws {
        try checkEveryVetoCaps(try Models.enterprise(), base: Examples.foodFactory())
    }

    /// Vetoes with a window lapse; the worst of several caps wins; repaired facts do not veto.
    func testVetoWindowsAndCombinations() throws {
        let model = try Models.individualBusiness()
        var old = Self.exemplaryShop()
        old.add(.abnormalOperationList, "2023-11-20", industry: "F52")  // 1097 days before the as-of date
        XCTAssertEqual(try old.score(model).vetoes, [])
        var recent = Self.exemplaryShop()
        recent.add(.abnormalOperationList, "2023-11-22", industry: "F52")  // 1095 days: inside the window
        XCTAssertEqual(try recent.score(model).vetoes, ["abnormal_operation_3y"])
        var both = recent
        both.add(.seriousViolationList, "2026-01-01", industry: "F52")
        let r = try both.score(model)
        XCTAssertEqual(r.vetoes, ["serious_violation_list", "abnormal_operation_3y"])
        XCTAssertEqual(r.grade, .d)
        var repaired = recent
        repaired.add(.creditRepair, "2026-01-01", industry: "F52", ["repaired_category": 9])
        XCTAssertEqual(try repaired.score(model).vetoes, [])
        XCTAssertEqual(try repaired.score(model).grade, .s)
    }

    static let probe = """
    {"format": "creditledger-scorecard/v1", "kind": "scorecard", "name": "probe", "version": 1,
     "subject_kinds": ["individual_business", "enterprise"],
     "dimensions": [{"code": "all", "min": -10000, "max": 10000}],
     "indicators": [{"id": "x", "dimension": "all", "facts": {"category": "honor"}, "measure": "sum", "attribute": "x",
                     "linear": {"points_per": 1, "min": -10000, "max": 10000}}],
     "grades": [{"grade": "S", "min_points": 850}, {"grade": "A+", "min_points": 750}, {"grade": "A", "min_points": 650},
                {"grade": "B", "min_points": 550}, {"grade": "C", "min_points": 400}, {"grade": "D"}]}
    """

    /// Points exactly at each threshold get that grade; one point below gets the next.
    func testGradeBoundaries() throws {
        let model = try ScoringModel(document: Array(Self.probe.utf8))
        func grade(_ points: Int64) throws -> Grade {
            var r = Records("92330106MA2B6TX01T")
            r.add(.honor, "2026-01-01", ["x": points])
            let result = try r.score(model)
            XCTAssertEqual(Int64(result.points), points)
            return result.grade
        }
        let table: [(Int64, Grade, Grade)] = [(850, .s, .aPlus), (750, .aPlus, .a), (650, .a, .b), (550, .b, .c), (400, .c, .d)]
        for (threshold, at, below) in table {
            XCTAssertEqual(try grade(threshold), at, "\(threshold) points")
            XCTAssertEqual(try grade(threshold - 1), below, "\(threshold - 1) points")
        }
        XCTAssertEqual(try grade(10_000), .s)
        XCTAssertEqual(try grade(-10_000), .d)
        // The shipped scorecards use the same thresholds.
        for m in [try Models.individualBusiness(), try Models.enterprise()] {
            XCTAssertEqual(m.gradeMinimums, [850, 750, 650, 550, 400])
            for (threshold, at, below) in table {
                XCTAssertEqual(m.grade(forPoints: threshold), at)
                XCTAssertEqual(m.grade(forPoints: threshold - 1), below)
            }
        }
    }

    /// Risk levels change exactly at their probability bounds.
    func testRiskLevelBoundaries() throws {
        let model = try Models.riskWarning()
        XCTAssertEqual(model.levels.map(\.belowBasisPoints), [500, 1500, 3500, nil])
        // Intercept −3500 plus k × 250 (loan months overdue) walks the table grid.
        func level(monthsOverdue: Int64) throws -> (Int64, RiskLevel) {
            var r = Records("92330106MA2B6TX01T")
            r.add(.loanRepayment, "2026-10-01", ["months_overdue": monthsOverdue])
            let result = try r.score(model)
            return (result.risk!.probabilityBasisPoints, result.risk!.level)
        }
        // z = −3500 + 250 m lands on table entry 18 + m.
        let expected: [(Int64, Int64, RiskLevel)] = [
            (0, 293, .green), (2, 474, .green), (3, 601, .yellow), (7, 1480, .yellow), (8, 1824, .orange),
            (11, 3208, .orange), (12, 3775, .red), (24, 9241, .red), (99, 9241, .red),  // the feature is capped at 24 months
        ]
        for (months, bp, colour) in expected {
            let (p, l) = try level(monthsOverdue: months)
            XCTAssertEqual(p, bp, "\(months) months overdue")
            XCTAssertEqual(l, colour, "\(months) months overdue")
        }
    }
}
