import Foundation

/// What a `JSONDecoder` failure means, in words and with the JSON path of the field
/// (`transactions[1].transaction`), instead of Swift's `DecodingError` dump with its coding
/// keys (found by black-box testing). Used for every JSON document a user hands over: key
/// files, genesis files, HTTP bodies.
public enum DecodingProblem {
    /// With the document's bytes, a number out of its field's range (negative, fractional or too
    /// large where a count is expected) is told apart from JSON that does not parse: the decoder
    /// calls both "not valid JSON" (found by black-box testing of the verifier).
    public static func describe(_ error: any Error, data: Data) -> String {
        if let encoding = notUTF8(data) { return encoding }
        if case DecodingError.dataCorrupted(let c) = error, c.codingPath.isEmpty,
           (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil {
            return "a number is out of range for its field (negative, fractional, or too large where a whole number is expected)"
        }
        return describe(error)
    }

    public static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let c):
            return "missing field \"\(key.stringValue)\"" + (c.codingPath.isEmpty ? "" : " in \(path(c.codingPath))")
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at \(path(c.codingPath))"
        case DecodingError.dataCorrupted(let c):
            return c.codingPath.isEmpty ? "not valid JSON" : "invalid value at \(path(c.codingPath))"
        default:
            return "\(error)"
        }
    }

    /// Why `data` is not UTF-8 text, or nil when it is: a file saved in GBK (common on Chinese
    /// Windows) was "not valid JSON" (found by black-box testing).
    public static func notUTF8(_ data: some Collection<UInt8>) -> String? {
        guard String(validating: Array(data), as: UTF8.self) == nil else { return nil }
        return "it is not UTF-8 text (saved in GBK or another encoding?); save it as UTF-8"
    }

    /// A coding path as JSON readers write it: `transactions[0].envelope`.
    public static func path(_ keys: [any CodingKey]) -> String {
        var out = ""
        for k in keys {
            if let i = k.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + k.stringValue }
        }
        return out.isEmpty ? "the top level" : out
    }
}
