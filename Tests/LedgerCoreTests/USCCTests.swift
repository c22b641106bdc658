import LedgerCore
import XCTest

final class USCCTests: XCTestCase {
    func testPublishedCodesAreValid() throws {
        for code in ["91350100M000100Y43", "91110000600037341L", "91440300708461136T"] {
            XCTAssertEqual(try USCC(code).code, code)
        }
        XCTAssertEqual(try USCC("91350100M000100Y43").subjectKind, .enterprise)
        XCTAssertEqual(try USCC("91350100M000100Y43").divisionCode, "350100")
    }

    func testWrongCheckCharacterNamesTheExpectedOne() {
        XCTAssertThrowsError(try USCC("91350100M000100Y44")) { error in
            let e = error as! LedgerError
            XCTAssertEqual(e.code, .invalidUSCC)
            XCTAssertTrue(e.reason.contains("expected '3'"), e.reason)
        }
    }

    func testBadCharactersAndLengthsAreNamed() {
        let cases: [(String, String)] = [
            ("91350100M000100Y4", "has 17 characters"),
            ("91350100M000100Y433", "has 19 characters"),
            ("91350100I000100Y43", "character 9 'I' is not allowed"),
            ("91350100\u{1B}000100Y43", "USCC \"91350100\\u{1B}000100Y43\": character 9 '\\u{1B}' is not allowed"),
            ("9233010\0TEAM00003E", "USCC \"9233010\\0TEAM00003E\": character 8 '\\0' is not allowed"),
            ("91350100m000100Y43", "character 9 'm' is not allowed"),
            ("9135O100M000100Y43", "character 5 'O' is not allowed"),
            ("", "has 0 characters"),
            // Canonically equivalent to the valid 91330106004957651K, but not ASCII (found in review).
            ("91330106004957651\u{212A}", "character 18 '\u{212A}' is not allowed"),
            ("9133010600495765\u{212A}K", "character 17"),
            ("91330106004957651K\u{301}", "has 19 characters"),
        ]
        XCTAssertNoThrow(try USCC("91330106004957651K"))
        for (code, message) in cases {
            XCTAssertThrowsError(try USCC(code), code) { error in
                XCTAssertTrue((error as! LedgerError).reason.contains(message), "\(code): \(error)")
            }
        }
    }

    func testGeneratorMakesValidCodesOfTheRequestedKind() throws {
        var state: UInt64 = 42
        let random: (Int) -> Int = { n in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for i in 0..<500 {
            let kind: SubjectKind = i % 2 == 0 ? .enterprise : .individualBusiness
            let code = USCCGenerator.make(kind: kind, random: random)
            XCTAssertEqual(try USCC(code.code), code)
            XCTAssertEqual(code.subjectKind, kind)
        }
    }

    /// The byte-level fast path accepts exactly what the rule of GB 32100-2015 accepts.
    func testFastPathAgreesWithTheRule() {
        let alphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")
        let extra = Array("IOSVZa-9 ")
        func reference(_ s: [Character]) -> Bool {
            guard s.count == 18, s.allSatisfy(alphabet.contains), s[2...7].allSatisfy({ $0.isNumber }) else { return false }
            let sum = (0..<17).reduce(0) { $0 + alphabet.firstIndex(of: s[$1])! * USCC.weights[$1] }
            return s[17] == alphabet[(31 - sum % 31) % 31]
        }
        var state: UInt64 = 7
        func next(_ n: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % UInt64(n)) }
        for i in 0..<20_000 {
            var chars = Array(USCCGenerator.make(kind: i % 2 == 0 ? .enterprise : .individualBusiness, random: next).code)
            switch i % 4 {
            case 0: break
            case 1: chars[next(18)] = alphabet[next(alphabet.count)]
            case 2: chars[next(18)] = extra[next(extra.count)]
            default: if next(2) == 0 { chars.removeLast() } else { chars.append(alphabet[next(31)]) }
            }
            XCTAssertEqual((try? USCC(String(chars))) != nil, reference(chars), String(chars))
        }
    }
}
