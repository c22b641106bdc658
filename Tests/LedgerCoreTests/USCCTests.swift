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
            ("91350100m000100Y43", "character 9 'm' is not allowed"),
            ("9135O100M000100Y43", "character 5 'O' is not allowed"),
            ("", "has 0 characters"),
        ]
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
}
