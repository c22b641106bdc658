/// Finds a key given twice in one JSON object. JSON parsers disagree on such a document (the
/// first value wins in Foundation's, the last in Python's and most others), so a file a tool
/// here reads as genuine could read differently elsewhere: verifier inputs and operator files
/// are refused with one (found by black-box testing of `credit-verify`, 2026-12-07).
///
/// Only keys are compared, after unescaping (`"a"` and `"\u0061"` are the same key); anything
/// else that is not JSON is left to the decoder, which names it. Iterative, so deep nesting
/// costs no stack.
public enum JSONDuplicateKeys {
    /// Levels of nesting scanned; a deeper document is named as such (Foundation's decoder refuses past 512).
    public static let maxDepth = 512

    /// The path of the first duplicated key (`facts[2].transaction`), or nil. A document in
    /// UTF-16 or UTF-32, which Foundation's decoder also reads, is named as such instead of
    /// scanned: a key given twice there would pass unseen (found in review).
    public static func first(in bytes: [UInt8]) -> String? {
        // Keys are compared as Swift compares them (canonical equivalence: "K" and "\u{212A}" are
        // one key to Foundation's decoder), which also covers equal bytes.
        enum Container { case object(keys: Set<String>, key: [UInt8]?), array(index: Int) }
        var stack: [Container] = []
        // A UTF-8 byte-order mark, which the decoder skips.
        var i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        let n = bytes.count
        if bytes.prefix(4).contains(0) { return "the document is not UTF-8 (UTF-16 or UTF-32, say): save it as UTF-8" }

        func path(_ last: [UInt8]?) -> String {
            var out = ""
            for c in stack {
                switch c {
                case .object(_, let key?): out += (out.isEmpty ? "" : ".") + String(decoding: key, as: UTF8.self)
                case .array(let index): out += "[\(index)]"
                case .object: break
                }
            }
            if let last { out += (out.isEmpty ? "" : ".") + String(decoding: last, as: UTF8.self) }
            return out
        }

        /// The unescaped bytes of the string starting at `i` (a quote), with `i` moved past it; nil if malformed.
        func string() -> [UInt8]? {
            i += 1
            var out: [UInt8] = []
            while i < n {
                let b = bytes[i]
                if b == 0x22 { i += 1; return out }
                if b != 0x5C { out.append(b); i += 1; continue }
                guard i + 1 < n else { return nil }
                let e = bytes[i + 1]
                i += 2
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    guard var unit = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(unit), i + 1 < n, bytes[i] == 0x5C, bytes[i + 1] == 0x75 {
                        i += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(unit) ?? "\u{FFFD}")).utf8))
                default: return nil
                }
            }
            return nil
        }

        func hex4() -> UInt32? {
            guard i + 4 <= n else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        func skipWhitespace() {
            while i < n, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        /// After a value inside a container: a comma moves on (the next index, or the next key).
        func afterValue() {
            skipWhitespace()
            guard i < n, bytes[i] == 0x2C, let top = stack.last else { return }
            i += 1
            if case .array(let index) = top { stack[stack.count - 1] = .array(index: index + 1) }
        }

        while true {
            skipWhitespace()
            guard i < n else { return nil }
            // In an object, a key (or the object's end) comes first.
            if case .object(var keys, _)? = stack.last {
                if bytes[i] == 0x7D { stack.removeLast(); i += 1; afterValue(); if stack.isEmpty { return nil }; continue }
                guard bytes[i] == 0x22, let key = string() else { return nil }
                stack[stack.count - 1] = .array(index: 0)    // drops the stack's reference: the insert does not copy the set
                let fresh = keys.insert(String(decoding: key, as: UTF8.self)).inserted
                stack[stack.count - 1] = .object(keys: keys, key: fresh ? key : nil)
                guard fresh else { return "\"\(String(decoding: key, as: UTF8.self))\" appears twice in one object (at \(path(key)))" }
                skipWhitespace()
                guard i < n, bytes[i] == 0x3A else { return nil }
                i += 1
                skipWhitespace()
                guard i < n else { return nil }
            } else if case .array? = stack.last, bytes[i] == 0x5D {
                stack.removeLast(); i += 1; afterValue(); if stack.isEmpty { return nil }; continue
            }
            // A value.
            switch bytes[i] {
            case 0x7B, 0x5B:
                // Bounded as the decoder is (it refuses deeper documents): a 16 MiB body of `[[[…`
                // held millions of levels here, outside any body budget (found in review).
                guard stack.count < Self.maxDepth else { return "the document nests deeper than \(Self.maxDepth) levels" }
                stack.append(bytes[i] == 0x7B ? .object(keys: [], key: nil) : .array(index: 0))
                i += 1
                continue
            case 0x22: guard string() != nil else { return nil }
            default:
                // A number or a literal: up to the next delimiter.
                let start = i
                while i < n, ![0x2C, 0x7D, 0x5D, 0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
                if i == start { return nil }
            }
            if stack.isEmpty { return nil }
            afterValue()
        }
    }
}

/// Finds a number written with a fraction or an exponent. Documents whose numbers are all
/// integers (receipts, provenance files) were read with `443.0` or `4.43e2` taken for 443, so
/// two texts read as one receipt: a verifier refuses such a number instead (left open since
/// 2026-12-06, fixed 2026-12-07). Strings are skipped, escapes and all; anything else that is
/// not JSON is left to the decoder.
public enum JSONIntegers {
    /// The first such number as written (at most 40 characters), or nil.
    public static func firstNonInteger(in bytes: [UInt8]) -> String? {
        var i = 0
        let n = bytes.count
        var inString = false
        while i < n {
            let b = bytes[i]
            if inString {
                if b == UInt8(ascii: "\\") { i += 2; continue }
                if b == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            if b == UInt8(ascii: "\"") { inString = true; i += 1; continue }
            guard b == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) else { i += 1; continue }
            let start = i
            var integral = true
            while i < n {
                let c = bytes[i]
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { integral = false }
                else if !(c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)) { break }
                i += 1
            }
            if !integral { return String(decoding: bytes[start..<min(i, start + 40)], as: UTF8.self) }
        }
        return nil
    }
}
