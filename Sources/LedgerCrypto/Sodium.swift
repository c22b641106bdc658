import CSodium

/// libsodium must be initialised once before use; every entry point calls `Sodium.ensureInitialized()`.
public enum Sodium {
    private static let initialized: Bool = sodium_init() >= 0

    @inline(__always)
    public static func ensureInitialized() {
        precondition(initialized, "libsodium failed to initialise")
    }
}

/// Random bytes from the operating system's CSPRNG, through libsodium.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return out
    }

    public static func uint64() -> UInt64 {
        let b = bytes(8)
        return b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// A uniformly distributed integer in 0..<upperBound.
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensureInitialized()
        return randombytes_uniform(upperBound)
    }
}

public enum ConstantTime {
    /// Compares two byte strings in time that depends only on their length.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }
}

/// Zeroes a buffer that held a secret, in a way the compiler cannot elide.
public func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }
}

/// Secret bytes that are zeroed when released.
public final class SecretBytes: @unchecked Sendable {
    private var storage: [UInt8]

    public init(_ bytes: [UInt8]) { storage = bytes }

    public var count: Int { storage.count }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// A copy of the secret; callers own zeroing it.
    public var copiedBytes: [UInt8] { storage }

    deinit { secureZero(&storage) }
}
