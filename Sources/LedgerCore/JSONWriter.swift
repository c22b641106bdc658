/// Writes JSON straight into bytes, for hot responses where `JSONEncoder`'s reflection costs
/// more than the work behind them. Keys are written in the order given; callers that promise
/// sorted keys give them sorted. Strings escape `"`, `\` and control characters (RFC 8259 §7).
public struct JSONWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { write(quoted: $0) }
    }

    private mutating func write(quoted utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(0x22)
        // Most strings (base64, hex, identifiers) need no escaping: copy them whole.
        if utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x22 && $0 != 0x5C }) {
            bytes.append(contentsOf: utf8)
            bytes.append(0x22)
            return
        }
        for b in utf8 {
            switch b {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(0x6E)
            case 0x0D: bytes.append(0x5C); bytes.append(0x72)
            case 0x09: bytes.append(0x5C); bytes.append(0x74)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: bytes.append(b)
            }
        }
        bytes.append(0x22)
    }

    public mutating func integer(_ v: UInt64) { bytes.append(contentsOf: String(v).utf8) }
    public mutating func integer(_ v: Int64) { bytes.append(contentsOf: String(v).utf8) }
    public mutating func bool(_ v: Bool) { bytes.append(contentsOf: (v ? "true" : "false").utf8) }

    public mutating func array<T>(_ items: [T], _ element: (inout JSONWriter, T) -> Void) {
        bytes.append(0x5B)
        for (i, item) in items.enumerated() {
            if i > 0 { bytes.append(0x2C) }
            element(&self, item)
        }
        bytes.append(0x5D)
    }

    private var needsComma = false

    /// An object; `body` writes its members with `field`.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        bytes.append(0x7B)
        let outer = needsComma
        needsComma = false
        body(&self)
        bytes.append(0x7D)
        needsComma = outer
    }

    /// One member of the object being written.
    public mutating func field(_ key: String, _ value: (inout JSONWriter) -> Void) {
        if needsComma { bytes.append(0x2C) }
        string(key)
        bytes.append(0x3A)
        value(&self)
        needsComma = true
    }
}
