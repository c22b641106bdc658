import LedgerCore
import LedgerCrypto
@testable import Scoring
import XCTest

/// Bad model documents are refused with a code and a path naming the problem.
final class ModelDocumentTests: XCTestCase {
    static let scorecard = """
    {
      "format": "creditledger-scorecard/v1", "kind": "scorecard", "name": "test/card", "version": 3,
      "subject_kinds": ["enterprise"],
      "dimensions": [{"code": "main", "min": 0, "max": 1000}],
      "indicators": [
        {"id": "licences", "dimension": "main", "facts": {"category": "license"}, "measure": "count",
         "bands": [{"from": 1, "points": 500}, {"from": 2, "points": 700}]}
      ],
      "vetoes": [{"id": "listed", "facts": {"category": "serious_violation_list"}, "cap": "D"}],
      "grades": [{"grade": "S", "min_points": 900}, {"grade": "A+", "min_points": 800}, {"grade": "A", "min_points": 700},
                 {"grade": "B", "min_points": 600}, {"grade": "C", "min_points": 500}, {"grade": "D"}]
    }
    """

    static let risk = """
    {
      "format": "creditledger-scorecard/v1", "kind": "risk_warning", "name": "test/risk", "version": 1,
      "subject_kinds": "enterprise", "intercept_milli": -3000,
      "features": [{"id": "penalties", "facts": {"category": "penalty"}, "measure": "count", "cap": 5, "coefficient_milli": 450}],
      "levels": [{"level": "green", "below_bp": 500, "grade": "A"}, {"level": "yellow", "below_bp": 1500, "grade": "B"},
                 {"level": "orange", "below_bp": 3000, "grade": "C"}, {"level": "red", "grade": "D"}]
    }
    """

    func compile(_ text: String) throws -> ScoringModel { try ScoringModel(document: Array(text.utf8)) }

    /// Replaces `from` with `to` in `base` (which must contain it) and expects `code` at a path containing `path`.
    func expect(_ code: ModelError.Code, path: String = "", in base: String = scorecard, _ from: String, _ to: String,
                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(base.contains(from), "test setup: \(from) not in the document", file: file, line: line)
        XCTAssertThrowsError(try compile(base.replacingOccurrences(of: from, with: to)), file: file, line: line) { error in
            guard let e = error as? ModelError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
            if !path.isEmpty { XCTAssertTrue(e.path.contains(path), "\(e)", file: file, line: line) }
        }
    }

    func testValidDocumentsCompile() throws {
        let m = try compile(Self.scorecard)
        XCTAssertEqual(m.name, "test/card")
        XCTAssertEqual(m.version, 3)
        XCTAssertEqual(m.hash, SHA256.hash(Array(Self.scorecard.utf8)), "identity is SHA-256 of the exact bytes")
        XCTAssertNotEqual(try compile(Self.scorecard + " ").hash, m.hash, "a different byte is a different model")
        let r = try compile(Self.risk)
        XCTAssertEqual(r.kind, .riskWarning)
        XCTAssertEqual(r.dimensionCodes, ["penalties", "logit_milli", "level"])
    }

