import CSodium

/// An Ed25519 public key (RFC 8032), 32 bytes.
public struct Ed25519PublicKey: Hashable, Sendable {
    public static let byteCount = 32
    public static let signatureByteCount = 64
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw CryptoError(.invalidKeyLength, "an Ed25519 public key is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// Verifies a detached signature. Returns false for any malformed input.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == Self.signatureByteCount else { return false }
        return signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                bytes.withUnsafeBufferPointer { k in
                    crypto_sign_verify_detached(s.baseAddress!, m.baseAddress, UInt64(m.count), k.baseAddress!) == 0
                }
            }
        }
    }
}

/// An Ed25519 private key. The secret is held in memory zeroed on release.
public final class Ed25519PrivateKey: @unchecked Sendable {
    public static let seedByteCount = 32
    /// libsodium's 64-byte secret key: seed ‖ public key.
    private let secret: SecretBytes
    public let publicKey: Ed25519PublicKey

    /// A fresh key from the system CSPRNG.
    public convenience init() {
        var seed = SecureRandom.bytes(Self.seedByteCount)
        defer { secureZero(&seed) }
        try! self.init(seed: seed)
    }

    /// The key derived from a 32-byte seed (RFC 8032 "private key").
    public init(seed: [UInt8]) throws {
        Sodium.ensureInitialized()
        guard seed.count == Self.seedByteCount else {
            throw CryptoError(.invalidKeyLength, "an Ed25519 seed is 32 bytes, got \(seed.count)")
        }
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        secret = SecretBytes(sk)
        secureZero(&sk)
        publicKey = try Ed25519PublicKey(bytes: pk)
    }

    /// The 32-byte seed; callers must zero the copy when done.
    public var seed: [UInt8] {
        secret.withUnsafeBytes { Array($0.prefix(32)) }
    }

    public func signature(for message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: 64)
        secret.withUnsafeBytes { sk in
            message.withUnsafeBufferPointer { m in
                _ = crypto_sign_detached(&sig, nil, m.baseAddress, UInt64(m.count),
                                         sk.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        return sig
    }
}
