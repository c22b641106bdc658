import CSodium

/// An X25519 public key, 32 bytes: what payload keys are sealed to.
public struct X25519PublicKey: Hashable, Sendable {
    public static let byteCount = 32
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.byteCount else {
            throw CryptoError(.invalidKeyLength, "an X25519 public key is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }
}

/// An X25519 private key, zeroed on release.
public final class X25519PrivateKey: @unchecked Sendable {
    private let secret: SecretBytes
    public let publicKey: X25519PublicKey

    public convenience init() {
        var sk = SecureRandom.bytes(32)
        defer { secureZero(&sk) }
        try! self.init(rawRepresentation: sk)
    }

    public init(rawRepresentation: [UInt8]) throws {
        Sodium.ensureInitialized()
        guard rawRepresentation.count == 32 else {
            throw CryptoError(.invalidKeyLength, "an X25519 private key is 32 bytes, got \(rawRepresentation.count)")
        }
        var pk = [UInt8](repeating: 0, count: 32)
        _ = crypto_scalarmult_base(&pk, rawRepresentation)
        secret = SecretBytes(rawRepresentation)
        publicKey = try X25519PublicKey(bytes: pk)
    }

    /// The raw 32 secret bytes; callers must zero the copy when done.
    public var rawRepresentation: [UInt8] { secret.copiedBytes }

    fileprivate func withSecret<R>(_ body: (UnsafePointer<UInt8>) -> R) -> R {
        secret.withUnsafeBytes { body($0.bindMemory(to: UInt8.self).baseAddress!) }
    }
}

/// Anonymous public-key encryption (libsodium sealed boxes: X25519 + XSalsa20-Poly1305).
public enum SealedBox {
    public static let overheadByteCount = 48

    /// Throws when libsodium refuses, which it does for a low-order recipient key (no one could
    /// open the box); the result used to be returned unchecked (found in review, 2026-12-06).
    public static func seal(_ message: [UInt8], to recipient: X25519PublicKey) throws -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: message.count + overheadByteCount)
        let rc = message.withUnsafeBufferPointer { m in
            crypto_box_seal(&out, m.baseAddress, UInt64(m.count), recipient.bytes)
        }
        guard rc == 0 else {
            throw CryptoError(.invalidInput, "cannot seal to this X25519 public key (a low-order point?)")
        }
        return out
    }

    public static func open(_ box: [UInt8], with key: X25519PrivateKey) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard box.count >= overheadByteCount else {
            throw CryptoError(.decryptionFailed, "sealed box shorter than its 48-byte overhead")
        }
        var out = [UInt8](repeating: 0, count: box.count - overheadByteCount)
        let pk = key.publicKey.bytes
        let rc = key.withSecret { sk in
            out.withUnsafeMutableBufferPointer { o in
                crypto_box_seal_open(o.baseAddress, box, UInt64(box.count), pk, sk)
            }
        }
        guard rc == 0 else { throw CryptoError(.decryptionFailed, "sealed box did not open with this key") }
        return out
    }
}

/// XChaCha20-Poly1305 (IETF construction) authenticated encryption.
public enum XChaCha20Poly1305 {
    public static let keyByteCount = 32
    public static let nonceByteCount = 24
    public static let tagByteCount = 16

    public static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard key.count == keyByteCount else { throw CryptoError(.invalidKeyLength, "an XChaCha20-Poly1305 key is 32 bytes") }
        guard nonce.count == nonceByteCount else { throw CryptoError(.invalidInput, "an XChaCha20-Poly1305 nonce is 24 bytes") }
        var out = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        var outLength: UInt64 = 0
        plaintext.withUnsafeBufferPointer { p in
            associatedData.withUnsafeBufferPointer { a in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    &out, &outLength, p.baseAddress, UInt64(p.count), a.baseAddress, UInt64(a.count), nil, nonce, key)
            }
        }
        return out
    }

    public static func open(_ ciphertext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8] = []) throws -> [UInt8] {
        Sodium.ensureInitialized()
        guard key.count == keyByteCount else { throw CryptoError(.invalidKeyLength, "an XChaCha20-Poly1305 key is 32 bytes") }
        guard nonce.count == nonceByteCount else { throw CryptoError(.invalidInput, "an XChaCha20-Poly1305 nonce is 24 bytes") }
        guard ciphertext.count >= tagByteCount else { throw CryptoError(.decryptionFailed, "ciphertext shorter than its tag") }
        var out = [UInt8](repeating: 0, count: ciphertext.count - tagByteCount)
        var outLength: UInt64 = 0
        let rc = ciphertext.withUnsafeBufferPointer { c in
            associatedData.withUnsafeBufferPointer { a in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    &out, &outLength, nil, c.baseAddress!, UInt64(c.count), a.baseAddress, UInt64(a.count), nonce, key)
            }
        }
        guard rc == 0 else { throw CryptoError(.decryptionFailed, "ciphertext failed authentication") }
        return out
    }
}
