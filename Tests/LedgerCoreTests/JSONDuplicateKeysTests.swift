import LedgerCore
import XCTest

/// A key given twice in one object is found wherever it is, named by its path; the same key in
/// sibling objects, or a key equal to another only as text of a value, is not a duplicate.
final class JSONDuplicateKeysTests: XCTestCase {
    func first(_ text: String) -> String? { JSONDuplicateKeys.first(in: Array(text.utf8)) }

    func testDuplicatesAreFoundWithTheirPath() {
        XCTAssertEqual(first(#"{"a":1,"a":2}"#), #""a" appears twice in one object (at a)"#)
        XCTAssertEqual(first(#"{"result":"x","facts":[{"role":"r"},{"role":"s","log_index":1,"log_index":2}]}"#),
                       #""log_index" appears twice in one object (at facts[1].log_index)"#)
        XCTAssertEqual(first(#" { "o" : { "k" : [ 1 , { } ] , "k" : null } } "#), #""k" appears twice in one object (at o.k)"#)
        // The same key spelt with an escape is the same key.
        XCTAssertEqual(first(#"{"as_of_height":3,"as_of_h\u0065ight":4}"#), #""as_of_height" appears twice in one object (at as_of_height)"#)
        XCTAssertEqual(first(#"{"\ud83d\ude00":1,"😀":2}"#), #""😀" appears twice in one object (at 😀)"#)
        // Keys Swift takes as one (canonical equivalence), as Foundation's decoder does.
        XCTAssertEqual(first("{\"\u{212A}\":1,\"K\":2}"), #""K" appears twice in one object (at K)"#)
        // Behind a UTF-8 byte-order mark, which the decoder skips, too.
        XCTAssertEqual(JSONDuplicateKeys.first(in: [0xEF, 0xBB, 0xBF] + Array(#"{"a":1,"a":2}"#.utf8)), #""a" appears twice in one object (at a)"#)
        // A document in UTF-16, which the decoder also reads, is named instead of passed unscanned.
        let utf16 = Array(#"{"a":1,"a":2}"#.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        XCTAssertEqual(JSONDuplicateKeys.first(in: utf16), "the document is not UTF-8 (UTF-16 or UTF-32, say): save it as UTF-8")
        // Found after a long, deep prefix too.
        let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        XCTAssertEqual(first(#"{"x":"# + deep + #","y":"\"}\"","x":0}"#), #""x" appears twice in one object (at x)"#)
        // Nesting is bounded as the decoder bounds it: a body of a million `[` is named, not held.
        let tooDeep = String(repeating: "[", count: 1_000_000)
        XCTAssertEqual(first(tooDeep), "the document nests deeper than 512 levels")
        XCTAssertNil(first(String(repeating: "[", count: 511) + String(repeating: "]", count: 511)))
    }

    func testDocumentsWithoutDuplicatesPass() {
        XCTAssertNil(first(#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}],"d":"\"a\":1"}"#))
        XCTAssertNil(first(#"[{"k":1},{"k":2}]"#))
        XCTAssertNil(first(#"{}"#))
        XCTAssertNil(first(#""just a string""#))
        XCTAssertNil(first("12.5e3"))
        XCTAssertNil(first(#"{"a":true,"b":false,"c":null,"d":-0.5,"e":[]}"#))
        // Keys differing only in case or by a trailing space are different keys.
        XCTAssertNil(first(#"{"key":1,"Key":2,"key ":3}"#))
        // Malformed input is left to the decoder.
        XCTAssertNil(first(#"{"a":1,"#))
        XCTAssertNil(first(#"{"a\x":1}"#))
        XCTAssertNil(first(""))
    }

    /// Numbers with a fraction or an exponent are found outside strings, and only there.
    func testNonIntegerNumbersAreFoundOutsideStrings() {
        func first(_ text: String) -> String? { JSONIntegers.firstNonInteger(in: Array(text.utf8)) }
        XCTAssertNil(first(#"{"a": 443, "b": [-1, 0, 18446744073709551615], "c": "4.5e3 in a string", "d": "a \"quoted\" 1.5"}"#))
        XCTAssertEqual(first(#"{"a": 443.0}"#), "443.0")
        XCTAssertEqual(first(#"{"a": "x", "b": [1, 4.43e2]}"#), "4.43e2")
        XCTAssertEqual(first(#"{"a": -1E+3}"#), "-1E+3")
        XCTAssertNil(first(#"{"a\"": "5.0"}"#))
    }
}
