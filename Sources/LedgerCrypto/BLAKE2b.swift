import CSodium

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`.
///
/// Keyed BLAKE2b is a PRF; CreditLedger uses it to derive independent keys from one shared
/// secret, each under its own label (libsodium 1.0.18 has no HKDF).
public enum BLAKE2b {
    public static let keyByteCountRange = 16...64
    public static let outputByteCountRange = 16...64

    /// Keyed BLAKE2b of `message` under a secret `key`, returned as a secret.
    public static func keyedHash(_ message: [UInt8], key: SecretBytes, outputByteCount: Int = 32) throws -> SecretBytes {
        Sodium.ensureInitialized()
        guard keyByteCountRange.contains(key.count) else {
            throw CryptoError(.invalidKeyLength, "a BLAKE2b key is 16-64 bytes, got \(key.count)")
        }
        guard outputByteCountRange.contains(outputByteCount) else {
            throw CryptoError(.invalidInput, "BLAKE2b output is 16-64 bytes, asked for \(outputByteCount)")
        }
        var out = [UInt8](repeating: 0, count: outputByteCount)
        key.withUnsafeBytes { k in
            message.withUnsafeBufferPointer { m in
                _ = crypto_generichash(&out, outputByteCount, m.baseAddress, UInt64(m.count),
                                       k.bindMemory(to: UInt8.self).baseAddress, k.count)
            }
        }
        return SecretBytes(out)
    }
}
