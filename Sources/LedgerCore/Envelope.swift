import LedgerCrypto

/// The encrypted raw payload of an attestation, kept beside (not inside) the log entry.
///
/// The payload is encrypted once with a fresh XChaCha20-Poly1305 key; that key is sealed to
/// each custodian's X25519 key. The attestation commits to the envelope by hash, so deleting
/// an envelope's wrapped keys (crypto-shredding) leaves every log hash intact.
public struct Envelope: Hashable, Sendable {
    public static let version: UInt8 = 1

    public struct WrappedKey: Hashable, Sendable {
        public let custodian: String
        public let sealedKey: [UInt8]
    }

    public let nonce: [UInt8]
    public let ciphertext: [UInt8]
    public let wrappedKeys: [WrappedKey]
    public let encoded: [UInt8]

    /// SHA-256(domain ‖ encoded): what the attestation's `envelope_hash` holds. Computed once:
    /// admission, the replay cache and block checks all ask for it.
    public let hash: Hash

    init(nonce: [UInt8], ciphertext: [UInt8], wrappedKeys: [WrappedKey]) {
        self.nonce = nonce
        self.ciphertext = ciphertext
        self.wrappedKeys = wrappedKeys
        var w = ByteWriter(capacity: ciphertext.count + 128)
        w.u8(Self.version)
        w.raw(nonce)
        w.bytes32(ciphertext)
        w.u8(UInt8(wrappedKeys.count))
        for k in wrappedKeys { w.string8(k.custodian); w.raw(k.sealedKey) }
        encoded = w.bytes
        hash = SHA256.hash(parts: [Domain.envelope, encoded])
    }

    public static func decode(_ bytes: [UInt8], maxBytes: Int = Limits().maxEnvelopeBytes) throws -> Envelope {
        guard bytes.count <= maxBytes else {
            throw LedgerError(.fieldTooLarge, "payload envelope is \(bytes.count) bytes, limit \(maxBytes)")
        }
        var r = ByteReader(bytes, context: "envelope")
        let v = try r.u8("version")
        guard v == version else { throw LedgerError(.unsupportedVersion, "envelope version \(v) is not supported") }
        let nonce = try r.raw(XChaCha20Poly1305.nonceByteCount, "nonce")
        let ciphertext = try r.bytes32("ciphertext", max: FieldLimits.ciphertext)
        guard ciphertext.count >= XChaCha20Poly1305.tagByteCount + 32 else {
            throw LedgerError(.malformed, "envelope ciphertext is shorter than its salt and tag")
        }
        let count = Int(try r.u8("wrapped_keys.count"))
        guard (1...FieldLimits.wrappedKeys).contains(count) else {
            throw LedgerError(.fieldTooLarge, "envelope has \(count) wrapped keys, allowed 1-\(FieldLimits.wrappedKeys)")
        }
        var keys: [WrappedKey] = []
        for i in 0..<count {
            keys.append(WrappedKey(custodian: try r.string8("wrapped_keys[\(i)].custodian", max: FieldLimits.memberID),
                                   sealedKey: try r.raw(FieldLimits.sealedKeyBytes, "wrapped_keys[\(i)].sealed_key")))
        }
        try r.expectEnd()
        let envelope = Envelope(nonce: nonce, ciphertext: ciphertext, wrappedKeys: keys)
        guard envelope.encoded == bytes else { throw LedgerError(.malformed, "envelope is not in canonical form") }
        return envelope
    }

    /// Checks the envelope is sealed to exactly the genesis custodians, once each.
    public func checkCustodians(_ genesis: Genesis) throws {
        let expected = Set(genesis.custodians.map(\.id))
        let named = wrappedKeys.map(\.custodian)
        guard Set(named) == expected, named.count == expected.count else {
            throw LedgerError(.invalidValue,
                "envelope must be sealed to each custodian once (\(expected.sorted().joined(separator: ", "))), got \(named.joined(separator: ", "))")
        }
    }
}

/// Encrypts and opens attestation payloads.
public enum PayloadSeal {
    public static let saltByteCount = 32

    /// SHA-256(domain ‖ salt ‖ payload). The salt keeps low-entropy payloads from being guessed.
    public static func commitment(salt: [UInt8], payload: [UInt8]) -> Hash {
        SHA256.hash(parts: [Domain.payload, salt, payload])
    }

    /// Encrypts `payload` to every custodian. Returns the commitment and the envelope.
    public static func seal(_ payload: [UInt8], to custodians: [Member]) throws -> (commitment: Hash, envelope: Envelope) {
        guard payload.count <= FieldLimits.ciphertext - XChaCha20Poly1305.tagByteCount - saltByteCount else {
            throw LedgerError(.fieldTooLarge, "payload is \(payload.count) bytes, limit \(FieldLimits.ciphertext - XChaCha20Poly1305.tagByteCount - saltByteCount)")
        }
        guard !custodians.isEmpty, custodians.count <= FieldLimits.wrappedKeys else {
            throw LedgerError(.invalidValue, "a payload is sealed to 1-\(FieldLimits.wrappedKeys) custodians")
        }
        let salt = SecureRandom.bytes(saltByteCount)
        let commitment = commitment(salt: salt, payload: payload)
        var key = SecureRandom.bytes(XChaCha20Poly1305.keyByteCount)
        defer { secureZero(&key) }
        let nonce = SecureRandom.bytes(XChaCha20Poly1305.nonceByteCount)
        var plaintext = salt + payload
        defer { secureZero(&plaintext) }
        let ciphertext = try XChaCha20Poly1305.seal(plaintext, key: key, nonce: nonce, associatedData: Domain.payloadAD + commitment)
        let wrapped = try custodians.map { Envelope.WrappedKey(custodian: $0.id, sealedKey: try SealedBox.seal(key, to: $0.encryptionKey)) }
        return (commitment, Envelope(nonce: nonce, ciphertext: ciphertext, wrappedKeys: wrapped))
    }

    /// Opens an envelope as custodian `custodianID` and checks the result against the commitment.
    public static func open(_ envelope: Envelope, commitment: Hash, custodianID: String, key: X25519PrivateKey) throws -> [UInt8] {
        guard let wrapped = envelope.wrappedKeys.first(where: { $0.custodian == custodianID }) else {
            throw LedgerError(.notFound, "envelope holds no key for custodian \(custodianID) (shredded, or never sealed to it)")
        }
        var payloadKey = try SealedBox.open(wrapped.sealedKey, with: key)
        defer { secureZero(&payloadKey) }
        let plaintext = try XChaCha20Poly1305.open(envelope.ciphertext, key: payloadKey, nonce: envelope.nonce,
                                                   associatedData: Domain.payloadAD + commitment)
        let salt = Array(plaintext.prefix(saltByteCount))
        let payload = Array(plaintext.dropFirst(saltByteCount))
        guard ConstantTime.equals(Self.commitment(salt: salt, payload: payload), commitment) else {
            throw LedgerError(.invalidValue, "decrypted payload does not match its commitment")
        }
        return payload
    }
}
