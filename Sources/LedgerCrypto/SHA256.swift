import CSodium

/// SHA-256 (FIPS 180-4) through libsodium.
public struct SHA256: Sendable {
    public static let byteCount = 32
    private var state = crypto_hash_sha256_state()

    public init() {
        Sodium.ensureInitialized()
        crypto_hash_sha256_init(&state)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            _ = crypto_hash_sha256_update(&state, buffer.baseAddress, UInt64(buffer.count))
        }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        _ = crypto_hash_sha256_update(&state, bytes.bindMemory(to: UInt8.self).baseAddress, UInt64(bytes.count))
    }

    public mutating func update(byte: UInt8) {
        var b = byte
        _ = crypto_hash_sha256_update(&state, &b, 1)
    }

    public mutating func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { _ = crypto_hash_sha256_final(&state, $0.baseAddress!) }
        return out
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in
                _ = crypto_hash_sha256(o.baseAddress!, i.baseAddress, UInt64(i.count))
            }
        }
        return out
    }

    /// SHA-256 over the concatenation of the given parts, without building it.
    public static func hash(parts: [[UInt8]]) -> [UInt8] {
        var h = SHA256()
        for part in parts { h.update(part) }
        return h.finalize()
    }

    /// SHA-256(prefix ‖ bytes): the RFC 9162 leaf hash when prefix is 0x00.
    public static func hash(prefix: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(byte: prefix)
        h.update(bytes)
        return h.finalize()
    }

    /// SHA-256(prefix ‖ left ‖ right): the RFC 9162 interior node hash when prefix is 0x01.
    public static func hash(prefix: UInt8, _ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(byte: prefix)
        h.update(left)
        h.update(right)
        return h.finalize()
    }
}