    func testNamedErrors() {
        // unknown indicator measure, unknown fact category, undeclared dimension
        expect(.unknownMeasure, path: "indicators[0].measure", "\"measure\": \"count\"", "\"measure\": \"average\"")
        expect(.unknownCategory, path: "indicators[0].facts.category", "\"category\": \"license\"", "\"category\": \"bankruptcy\"")
        expect(.unknownDimension, path: "indicators[0].dimension", "\"dimension\": \"main\"", "\"dimension\": \"growth\"")
        // grades: missing, out of order, overlapping, D with a minimum
        expect(.missingGrade, path: "grades", "{\"grade\": \"A\", \"min_points\": 700},", "")
        expect(.missingGrade, path: "grades[1]", "{\"grade\": \"A+\", \"min_points\": 800}, {\"grade\": \"A\", \"min_points\": 700}",
               "{\"grade\": \"A\", \"min_points\": 800}, {\"grade\": \"A+\", \"min_points\": 700}")
        expect(.overlappingThresholds, path: "grades[2].min_points", "\"min_points\": 700", "\"min_points\": 800")
        expect(.overlappingThresholds, path: "grades[5]", "{\"grade\": \"D\"}", "{\"grade\": \"D\", \"min_points\": 0}")
        expect(.missingKey, path: "grades[4].min_points", "{\"grade\": \"C\", \"min_points\": 500}", "{\"grade\": \"C\"}")
        expect(.overlappingThresholds, path: "bands[1].from", "{\"from\": 2, \"points\": 700}", "{\"from\": 1, \"points\": 700}")
        // coefficients and intercept out of the fixed-point range
        expect(.coefficientOutOfRange, path: "features[0].coefficient_milli", in: Self.risk, "450", "10001")
        expect(.coefficientOutOfRange, path: "features[0].coefficient_milli", in: Self.risk, "450", "-20000")
        expect(.coefficientOutOfRange, path: "intercept_milli", in: Self.risk, "-3000", "-20001")
        expect(.overlappingThresholds, path: "levels[2].below_bp", in: Self.risk, "\"below_bp\": 3000", "\"below_bp\": 1500")
        expect(.missingGrade, path: "levels[1].level", in: Self.risk, "\"level\": \"yellow\"", "\"level\": \"amber\"")
        expect(.overlappingThresholds, path: "levels[3]", in: Self.risk, "{\"level\": \"red\", \"grade\": \"D\"}",
               "{\"level\": \"red\", \"below_bp\": 9000, \"grade\": \"D\"}")
        // fixed-point only, strict JSON
        expect(.notInteger, "\"points\": 500", "\"points\": 500.5")
        expect(.notInteger, in: Self.risk, "450", "0.45")
        expect(.notInteger, "\"points\": 500", "\"points\": 5e2")
        expect(.malformedJSON, "\"version\": 3,", "\"version\": 3, \"version\": 4,")
        expect(.malformedJSON, "\"min\": 0", "\"min\": 00")
        expect(.malformedJSON, "\"subject_kinds\": [\"enterprise\"]", "\"subject_kinds\": [\"enterprise\",]")
        expect(.unknownKey, path: "indicators[0].weight", "\"measure\": \"count\",", "\"measure\": \"count\", \"weight\": 2,")
        expect(.unknownKey, path: "colour", "\"version\": 3,", "\"version\": 3, \"colour\": \"blue\",")
        expect(.missingKey, path: "grades", "\"grades\": [", "\"ignored\": [")
        expect(.wrongType, path: "version", "\"version\": 3", "\"version\": \"3\"")
        expect(.unsupportedFormat, path: "format", "scorecard/v1", "scorecard/v2")
        expect(.unknownKind, path: "kind", "\"kind\": \"scorecard\"", "\"kind\": \"neural\"")
        expect(.duplicateID, path: "vetoes[1].id", "\"cap\": \"D\"}]", "\"cap\": \"D\"}, {\"id\": \"listed\", \"facts\": {\"category\": \"honor\"}, \"cap\": \"C\"}]")
        expect(.valueOutOfRange, path: "facts.severity", "\"category\": \"license\"", "\"category\": \"license\", \"severity\": \"serious\"")
        expect(.valueOutOfRange, path: "vetoes[0].cap", "\"cap\": \"D\"", "\"cap\": \"E\"")
        expect(.valueOutOfRange, path: "name", "\"test/card\"", "\"Test Card\"")
        expect(.valueOutOfRange, path: "dimensions[0].max", "\"max\": 1000", "\"max\": 10001")
        expect(.unknownKey, path: "indicators[0]", "\"measure\": \"count\",", "\"measure\": \"count\", \"linear\": {\"points_per\": 1, \"min\": 0, \"max\": 1},")
        expect(.missingKey, path: "attribute", "\"measure\": \"count\"", "\"measure\": \"sum\"")
        // Found in review (2026-12-06): `if_missing` is refused on a count even when 0, and an
        // indicator id is unique across the general list and every industry set, not per set.
        expect(.valueOutOfRange, path: "indicators[0].if_missing", "\"measure\": \"count\",", "\"measure\": \"count\", \"if_missing\": 0,")
        let set = { (id: String, name: String) in
            "{\"id\": \"\(id)\", \"industries\": [\"C\"], \"indicators\": [{\"id\": \"\(name)\", \"dimension\": \"main\", \"facts\": {\"category\": \"honor\"}, "
                + "\"measure\": \"count\", \"bands\": [{\"from\": 1, \"points\": 100}]}]}"
        }
        let twoSets = "\"vetoes\": [", sets = "\"industry_sets\": [\(set("c1", "honors")), \(set("c2", "honors"))], \"vetoes\": ["
        expect(.duplicateID, path: "industry_sets[1].indicators[0].id", twoSets, sets)
        XCTAssertNoThrow(try compile(Self.scorecard.replacingOccurrences(of: twoSets,
            with: "\"industry_sets\": [\(set("c1", "honors")), \(set("c2", "awards"))], \"vetoes\": [")))
    }

