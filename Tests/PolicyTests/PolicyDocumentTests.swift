import LedgerCore
import Policy
import XCTest

final class PolicyDocumentTests: XCTestCase {
    func testShippedPoliciesParseAndSayWhatTheyReturn() throws {
        let genesis = try PolicyConsortium().genesis
        XCTAssertEqual(genesis.policies.map(\.name).sorted(),
                       ["credit-grade", "full-profile", "industry-statistics", "loan-pre-check", "my-queries", "risk-flags"])
        for p in genesis.policies {
            let d = try PolicyDocument(bytes: p.document, genesis: genesis)
            XCTAssertEqual(d.hash, p.hash)
            // Only full-profile returns raw records, and only custodians may call it.
            XCTAssertEqual(d.returnsRaw, d.name == "full-profile", d.name)
            if d.returnsRaw { XCTAssertEqual(d.callerRoles, [.custodian]) }
            if d.callerRoles.contains(.bank) && d.scope == .subject { XCTAssertTrue(d.consentRequired, d.name) }
        }
    }

    func testDocumentsAreStrict() throws {
        let genesis = try PolicyConsortium().genesis
        let base = #"{"format": "creditledger-policy/v1", "name": "p", "version": 1, "scope": "subject", "callers": {"roles": ["custodian"]}, "purposes": ["supervision"], "outputs": [OUT]}"#
        func doc(_ out: String, extra: String = "") -> [UInt8] {
            Array(base.replacingOccurrences(of: "OUT", with: out).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 1\(extra)").utf8)
        }
        XCTAssertNoThrow(try PolicyDocument(bytes: doc(#"{"name": "g", "from": "grade"}"#), genesis: genesis))
        let bad: [([UInt8], String)] = [
            (doc(#"{"name": "g", "from": "points"}"#), "unknown output"),
            (doc(#"{"name": "g", "from": "grade", "width": 5}"#), "unknown key"),
            (doc(#"{"name": "g", "from": "score_band", "width": 5}"#), "width"),
            (doc(#"{"name": "g", "from": "subject_count"}"#), "not available"),
            (doc(#"{"name": "g", "from": "grade"}"#, extra: #", "bonus": 1"#), "unknown key"),
            (doc(#"{"name": "g", "from": "grade"}"#, extra: #", "version": 2"#), "strict JSON"),
            (doc(#"{"name": "g", "from": "bucketed_count", "categories": ["penalty"], "window_months": 12, "buckets": [3, 2]}"#), "increasing"),
            (doc(#"{"name": "g", "from": "flag", "categories": ["gossip"]}"#), "unknown category"),
        ]
        for (bytes, expected) in bad {
            XCTAssertThrowsError(try PolicyDocument(bytes: bytes, genesis: genesis)) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected “\(expected)” in: \(error)")
            }
        }
    }

    func testMaskingAndBuckets() {
        XCTAssertEqual(PolicyEngine.mask("杭州示例食品有限公司"), "杭*******公司")
        XCTAssertEqual(PolicyEngine.mask("张三"), "张*")
        XCTAssertEqual(PolicyEngine.mask("王小明"), "王**")
        XCTAssertEqual(PolicyEngine.mask("李"), "*")
        XCTAssertEqual(PolicyEngine.mask(""), "")
    }

    /// The result's canonical form (PRIVACY.md §7) is hashed into `result_hash`: keys in UTF-8
    /// byte order, no whitespace, only `"`, `\` and control characters escaped.
    func testCanonicalResultText() {
        let value = CanonicalJSON.Value.object([
            "b": .int(-3), "a": .bool(true), "B": .null, "é": .string("城市"), "aa": .array([.string("x"), .int(0)]),
            "q": .string("say \"hi\" \\ /\n\r\t\u{01}\u{1F}"), "": .object(["z": .string(""), "y": .bool(false)]),
        ])
        XCTAssertEqual(CanonicalJSON.render(value),
                       #"{"":{"y":false,"z":""},"B":null,"a":true,"aa":["x",0],"b":-3,"q":"say \"hi\" \\ /\n\r\t\u0001\u001f","é":"城市"}"#)
    }
}
