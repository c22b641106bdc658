import LedgerCore
import LedgerCrypto
@testable import Policy
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
        // A query log pages by an integer parameter of its own policy, and by nothing else.
        func log(_ parameters: String) -> [UInt8] {
            Array(base.replacingOccurrences(of: "\"subject\"", with: "\"subject_queries\"")
                .replacingOccurrences(of: "OUT", with: #"{"name": "q", "from": "query_log", "limit": 5, "before": "b"}"#)
                .replacingOccurrences(of: "\"version\": 1", with: "\"version\": 1, \"parameters\": [\(parameters)]").utf8)
        }
        let paged = try PolicyDocument(bytes: log(#"{"name": "b", "type": "integer"}"#), genesis: genesis)
        guard case .queryLog(5, "b")? = paged.outputs.first?.1 else { return XCTFail("\(paged.outputs)") }
        for parameters in ["", #"{"name": "a", "type": "integer"}"#, #"{"name": "b", "type": "industry"}"#] {
            XCTAssertThrowsError(try PolicyDocument(bytes: log(parameters), genesis: genesis)) { error in
                XCTAssertTrue("\(error)".contains("before names \"b\", which is not an integer parameter of this policy"), "\(error)")
            }
        }
    }

    /// Install-time rules see every role a bank holds, not only the bank role; they do not
    /// treat a bureau that also holds the bank role (the dev member) as a bank; a policy cannot
    /// give the points away through two bands or a fine credit-line step.
    func testBanksAreSeenByEveryRoleTheyHoldAndPointsStayHidden() throws {
        func member(_ id: String, _ roles: Set<Role>) -> Member {
            let k = MemberSecretKeys(memberID: id)
            return Member(id: id, name: id, roles: roles, signingKey: k.signing.publicKey, encryptionKey: k.encryption.publicKey)
        }
        let genesis = try Genesis(bytes: try Genesis.render(chainID: "roles", genesisTime: "2026-11-21T00:00:00Z", members: [
            member("samr", [.validator, .custodian, .governmentIssuer]), member("bank-a", [.bank, .validator]),
        ]))
        func doc(scope: String = "subject", roles: String, purposes: String = #"["supervision"]"#, outputs: String = #"{"name": "g", "from": "grade"}"#) -> [UInt8] {
            Array(#"{"format": "creditledger-policy/v1", "name": "p", "version": 1, "scope": "SCOPE", "callers": {"roles": ROLES}, "purposes": PURPOSES, "outputs": [OUT]}"#
                .replacingOccurrences(of: "SCOPE", with: scope).replacingOccurrences(of: "ROLES", with: roles)
                .replacingOccurrences(of: "PURPOSES", with: purposes).replacingOccurrences(of: "OUT", with: outputs).utf8)
        }
        let refused: [([UInt8], String)] = [
            (doc(roles: #"["validator"]"#), "must require the subject's consent"),
            (doc(scope: "subject_queries", roles: #"["validator"]"#, purposes: #"["subject_access"]"#,
                 outputs: #"{"name": "q", "from": "query_log", "limit": 10}"#), "not banks"),
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "a", "from": "score_band", "width": 50}, {"name": "b", "from": "score_band", "width": 60}"#), "at most one"),
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "c", "from": "credit_line", "base_points": 500, "step_points": 1, "step_yuan": 1, "cap_yuan": 1000}"#), "would disclose the points"),
            // Thresholds off the 10-point grid: a line starting at 555 beside the shipped one at 550
            // (or ten lines at bases 0-9) would tell the points to within 5 (or exactly).
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "c", "from": "credit_line", "base_points": 555, "step_points": 10, "step_yuan": 1, "cap_yuan": 1000}"#), "multiples of 10"),
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "c", "from": "credit_line", "base_points": 500, "step_points": 15, "step_yuan": 1, "cap_yuan": 1000}"#), "multiples of 10"),
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "e", "from": "eligibility", "min_grade": "B", "credit_line": {"base_points": 3, "step_points": 10, "step_yuan": 1, "cap_yuan": 1000}}"#), "multiples of 10"),
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "a", "from": "score_band", "width": 55}"#), "multiple of 10"),
            // A base far outside any score.
            (doc(roles: #"["custodian"]"#, outputs: #"{"name": "c", "from": "credit_line", "base_points": -1000000000000000, "step_points": 10, "step_yuan": 1, "cap_yuan": 1000}"#), "-100,000 to 100,000"),
        ]
        // Consent is about one subject: an aggregate policy cannot require it (it would answer
        // without it, and its receipts would then fail to verify).
        var aggregate = String(decoding: try Files.read("Genesis/policies/industry-statistics.json"), as: UTF8.self)
        XCTAssertNoThrow(try PolicyDocument(bytes: Array(aggregate.utf8), genesis: genesis))
        aggregate = aggregate.replacingOccurrences(of: #""purposes": ["statistics"],"#, with: #""purposes": ["loan_application"], "consent": {"required": true},"#)
        XCTAssertThrowsError(try PolicyDocument(bytes: Array(aggregate.utf8), genesis: genesis)) { error in
            XCTAssertTrue("\(error)".contains("consent.required applies to subject policies only"), "\(error)")
        }
        for (bytes, expected) in refused {
            XCTAssertThrowsError(try PolicyDocument(bytes: bytes, genesis: genesis)) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected “\(expected)” in: \(error)")
            }
        }
        // Callable by custodians only: samr is a bureau; bank-a is not let in.
        XCTAssertNoThrow(try PolicyDocument(bytes: doc(roles: #"["custodian"]"#), genesis: genesis))
        // A bureau that also holds the bank role (one member with every role, as a dev ledger's) is not a bank caller.
        let dev = try Genesis(bytes: try Genesis.render(chainID: "dev", genesisTime: "2026-11-21T00:00:00Z", members: [
            member("dev", [.validator, .custodian, .governmentIssuer, .bank, .scorer])]))
        XCTAssertNoThrow(try PolicyDocument(bytes: doc(roles: #"["custodian"]"#), genesis: dev))
    }

    /// The receipt check of score outputs (`PolicyRules.checkScoreOutputs`): an eligibility
    /// decision's grade reason and credit line must follow from the score update; an aggregate's
    /// `model` (a name, with no score behind it) is not a score output.
    func testScoreOutputsAreCheckedAgainstTheScoreUpdate() throws {
        let genesis = try PolicyConsortium().genesis
        let rules = PolicyRules()
        let preCheck = try Files.read("Genesis/policies/loan-pre-check.json")
        let doc = try PolicyDocument(bytes: preCheck, genesis: genesis)
        guard case .eligibility(let rule)? = doc.outputs.first(where: { if case .eligibility = $0.output { true } else { false } })?.output,
              let line = rule.line else { return XCTFail("loan-pre-check has no eligibility with a credit line") }
        func score(_ points: Int32, _ grade: Grade) -> ScoreUpdateBody {
            ScoreUpdateBody(subject: try! USCC("91330106MA27XKT2XT"), modelHash: [UInt8](repeating: 1, count: 32), points: points, grade: grade,
                            dimensions: [], inputs: [], asOfLogSize: 1)
        }
        func result(grade: String, reasons: [String], line: Int64) -> String {
            let codes = reasons.map { "\"\($0)\"" }.joined(separator: ",")
            // In canonical form (sorted keys, no spaces), as the engine writes it.
            return #"{"fields":{"as_of_height":3,"decision":{"credit_line_yuan":\#(line),"eligible":\#(reasons.isEmpty),"reason_codes":[\#(codes)]},"grade":"\#(grade)"}}"#
        }
        let good = score(700, .a)
        let expected = PolicyEngine.creditLine(line, points: 700, grade: .a)
        XCTAssertGreaterThan(expected, 0)
        XCTAssertNoThrow(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: [], line: expected), score: good))
        XCTAssertNoThrow(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: ["listed_serious_violation_list"], line: 0), score: good))
        // Same grade, other points: the line no longer matches.
        XCTAssertThrowsError(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: [], line: expected), score: score(650, .a))) {
            XCTAssertTrue("\($0)".contains("credit line is not what"), "\($0)")
        }
        // A grade reason the score does not give, or one missing.
        XCTAssertThrowsError(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: ["grade_below_B"], line: 0), score: good)) {
            XCTAssertTrue("\($0)".contains("does not follow from the grade"), "\($0)")
        }
        // The decision follows from its reasons: "eligible" beside a reason, a grade reason for
        // another minimum, a reason the rule does not have, or an amount reason the requested
        // amount does not give (or one missing) do not verify (found in review, 2026-12-06).
        func decision(eligible: Bool, reasons: [String], line: Int64) -> String {
            result(grade: "A", reasons: reasons, line: line).replacingOccurrences(of: "\"eligible\":\(reasons.isEmpty)", with: "\"eligible\":\(eligible)")
        }
        let low = score(300, .d)
        XCTAssertNoThrow(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "D", reasons: ["grade_below_B"], line: 0), score: low))
        for (text, words) in [(decision(eligible: true, reasons: ["listed_serious_violation_list"], line: 0), "says eligible true with a reason"),
                              (decision(eligible: false, reasons: [], line: expected), "says eligible false without a reason"),
                              (result(grade: "D", reasons: ["grade_below_C"], line: 0), "does not follow from the grade"),
                              (result(grade: "A", reasons: ["listed_honor"], line: 0), "gives reasons its rule cannot"),
                              (result(grade: "A", reasons: ["amount_above_line"], line: expected), "says the requested amount is above the line")] {
            XCTAssertThrowsError(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: text, score: text.contains("\"D\"") ? low : good)) {
                XCTAssertTrue("\($0)".contains(words), "\(words): \($0)")
            }
        }
        let above = [(name: "amount_yuan", value: "\(expected + 1)")]
        XCTAssertNoThrow(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: ["amount_above_line"], line: expected),
                                                     score: good, parameters: above))
        XCTAssertThrowsError(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: [], line: expected),
                                                         score: good, parameters: above)) {
            XCTAssertTrue("\($0)".contains("does not say the requested amount is above the line"), "\($0)")
        }
        // No score fact behind a stated grade.
        XCTAssertThrowsError(try rules.checkScoreOutputs(preCheck, genesis: genesis, result: result(grade: "A", reasons: [], line: expected), score: nil))
        // An aggregate stating a model name answers from no score update.
        var aggregate = String(decoding: try Files.read("Genesis/policies/industry-statistics.json"), as: UTF8.self)
        aggregate = aggregate.replacingOccurrences(of: #"{ "name": "as_of_height", "from": "as_of_height" }"#,
                                                   with: #"{ "name": "as_of_height", "from": "as_of_height" }, { "name": "model", "from": "model" }"#)
        XCTAssertNoThrow(try PolicyDocument(bytes: Array(aggregate.utf8), genesis: genesis))
        XCTAssertNoThrow(try rules.checkScoreOutputs(Array(aggregate.utf8), genesis: genesis,
                                                     result: #"{"fields":{"model":"enterprise","subjects":12}}"#, score: nil))
    }

    func testMaskingAndBuckets() {
        XCTAssertEqual(PolicyEngine.mask("杭州示例食品有限公司"), "杭**公司")
        XCTAssertEqual(PolicyEngine.mask("西湖茶叶店有限公司"), "西**公司", "the mask does not show the length")
        XCTAssertEqual(PolicyEngine.mask("欧阳娜娜"), "欧**", "a personal name keeps only its first character")
        XCTAssertEqual(PolicyEngine.mask("王小明"), "王**")
        XCTAssertEqual(PolicyEngine.mask("张三"), "张**")
        XCTAssertEqual(PolicyEngine.mask("  张三丰 "), "张**", "padding does not make a short name long")
        XCTAssertEqual(PolicyEngine.mask("\u{3000}张 三 丰\u{3000}"), "张**", "nor do ideographic or inner spaces")
        XCTAssertEqual(PolicyEngine.mask(" \t"), "")
        XCTAssertEqual(PolicyEngine.mask("\u{FEFF}\u{200B}\u{200B}张三丰"), "张**", "nor do invisible format characters")
        XCTAssertEqual(PolicyEngine.mask("西湖茶叶店"), "西**")
        XCTAssertEqual(PolicyEngine.mask("李"), "**")
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
