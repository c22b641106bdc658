import Foundation
import LedgerCore
import XCTest

final class BytesTests: XCTestCase {
    /// RFC 4648 §10 test vectors.
    func testBase64MatchesRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==",
                       "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (text, encoded) in vectors {
            XCTAssertEqual(Array(text.utf8).base64String, encoded, "base64 of \"\(text)\"")
        }
    }

    /// Receipts and checkpoints are read by outside tools: the text must be what Foundation
    /// writes and reads, for every length remainder and every byte value.
    func testBase64AgreesWithFoundationAndRoundTrips() {
        var state: UInt64 = 0x2026_1202
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        var inputs: [[UInt8]] = [Array(0...255), Array((0...255).reversed()), [0xFF, 0xFF], [0xFB, 0xEF, 0xBE]]
        for length in 0...200 { inputs.append((0..<length).map { _ in next() }) }
        for bytes in inputs {
            let text = bytes.base64String
            XCTAssertEqual(text, Data(bytes).base64EncodedString(), "\(bytes.count) bytes")
            XCTAssertEqual([UInt8](base64: text), bytes, "round trip of \(bytes.count) bytes")
        }
    }

    /// One value, one spelling: a key, a signature or a proof hash cannot be written another way.
    /// Foundation alone takes the first six (extra padding, nonzero unused bits); the others
    /// nobody takes.
    func testBase64RefusesNonCanonicalSpellings() {
        XCTAssertEqual([UInt8](base64: "AA=="), [0])
        XCTAssertEqual([UInt8](base64: "AAA="), [0, 0])
        for text in ["AB==", "AA===", "AAAA====", "AAB=", "Zm9=", "Zh==", "AA", "AA=", " AA==", "AA==\n"] {
            XCTAssertNil([UInt8](base64: text), text.debugDescription)
        }
    }
}

final class JSONWriterTests: XCTestCase {
    /// Strings written by JSONWriter parse back to themselves, escaped per RFC 8259 §7.
    func testStringsEscapeAndRoundTrip() throws {
        let cases: [(String, String)] = [
            ("", "\"\""),
            ("AYEKFALVFGyNhPJE+/=", "\"AYEKFALVFGyNhPJE+/=\""),
            ("杭州示例食品有限公司", "\"杭州示例食品有限公司\""),
            ("say \"hi\"\\now", "\"say \\\"hi\\\"\\\\now\""),
            ("line\nbreak\r\ttab\u{01}\u{1F}", "\"line\\nbreak\\r\\ttab\\u0001\\u001f\""),
        ]
        for (text, expected) in cases {
            var w = JSONWriter()
            w.string(text)
            XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), expected)
            let parsed = try JSONSerialization.jsonObject(with: Data(w.bytes), options: .fragmentsAllowed) as? String
            XCTAssertEqual(parsed, text)
        }
        // Written one after another, each string is quoted on its own.
        var w = JSONWriter()
        w.string("\u{4E2D}\"")
        w.string("")
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), "\"\u{4E2D}\\\"\"\"\"")
    }
}
