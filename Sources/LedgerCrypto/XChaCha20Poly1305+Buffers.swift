import CSodium

extension XChaCha20Poly1305 {
    /// Seals `plaintext` into caller-provided memory (`out.count == plaintext.count + tagByteCount`),
    /// with the key held as a secret: for transports that encrypt straight into their send buffers.
    public static func seal(_ plaintext: UnsafeRawBufferPointer, key: SecretBytes, nonce: [UInt8],
                            associatedData: [UInt8], into out: UnsafeMutableRawBufferPointer) throws {
        Sodium.ensureInitialized()
        try check(key: key, nonce: nonce)
        guard out.count == plaintext.count + tagByteCount else {
            throw CryptoError(.invalidInput, "XChaCha20-Poly1305 output must be plaintext + 16 bytes")
        }
        var outLength: UInt64 = 0
        key.withUnsafeBytes { k in
            associatedData.withUnsafeBufferPointer { a in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    out.bindMemory(to: UInt8.self).baseAddress!, &outLength,
                    plaintext.bindMemory(to: UInt8.self).baseAddress, UInt64(plaintext.count),
                    a.baseAddress, UInt64(a.count), nil, nonce, k.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
    }

    /// Opens `ciphertext` into caller-provided memory (`out.count == ciphertext.count - tagByteCount`).
    /// Throws `.decryptionFailed` when the tag does not verify; `out` then holds nothing usable.
    public static func open(_ ciphertext: UnsafeRawBufferPointer, key: SecretBytes, nonce: [UInt8],
                            associatedData: [UInt8], into out: UnsafeMutableRawBufferPointer) throws {
        Sodium.ensureInitialized()
        try check(key: key, nonce: nonce)
        guard ciphertext.count >= tagByteCount else {
            throw CryptoError(.decryptionFailed, "ciphertext shorter than its tag")
        }
        guard out.count == ciphertext.count - tagByteCount else {
            throw CryptoError(.invalidInput, "XChaCha20-Poly1305 output must be ciphertext - 16 bytes")
        }
        var outLength: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            associatedData.withUnsafeBufferPointer { a in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out.bindMemory(to: UInt8.self).baseAddress, &outLength, nil,
                    ciphertext.bindMemory(to: UInt8.self).baseAddress!, UInt64(ciphertext.count),
                    a.baseAddress, UInt64(a.count), nonce, k.bindMemory(to: UInt8.self).baseAddress!)
            }
        }
        guard rc == 0 else { throw CryptoError(.decryptionFailed, "ciphertext failed authentication") }
    }

    private static func check(key: SecretBytes, nonce: [UInt8]) throws {
        guard key.count == keyByteCount else { throw CryptoError(.invalidKeyLength, "an XChaCha20-Poly1305 key is 32 bytes") }
        guard nonce.count == nonceByteCount else { throw CryptoError(.invalidInput, "an XChaCha20-Poly1305 nonce is 24 bytes") }
    }
}
