import CSodium

extension X25519PrivateKey {
    /// The raw X25519 (RFC 7748) shared secret with `peer`, through libsodium's `crypto_scalarmult`.
    ///
    /// Throws when the result is all zero, which happens exactly when `peer` is a low-order point:
    /// such a "shared" secret would be known to anyone. The raw secret is not a key by itself;
    /// derive keys from it (for example with `BLAKE2b.keyedHash`) together with a transcript.
    public func sharedSecret(with peer: X25519PublicKey) throws -> SecretBytes {
        Sodium.ensureInitialized()
        var scalar = rawRepresentation
        defer { secureZero(&scalar) }
        var out = [UInt8](repeating: 0, count: 32)
        let rc = crypto_scalarmult(&out, scalar, peer.bytes)
        guard rc == 0 else {
            secureZero(&out)
            throw CryptoError(.invalidInput, "X25519 with a low-order public key gives no shared secret")
        }
        return SecretBytes(out)
    }
}

extension X25519PublicKey {
    /// Whether this is a low-order point, with which every X25519 shared secret is zero: nothing
    /// sealed to it can be opened, and nothing agreed with it is secret.
    public var isLowOrder: Bool {
        Sodium.ensureInitialized()
        // Any clamped scalar multiplies a low-order point to zero, which libsodium refuses.
        let scalar = [UInt8](repeating: 0x5A, count: 32)
        var out = [UInt8](repeating: 0, count: 32)
        return crypto_scalarmult(&out, scalar, bytes) != 0
    }
}