    func testSizeAndDepthLimits() throws {
        let padding = String(repeating: " ", count: ScoringModel.Limits.documentBytes)
        XCTAssertThrowsError(try compile(Self.scorecard + padding)) { XCTAssertEqual(($0 as? ModelError)?.code, .tooLarge) }
        var deep = "1"
        for _ in 0..<20 { deep = "[\(deep)]" }
        expect(.malformedJSON, "\"version\": 3,", "\"version\": 3, \"x\": \(deep),")
        let many = (0...ScoringModel.Limits.indicators).map {
            "{\"id\": \"i\($0)\", \"dimension\": \"main\", \"facts\": {\"category\": \"license\"}, \"measure\": \"count\", \"bands\": [{\"from\": 1, \"points\": 1}]}"
        }.joined(separator: ",")
        expect(.tooMany, path: "indicators", "\"indicators\": [", "\"indicators\": [\(many),")
        XCTAssertThrowsError(try compile(Self.scorecard + "x")) { XCTAssertEqual(($0 as? ModelError)?.code, .malformedJSON) }
        XCTAssertThrowsError(try compile("\u{FEFF}" + Self.scorecard)) { XCTAssertEqual(($0 as? ModelError)?.code, .malformedJSON) }
        XCTAssertThrowsError(try ScoringModel(document: Array(Self.scorecard.utf8) + [0xFF])) { XCTAssertEqual(($0 as? ModelError)?.code, .malformedJSON) }
        XCTAssertThrowsError(try ScoringModel(document: Array(Self.scorecard.replacingOccurrences(of: "test/card", with: "a\tb").utf8))) {
            XCTAssertEqual(($0 as? ModelError)?.code, .malformedJSON, "raw control character")
        }
        // Every prefix of a valid document fails with a ModelError, never a crash.
        let bytes = Array(Self.risk.utf8)
        for n in stride(from: 0, to: bytes.count, by: 3) {
            XCTAssertThrowsError(try ScoringModel(document: Array(bytes.prefix(n)))) { XCTAssertTrue($0 is ModelError, "prefix \(n): \($0)") }
        }
    }

    func testStrictParserEscapesAndUnicode() throws {
        let text = Self.scorecard.replacingOccurrences(of: "\"version\": 3,", with: "\"version\": 3, \"title\": \"\\u4e2a\\u4f53 \\ud83d\\ude00 \\\"q\\\" \\\\ / 个体\",")
        XCTAssertEqual(try compile(text).title, "个体 😀 \"q\" \\ / 个体")
        expect(.malformedJSON, "\"version\": 3,", "\"version\": 3, \"title\": \"\\ud83d\",")
        expect(.malformedJSON, "\"version\": 3,", "\"version\": 3, \"title\": \"\\x41\",")
    }
}
