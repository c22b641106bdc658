import LedgerCore
import LedgerCrypto

/// The P2P wire format, version 1: constants, handshake messages, transcript and key derivation.
/// docs/P2P.md specifies every byte; this file is the reference implementation of it.
enum Wire {
    static let protocolVersion: UInt16 = 1
    /// Bytes of the big-endian length prefix before every handshake message and frame.
    static let lengthPrefixBytes = 4
    /// Largest handshake message body; a longer length prefix closes the connection at once.
    static let maxHandshakeMessageBytes = 512
    static let maxChainIDBytes = 64
    /// Frame kind byte plus the Poly1305 tag.
    static let frameOverheadBytes = 1 + XChaCha20Poly1305.tagByteCount
    /// The largest `maxFrameBytes` a configuration may set (1 GiB), so every frame length fits in a u32.
    static let maxFrameBytesLimit = 1 << 30

    enum HandshakeKind: UInt8 { case hello = 0x01, auth = 0x02 }
    /// `closing`: the sender ends the session and says why (UTF-8, at most `maxClosingReasonBytes`);
    /// sent by a responder that refuses a second live session for one member.
    enum FrameKind: UInt8 { case message = 0x01, keepalive = 0x02, closing = 0x03 }
    static let maxClosingReasonBytes = 512
    enum Role: UInt8, Sendable { case initiator = 0x01, responder = 0x02 }

    static let transcriptLabel = "CreditLedger p2p v1 transcript"
    static let signatureLabel = "CreditLedger p2p v1 auth"
    static let initiatorToResponderLabel = "CreditLedger p2p v1 initiator->responder"
    static let responderToInitiatorLabel = "CreditLedger p2p v1 responder->initiator"

    /// The first message each side sends.
    struct Hello: Equatable {
        var version: UInt16
        var chainID: String
        var genesisHash: [UInt8]
        var memberID: String
        var ephemeralPublicKey: [UInt8]

        func encoded() -> [UInt8] {
            var w = ByteWriter(capacity: 192)
            w.u8(HandshakeKind.hello.rawValue)
            w.u16(version)
            w.string8(chainID)
            w.raw(genesisHash)
            w.string8(memberID)
            w.raw(ephemeralPublicKey)
            return w.bytes
        }

        /// Decodes a hello. The version is read before anything else so that a peer speaking
        /// another version is told apart from garbage.
        init(decoding bytes: [UInt8]) throws(P2PError) {
            do {
                var r = ByteReader(bytes, context: "hello")
                let kind = try r.u8("kind")
                guard kind == HandshakeKind.hello.rawValue else {
                    throw P2PError(.malformedHandshake, "expected a hello (kind 1), got kind \(kind)")
                }
                version = try r.u16("version")
                guard version == Wire.protocolVersion else {
                    throw P2PError(.unsupportedVersion, "peer speaks protocol version \(version), this node \(Wire.protocolVersion)")
                }
                chainID = try r.string8("chain id", max: Wire.maxChainIDBytes)
                genesisHash = try r.raw(32, "genesis hash")
                memberID = try r.string8("member id", max: FieldLimits.memberID)
                ephemeralPublicKey = try r.raw(X25519PublicKey.byteCount, "ephemeral public key")
                try r.expectEnd()
            } catch let error as P2PError {
                throw error
            } catch {
                throw P2PError(.malformedHandshake, "malformed hello: \(error)")
            }
            guard Genesis.isValidIdentifier(chainID, max: Wire.maxChainIDBytes) else {
                throw P2PError(.malformedHandshake, "malformed hello: chain id is not an identifier")
            }
            guard Genesis.isValidMemberID(memberID) else {
                throw P2PError(.malformedHandshake, "malformed hello: member id is not a member id")
            }
        }

        init(version: UInt16 = Wire.protocolVersion, chainID: String, genesisHash: [UInt8], memberID: String, ephemeralPublicKey: [UInt8]) {
            self.version = version
            self.chainID = chainID
            self.genesisHash = genesisHash
            self.memberID = memberID
            self.ephemeralPublicKey = ephemeralPublicKey
        }
    }

    /// The second message each side sends: its signature over the transcript.
    static func encodeAuth(signature: [UInt8]) -> [UInt8] {
        [HandshakeKind.auth.rawValue] + signature
    }

    static func decodeAuth(_ bytes: [UInt8]) throws(P2PError) -> [UInt8] {
        guard bytes.first == HandshakeKind.auth.rawValue else {
            throw P2PError(.malformedHandshake, "expected an auth message (kind 2)")
        }
        guard bytes.count == 1 + Ed25519PublicKey.signatureByteCount else {
            throw P2PError(.malformedHandshake, "auth message is \(bytes.count) bytes, expected 65")
        }
        return Array(bytes.dropFirst())
    }

    /// SHA-256(string8(label) ‖ bytes32(hello_I) ‖ bytes32(hello_R)): binds the domain, both
    /// versions, the chain id and genesis hash, both member ids and both ephemeral keys, and
    /// which side sent which.
    static func transcriptHash(initiatorHello: [UInt8], responderHello: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 400)
        w.string8(transcriptLabel)
        w.bytes32(initiatorHello)
        w.bytes32(responderHello)
        return SHA256.hash(w.bytes)
    }

    /// What each side signs with its Ed25519 identity key: string8(label) ‖ role ‖ transcript hash.
    /// Nothing else is ever signed with the identity key by this module.
    static func signedMessage(role: Role, transcriptHash: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.string8(signatureLabel)
        w.u8(role.rawValue)
        w.raw(transcriptHash)
        return w.bytes
    }

    /// The two directional session keys: keyed BLAKE2b-256 of string8(label) ‖ transcript hash,
    /// keyed with the X25519 shared secret of the two ephemeral keys.
    static func sessionKeys(sharedSecret: SecretBytes, transcriptHash: [UInt8]) throws -> (initiatorToResponder: SecretBytes, responderToInitiator: SecretBytes) {
        func derive(_ label: String) throws -> SecretBytes {
            var w = ByteWriter(capacity: 80)
            w.string8(label)
            w.raw(transcriptHash)
            return try BLAKE2b.keyedHash(w.bytes, key: sharedSecret, outputByteCount: 32)
        }
        return (try derive(initiatorToResponderLabel), try derive(responderToInitiatorLabel))
    }

    /// The length prefix as bytes: also the associated data of the frame it announces.
    static func lengthPrefix(_ length: Int) -> [UInt8] {
        let v = UInt32(length)
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
}
