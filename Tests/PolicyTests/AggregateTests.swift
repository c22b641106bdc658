import LedgerCore
import LedgerCrypto
import Policy
import Scoring
import XCTest

/// Ledger facts for aggregates only: a fixed list of grade cells, in the order given.
struct CellFacts: PolicyFacts {
    let cells: [GradeCell]
    let installed: [InstalledModel]
    var height: UInt64 { 7 }
    var logSize: UInt64 { 100 }
    var asOfDate: LedgerDate { try! LedgerDate(20261121) }
    func models() -> [InstalledModel] { installed }
    func policy(hash: Hash) -> InstalledPolicy? { nil }
    func records(of subject: USCC, limit: Int) throws -> [LoggedScoreRecord] { throw unused() }
    func transaction(at logIndex: UInt64) throws -> LoggedTransaction { throw unused() }
    func newestScoreUpdate(of subject: USCC, limit: Int, where matches: (LoggedTransaction) throws -> Bool) throws -> LoggedTransaction? { throw unused() }
    func consents(of subject: USCC, grantee: String, limit: Int) throws -> [LoggedTransaction] { throw unused() }
    func blockTimestamp(holding transaction: LoggedTransaction) throws -> UInt64 { throw unused() }
    var readsPayloads: Bool { false }
    func payload(of record: LoggedTransaction) throws -> [UInt8]? { throw unused() }
    func gradeCells(model: String, limit: Int) throws -> [GradeCell] { Array(cells.prefix(limit + 1)) }
    func queryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] { throw unused() }
    func confirmedQueryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] { throw unused() }
    func unused() -> Error { LedgerError(.notFound, "an aggregate reads only grade cells") }
}

/// The aggregate engine on its own: every number it gives is a sum over industry × district
/// cells of at least k subjects, so no answer, and no difference of answers, depends on a
/// smaller cell.
final class AggregateTests: XCTestCase {
    var genesis: Genesis!
    var engine: PolicyEngine!
    var statistics: PolicyDocument!
    var seed: UInt64 = 11

    override func setUp() async throws {
        genesis = try PolicyConsortium().genesis
        engine = PolicyEngine(genesis: genesis)
        let installed = try XCTUnwrap(genesis.policies.first { $0.name == "industry-statistics" })
        statistics = try PolicyDocument(bytes: installed.document, genesis: genesis)
        XCTAssertEqual(statistics.minCellSubjects, 10)
    }

    func random(_ n: Int) -> Int {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Int((seed >> 33) % UInt64(n))
    }

    func subjects(_ n: Int, industry: String, district: String, grades: [Grade]) -> [GradeCell] {
        (0..<n).map { i in
            GradeCell(subject: USCCGenerator.make(kind: .enterprise, division: district, random: random), industry: industry,
                      grade: grades[i % grades.count])
        }
    }

    /// The result text, or the refusal code.
    func ask(_ cells: [GradeCell], industry: String? = nil, district: String? = nil, model: String = "enterprise") throws -> String {
        var params: [(name: String, value: String)] = [("model", model)]
        if let industry { params.append(("industry", industry)) }
        if let district { params.append(("district", district)) }
        let query = PolicyQuery(requester: genesis.member("bank-a")!, subject: nil, purpose: .statistics, parameters: params,
                                requestedAtMillis: nowMillis)
        do {
            return try engine.evaluate(statistics, query, facts: CellFacts(cells: cells, installed: genesis.models)).result
        } catch let refusal as PolicyRefusal {
            return refusal.code.rawValue
        }
    }

    func counts(_ result: String) throws -> (subjects: Int, grades: [String: Int]) {
        let obj = try JSONSerialization.jsonObject(with: Data(result.utf8)) as! [String: Any]
        let f = obj["fields"] as! [String: Any]
        return (f["subjects"] as! Int, f["grades"] as! [String: Int])
    }

    /// District 330106 holds 10 C13 subjects and one F51 subject: the F51 subject is in no
    /// answer, so (district) minus (district, C13) is zero rather than its grade.
    func testALoneSubjectBesideAKeptCellIsCountedNowhere() throws {
        let c13 = subjects(10, industry: "C13", district: "330106", grades: [.a, .b, .b, .c])
        let f51 = subjects(1, industry: "F51", district: "330106", grades: [.d])
        let cells = c13 + f51
        let district = try ask(cells, district: "330106")
        let both = try ask(cells, industry: "C13", district: "330106")
        XCTAssertEqual(district, both, "the district's answer is its C13 cell's")
        XCTAssertEqual(try counts(district).subjects, 10)
        XCTAssertEqual(try counts(district).grades, ["S": 0, "A+": 0, "A": 3, "B": 5, "C": 2, "D": 0])
        XCTAssertEqual(try ask(cells), both, "nor is it in the answer for no filter")
        XCTAssertEqual(try ask(cells, industry: "F51", district: "330106"), "cell_under_k")
        XCTAssertEqual(try ask(cells, industry: "F51"), "cell_under_k")
    }

