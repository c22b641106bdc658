/// A strict JSON reader for model documents (RFC 8259 syntax with tighter rules):
/// numbers must be integers within ±10^15 (no fraction, no exponent: models are
/// fixed-point), an object may not repeat a key, strings may not hold raw control
/// characters and must be valid UTF-8, nesting is at most `maxDepth` deep, and nothing but
/// whitespace may follow the top-level value. Every rule break is a `ModelError`.
public enum JSONNode: Sendable, Equatable {
    case object([(key: String, value: JSONNode)])
    case array([JSONNode])
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case null

    public static func == (a: JSONNode, b: JSONNode) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.array(let x), .array(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.integer(let x), .integer(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    public var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .integer: return "an integer"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

public struct StrictJSONParser {
    static let maxDepth = 12
    static let maxIntegerMagnitude: Int64 = 1_000_000_000_000_000
    static let maxStringBytes = 4096
    static let maxContainerElements = 1024

    private let bytes: [UInt8]
    private var offset = 0
    private let integersOnly: String

    private init(_ bytes: [UInt8], integersOnly: String) { self.bytes = bytes; self.integersOnly = integersOnly }

    /// The hint a fractional number is refused with, for documents of the scoring and policy formats.
    public static let fixedPoint = "the format is fixed-point: write 0.45 as 450 in thousandths"

    /// `integersOnly`: why a fraction or an exponent is refused, said after the number (a node's
    /// config file read the scoring format's hint; found by black-box testing).
    public static func parse(_ bytes: [UInt8], integersOnly: String = fixedPoint) throws -> JSONNode {
        var p = StrictJSONParser(bytes, integersOnly: integersOnly)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { throw p.error("a byte-order mark is not allowed") }
        p.skipWhitespace()
        let value = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.offset == bytes.count else { throw p.error("unexpected content after the document") }
        return value
    }

    private func error(_ reason: String, code: ModelError.Code = .malformedJSON) -> ModelError {
        // Report a line and column, counting lines from 1.
        var line = 1, column = 1
        for b in bytes[0..<min(offset, bytes.count)] { if b == 0x0A { line += 1; column = 1 } else { column += 1 } }
        return ModelError(code, "", "\(reason) (line \(line), column \(column))")
    }

    private mutating func skipWhitespace() {
        while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
    }

    private mutating func expect(_ literal: String, _ node: JSONNode) throws -> JSONNode {
        let l = Array(literal.utf8)
        guard bytes.count - offset >= l.count, Array(bytes[offset..<offset + l.count]) == l else {
            throw error("unexpected character")
        }
        offset += l.count
        return node
    }

    private mutating func value(depth: Int) throws -> JSONNode {
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
        guard offset < bytes.count else { throw error("document ends where a value was expected") }
        switch bytes[offset] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .integer(try integer())
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[offset])))'")
        }
    }

    private mutating func object(depth: Int) throws -> JSONNode {
        offset += 1
        var members: [(key: String, value: JSONNode)] = []
        var keys = Set<String>()
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw error("expected a key string") }
            let key = try string()
            guard keys.insert(key).inserted else { throw error("key \"\(key)\" appears twice in one object") }
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw error("expected ':' after key \"\(key)\"") }
            offset += 1
            skipWhitespace()
            members.append((key, try value(depth: depth + 1)))
            guard members.count <= Self.maxContainerElements else { throw error("object with more than \(Self.maxContainerElements) keys") }
            skipWhitespace()
            guard offset < bytes.count else { throw error("document ends inside an object") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(members) }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func array(depth: Int) throws -> JSONNode {
        offset += 1
        var items: [JSONNode] = []
        skipWhitespace()
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            guard items.count <= Self.maxContainerElements else { throw error("array with more than \(Self.maxContainerElements) elements") }
            skipWhitespace()
            guard offset < bytes.count else { throw error("document ends inside an array") }
            if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
            if bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items) }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func integer() throws -> Int64 {
        let start = offset
        var negative = false
        if bytes[offset] == UInt8(ascii: "-") { negative = true; offset += 1 }
        guard offset < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[offset]) else {
            throw error("'-' must be followed by a digit")
        }
        if bytes[offset] == UInt8(ascii: "0"), offset + 1 < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[offset + 1]) {
            throw error("numbers may not have leading zeros")
        }
        var magnitude: Int64 = 0
        while offset < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[offset]) {
            magnitude = magnitude * 10 + Int64(bytes[offset] - UInt8(ascii: "0"))
            guard magnitude <= Self.maxIntegerMagnitude else {
                throw error("number beyond ±10^15", code: .valueOutOfRange)
            }
            offset += 1
        }
        if offset < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[offset]) {
            // The number alone: the bytes after it (a brace, a line break) made the message unreadable.
            var end = offset + 1
            while end < bytes.count, end < offset + 24, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[end])
                    || [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"), UInt8(ascii: "-")].contains(bytes[end]) { end += 1 }
            let text = String(decoding: bytes[start..<end], as: UTF8.self)
            throw error("\(text): numbers must be integers (\(integersOnly))", code: .notInteger)
        }
        return negative ? -magnitude : magnitude
    }

    private mutating func hex4() throws -> UInt32 {
        guard bytes.count - offset >= 4 else { throw error("\\u needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[offset]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("\\u needs four hex digits")
            }
            v = v << 4 | d
            offset += 1
        }
        return v
    }

    private mutating func string() throws -> String {
        offset += 1
        var out: [UInt8] = []
        while true {
            guard offset < bytes.count else { throw error("document ends inside a string") }
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") { offset += 1; break }
            guard c >= 0x20 else { throw error("raw control character 0x\(String(c, radix: 16)) in a string") }
            if c == UInt8(ascii: "\\") {
                offset += 1
                guard offset < bytes.count else { throw error("document ends inside an escape") }
                let e = bytes[offset]
                offset += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                default: throw error("unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
            } else {
                out.append(c)
                offset += 1
            }
            guard out.count <= Self.maxStringBytes else { throw error("string longer than \(Self.maxStringBytes) bytes") }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return s
    }
}

/// Reads one JSON object of a model document: typed getters that name the path on error,
/// and `finish()` which refuses any key that was not read (unknown keys are errors).
struct ObjectReader {
    let path: String
    private let members: [(key: String, value: JSONNode)]
    private var used = Set<String>()

    init(_ node: JSONNode, path: String) throws {
        guard case .object(let m) = node else {
            throw ModelError(.wrongType, path, "expected an object, found \(node.typeName)")
        }
        self.path = path
        self.members = m
    }

    private func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func optional(_ key: String) -> JSONNode? {
        used.insert(key)
        return members.first { $0.key == key }?.value
    }

    mutating func required(_ key: String) throws -> JSONNode {
        guard let v = optional(key) else { throw ModelError(.missingKey, at(key), "required key is missing") }
        return v
    }

    mutating func string(_ key: String) throws -> String {
        try Self.string(try required(key), at(key))
    }

    mutating func optionalString(_ key: String) throws -> String? {
        try optional(key).map { try Self.string($0, at(key)) }
    }

    mutating func integer(_ key: String, _ range: ClosedRange<Int64>) throws -> Int64 {
        try Self.integer(try required(key), at(key), range)
    }

    mutating func optionalInteger(_ key: String, _ range: ClosedRange<Int64>) throws -> Int64? {
        try optional(key).map { try Self.integer($0, at(key), range) }
    }

    mutating func optionalBool(_ key: String) throws -> Bool? {
        guard let v = optional(key) else { return nil }
        guard case .bool(let b) = v else { throw ModelError(.wrongType, at(key), "expected true or false, found \(v.typeName)") }
        return b
    }

    mutating func array(_ key: String, max: Int) throws -> [(node: JSONNode, path: String)] {
        try Self.array(try required(key), at(key), max: max)
    }

    mutating func optionalArray(_ key: String, max: Int) throws -> [(node: JSONNode, path: String)]? {
        try optional(key).map { try Self.array($0, at(key), max: max) }
    }

    /// A string, or an array of strings (one or more).
    mutating func stringList(_ key: String, max: Int) throws -> [String]? {
        guard let v = optional(key) else { return nil }
        if case .string(let s) = v { return [s] }
        let items = try Self.array(v, at(key), max: max)
        guard !items.isEmpty else { throw ModelError(.valueOutOfRange, at(key), "list is empty") }
        return try items.map { try Self.string($0.node, $0.path) }
    }

    func finish() throws {
        for m in members where !used.contains(m.key) {
            throw ModelError(.unknownKey, at(m.key), "unknown key \"\(m.key)\" (the format is strict; see docs/SCORING.md)")
        }
    }

    static func string(_ node: JSONNode, _ path: String) throws -> String {
        guard case .string(let s) = node else { throw ModelError(.wrongType, path, "expected a string, found \(node.typeName)") }
        return s
    }

    static func integer(_ node: JSONNode, _ path: String, _ range: ClosedRange<Int64>) throws -> Int64 {
        guard case .integer(let v) = node else { throw ModelError(.wrongType, path, "expected an integer, found \(node.typeName)") }
        guard range.contains(v) else {
            throw ModelError(.valueOutOfRange, path, "\(v) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    static func array(_ node: JSONNode, _ path: String, max: Int) throws -> [(node: JSONNode, path: String)] {
        guard case .array(let items) = node else { throw ModelError(.wrongType, path, "expected an array, found \(node.typeName)") }
        guard items.count <= max else { throw ModelError(.tooMany, path, "\(items.count) entries, limit \(max)") }
        return items.enumerated().map { ($1, "\(path)[\($0)]") }
    }
}
