import Foundation
import LedgerNode
import XCTest

final class AttestationRequestTests: XCTestCase {
    /// The raw payload is encrypted as written: whole numbers past 2^53 (case, account or
    /// licence numbers) keep every digit, and fractions and other values stay as they were.
    func testPayloadNumbersAreKeptExactly() throws {
        let json = #"{"case_no": 9007199254740993, "negative": -9223372036854775808, "rate": 1.5, "big": 1e300, "flag": true, "none": null}"#
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        let text = String(decoding: try JSONEncoder.canonical.encode(value), as: UTF8.self)
        XCTAssertTrue(text.contains("\"case_no\":9007199254740993"), text)
        XCTAssertTrue(text.contains("\"negative\":-9223372036854775808"), text)
        XCTAssertTrue(text.contains("\"rate\":1.5"), text)
        XCTAssertTrue(text.contains("\"flag\":true"), text)
        XCTAssertTrue(text.contains("\"none\":null"), text)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), value, "encoding is stable")
        // A whole number beyond 64 bits (a 20-digit account number) is refused, not rounded.
        XCTAssertThrowsError(try JSONDecoder().decode(JSONValue.self, from: Data(#"{"account_no": 33050161612700000123}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("write it as a string"), "\($0)")
        }
        XCTAssertThrowsError(try JSONDecoder().decode(JSONValue.self, from: Data(#"[-9223372036854775809]"#.utf8)))
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: Data(#"[0.5, 12345678901234567890.5]"#.utf8)),
                       .array([.number(0.5), .number(12345678901234567890.5)]), "numbers with a fraction stay Doubles")
    }

    /// A request file's fields become ledger history: a misspelt one is refused with its name,
    /// a missing one is named, and the shipped examples read.
    func testUnknownOrMissingFieldsAreNamed() throws {
        let good = #"{"subject": "91330106MA27XKT2XT", "category": "penalty", "severity": "general", "event_date": "2026-03-14", "#
            + #""industry": "C13", "attributes": {"amount_yuan": 5000}, "payload": {"decision_no": "12"}}"#
        let request = try AttestationRequest.decode(Array(good.utf8), source: "good.json")
        XCTAssertEqual(request.attributes, ["amount_yuan": 5000])
        let misspelt = good.replacingOccurrences(of: "\"attributes\"", with: "\"atributes\"")
        XCTAssertThrowsError(try AttestationRequest.decode(Array(misspelt.utf8), source: "f.json")) {
            XCTAssertTrue("\($0)".contains("f.json: unknown field \"atributes\""), "\($0)")
        }
        let missing = good.replacingOccurrences(of: #""category": "penalty", "#, with: "")
        XCTAssertThrowsError(try AttestationRequest.decode(Array(missing.utf8), source: "f.json")) {
            XCTAssertTrue("\($0)".contains("field \"category\" is missing"), "\($0)")
        }
        XCTAssertThrowsError(try AttestationRequest.decode(Array("[1]".utf8), source: "f.json")) {
            XCTAssertTrue("\($0)".contains("not a JSON object"), "\($0)")
        }
        // A file saved in GBK (有限 is D3 D0 CF DE there) is named as not UTF-8, not as "not a JSON object".
        let gbk = Array(#"{"subject": "91330106MA27XKT2XT", "payload": ""#.utf8) + [0xD3, 0xD0, 0xCF, 0xDE] + Array(#""}"#.utf8)
        XCTAssertThrowsError(try AttestationRequest.decode(gbk, source: "gbk.json")) {
            XCTAssertTrue("\($0)".contains("gbk.json: it is not UTF-8 text (saved in GBK or another encoding?)"), "\($0)")
        }
        // A field given twice is read as the first here and as the last by most tools: refused
        // (the subject given first was attested; found by black-box testing, 2026-12-07).
        let twice = good.replacingOccurrences(of: #"{"subject": "91330106MA27XKT2XT", "#,
                                              with: #"{"subject": "92330106MA2H2DQ93G", "subject": "91330106MA27XKT2XT", "#)
        XCTAssertThrowsError(try AttestationRequest.decode(Array(twice.utf8), source: "f.json")) {
            XCTAssertTrue("\($0)".contains("f.json: not JSON every tool reads alike: \"subject\" appears twice in one object"), "\($0)")
        }
        // An attribute that is not a whole number is named (it was "not valid JSON").
        for value in ["1.5", "99999999999999999999"] {
            let odd = good.replacingOccurrences(of: "\"amount_yuan\": 5000", with: "\"amount_yuan\": \(value)")
            XCTAssertThrowsError(try AttestationRequest.decode(Array(odd.utf8), source: "f.json")) {
                XCTAssertTrue("\($0)".contains("f.json: attribute amount_yuan is") && "\($0)".contains("attribute values are whole numbers"), "\($0)")
            }
        }
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Genesis/examples").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter { $0.hasSuffix(".json") }
        XCTAssertFalse(files.isEmpty)
        for name in files {
            let bytes = Array(try Data(contentsOf: examples.appendingPathComponent(name)))
            XCTAssertNoThrow(try AttestationRequest.decode(bytes, source: name), name)
        }
    }

    /// `--policy` must name something: an empty name or version is refused before any request.
    func testAPolicySpecThatNamesNothingIsRefused() {
        let client = LedgerClient(baseURL: "http://127.0.0.1:9")
        for spec in ["", "@", "@2", "credit-grade@"] {
            XCTAssertThrowsError(try client.policyHash(spec), spec) {
                XCTAssertTrue("\($0)".contains("is not a name, name@version"), "\(spec): \($0)")
            }
        }
    }
}