    /// A coarse request made only of small fine cells is refused, however many subjects it spans.
    func testACoarseCellOfSmallFineCellsIsRefused() throws {
        let cells = ["330106", "330108", "330110"].flatMap { subjects(5, industry: "E48", district: $0, grades: [.b, .c]) }
        XCTAssertEqual(cells.count, 15)
        XCTAssertEqual(try ask(cells, industry: "E48"), "cell_under_k", "15 subjects, but in cells of 5")
        XCTAssertEqual(try ask(cells), "cell_under_k")
        XCTAssertEqual(try ask(cells, district: "330108"), "cell_under_k")
        // Subjects with no industry on record form cells of their own.
        let blank = subjects(4, industry: "", district: "330106", grades: [.a]) + subjects(10, industry: "C13", district: "330106", grades: [.a])
        XCTAssertEqual(try counts(try ask(blank, district: "330106")).subjects, 10)
    }

    /// No answer changes when subjects of small fine cells come, go or change grade, as long as
    /// their cells stay small; and the answer does not depend on the order the cells are read in.
    func testAnswersDependOnlyOnKeptFineCellsAndNotOnOrder() throws {
        let kept = subjects(12, industry: "C13", district: "330106", grades: [.s, .a, .b, .b, .c])
            + subjects(10, industry: "F51", district: "330106", grades: [.aPlus, .b])
            + subjects(11, industry: "C13", district: "330108", grades: [.b, .d])
        let small = subjects(9, industry: "I65", district: "330106", grades: [.a])
            + subjects(3, industry: "C13", district: "330110", grades: [.d])
            + subjects(1, industry: "F51", district: "330108", grades: [.s])
        // The small cells changed: one subject more in one, another's grade changed, one gone.
        var changed = small + subjects(1, industry: "C13", district: "330110", grades: [.s])
        changed[9] = GradeCell(subject: changed[9].subject, industry: "C13", grade: .aPlus)
        changed.remove(at: 12)
        let requests: [(String?, String?)] = [(nil, nil), ("C13", nil), ("F51", nil), ("I65", nil), (nil, "330106"), (nil, "330108"),
                                              (nil, "330110"), ("C13", "330106"), ("C13", "330108"), ("C13", "330110"),
                                              ("F51", "330106"), ("F51", "330108"), ("I65", "330106")]
        var answered = 0
        for (industry, district) in requests {
            let base = try ask(kept + small, industry: industry, district: district)
            XCTAssertEqual(try ask(changed + kept, industry: industry, district: district), base, "\(industry ?? "-") \(district ?? "-")")
            XCTAssertEqual(try ask(kept, industry: industry, district: district), base, "the same as with no small cell at all")
            for _ in 0..<5 {
                var shuffled = kept + small
                for i in shuffled.indices.reversed() { shuffled.swapAt(i, random(i + 1)) }
                XCTAssertEqual(try ask(shuffled, industry: industry, district: district), base, "the order cells are read in does not matter")
            }
            if base != "cell_under_k" { answered += 1 }
        }
        XCTAssertEqual(answered, 8)
        XCTAssertEqual(try counts(try ask(kept + small)).subjects, 33)
        XCTAssertEqual(try counts(try ask(kept + small)).grades, ["S": 3, "A+": 5, "A": 3, "B": 15, "C": 2, "D": 5])
        // Differencing nested answers leaves whole kept cells: (330106) − (330106, C13) is the F51 cell.
        let district = try counts(try ask(kept + small, district: "330106")), c13 = try counts(try ask(kept + small, industry: "C13", district: "330106"))
        XCTAssertEqual(district.subjects - c13.subjects, 10)
    }

    /// The cost bound still holds: more subjects than `max_records` is refused before counting.
    func testTheCostLimitStillApplies() throws {
        var doc = try XCTUnwrap(String(bytes: genesis.policies.first { $0.name == "industry-statistics" }!.document, encoding: .utf8))
        doc = doc.replacingOccurrences(of: "\"max_records\": 1000000", with: "\"max_records\": 20")
        let small = try PolicyDocument(bytes: Array(doc.utf8), genesis: genesis)
        XCTAssertEqual(small.maxRecords, 20)
        statistics = small
        XCTAssertEqual(try ask(subjects(21, industry: "C13", district: "330106", grades: [.a])), "cost_limit")
        XCTAssertNotEqual(try ask(subjects(20, industry: "C13", district: "330106", grades: [.a])), "cost_limit")
    }

    /// A grade distribution is over a scorecard's grades: a risk model is a wrong parameter, not
    /// a cell under k (it was answered `cell_under_k`, as if too few subjects; black-box testing).
    func testARiskModelIsAnInvalidParameterNotASmallCell() throws {
        XCTAssertTrue(genesis.models.contains { $0.name == "risk-warning" })
        let many = subjects(30, industry: "C13", district: "330106", grades: [.a, .b])
        XCTAssertEqual(try ask(many, model: "risk-warning"), "invalid_parameters")
        XCTAssertEqual(try ask(many, model: "no-such-model"), "invalid_parameters")
        XCTAssertNotEqual(try ask(many), "invalid_parameters")
    }
}
