import Foundation

public extension Array where Element == UInt8 {
    var hexString: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for b in self {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self = out
    }

    /// Standard base64 (RFC 4648 §4) with padding, as Foundation writes it. Receipts carry
    /// several proofs each, so this writes the text directly instead of going through `Data`.
    var base64String: String {
        let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        let length = (count + 2) / 3 * 4
        guard length > 0 else { return "" }
        return withUnsafeBufferPointer { input in
            alphabet.withUTF8Buffer { table in
                String(unsafeUninitializedCapacity: length) { out in
                    var i = 0, o = 0
                    while i + 3 <= input.count {
                        let v = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                        out[o] = table[Int(v >> 18)]
                        out[o + 1] = table[Int(v >> 12 & 0x3F)]
                        out[o + 2] = table[Int(v >> 6 & 0x3F)]
                        out[o + 3] = table[Int(v & 0x3F)]
                        i += 3; o += 4
                    }
                    let rest = input.count - i
                    if rest > 0 {
                        let v = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
                        out[o] = table[Int(v >> 18)]
                        out[o + 1] = table[Int(v >> 12 & 0x3F)]
                        out[o + 2] = rest == 2 ? table[Int(v >> 6 & 0x3F)] : UInt8(ascii: "=")
                        out[o + 3] = UInt8(ascii: "=")
                        o += 4
                    }
                    return o
                }
            }
        }
    }

    /// Standard padded base64 in its one canonical spelling: Foundation also takes extra `=`
    /// and nonzero unused low bits ("AB==" for [0]), which would let one key, signature or
    /// proof hash be written several ways. Those are refused.
    init?(base64: String) {
        guard let data = Data(base64Encoded: base64) else { return nil }
        let bytes = Array(data)
        guard bytes.base64String == base64 else { return nil }
        self = bytes
    }
}

/// Writes the canonical encoding: big-endian integers, length-prefixed strings and bytes.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF)) }
    public mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
    public mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(s)) & 0xFF)) } }
    public mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    /// u8 length, then UTF-8 bytes. Callers check limits before encoding.
    public mutating func string8(_ s: String) { let u = Array(s.utf8); precondition(u.count <= 255); u8(UInt8(u.count)); raw(u) }
    /// u16 length, then UTF-8 bytes.
    public mutating func string16(_ s: String) { let u = Array(s.utf8); precondition(u.count <= 65535); u16(UInt16(u.count)); raw(u) }
    /// u32 length, then bytes.
    public mutating func bytes32(_ b: [UInt8]) { u32(UInt32(b.count)); raw(b) }
}

/// Reads the canonical encoding; every read is bounds-checked and every length limited.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    public let context: String

    public init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.offset = 0
        self.context = context
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ n: Int, _ field: String) throws -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else {
            throw LedgerError(.truncated, "\(context): input ends inside \(field) (needs \(n) bytes at offset \(offset), \(remaining) left)")
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func u8(_ field: String) throws -> UInt8 { try take(1, field).first! }
    public mutating func u16(_ field: String) throws -> UInt16 { try take(2, field).reduce(0) { $0 << 8 | UInt16($1) } }
    public mutating func u32(_ field: String) throws -> UInt32 { try take(4, field).reduce(0) { $0 << 8 | UInt32($1) } }
    public mutating func u64(_ field: String) throws -> UInt64 { try take(8, field).reduce(0) { $0 << 8 | UInt64($1) } }
    public mutating func i32(_ field: String) throws -> Int32 { Int32(bitPattern: try u32(field)) }
    public mutating func i64(_ field: String) throws -> Int64 { Int64(bitPattern: try u64(field)) }
    public mutating func raw(_ n: Int, _ field: String) throws -> [UInt8] { Array(try take(n, field)) }

    public mutating func string8(_ field: String, max: Int) throws -> String {
        let n = Int(try u8(field))
        return try decodeString(try take(n, field), field: field, max: max)
    }

    public mutating func string16(_ field: String, max: Int) throws -> String {
        let n = Int(try u16(field))
        return try decodeString(try take(n, field), field: field, max: max)
    }

    public mutating func bytes32(_ field: String, max: Int) throws -> [UInt8] {
        let n = Int(try u32(field))
        guard n <= max else {
            throw LedgerError(.fieldTooLarge, "\(context): \(field) is \(n) bytes, limit \(max)")
        }
        return Array(try take(n, field))
    }

    private func decodeString(_ slice: ArraySlice<UInt8>, field: String, max: Int) throws -> String {
        guard slice.count <= max else {
            throw LedgerError(.fieldTooLarge, "\(context): \(field) is \(slice.count) bytes, limit \(max)")
        }
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw LedgerError(.malformed, "\(context): \(field) is not valid UTF-8")
        }
        return s
    }

    public func expectEnd() throws {
        guard isAtEnd else {
            throw LedgerError(.trailingBytes, "\(context): \(remaining) unexpected bytes after the end at offset \(offset)")
        }
    }
}

/// A 32-byte SHA-256 value as used for ids and roots.
public typealias Hash = [UInt8]

public enum Hashes {
    public static let zero: Hash = Array(repeating: 0, count: 32)
}

/// A hash as a dictionary or set key. An `[UInt8]` key is fed to the hasher one byte at a
/// time (33 calls for a SHA-256 value); this one hands over its bytes in a single call.
/// Equality compares the bytes, as for `Hash`.
public struct HashKey: Hashable, Sendable {
    public let bytes: Hash
    public init(_ bytes: Hash) { self.bytes = bytes }
    public func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    public static func == (a: HashKey, b: HashKey) -> Bool { a.bytes == b.bytes }
}

extension Duration {
    /// The duration in seconds, for reports and `Date` arithmetic (never for consensus state).
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    /// Whole milliseconds, 0 for a negative duration.
    public var inMilliseconds: UInt64 {
        UInt64(max(0, components.seconds)) * 1000 + UInt64(max(0, components.attoseconds) / 1_000_000_000_000_000)
    }
}
