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
    }
}
