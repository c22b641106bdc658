import LedgerCore
import LedgerCrypto

/// Who this node is on the wire.
struct LocalIdentity: Sendable {
    let chainID: String
    let genesisHash: [UInt8]
    let memberID: String
    let signingKey: Ed25519PrivateKey
}

/// The handshake of one connection as a state machine without I/O: messages in, messages out.
///
///     initiator                                responder
///     hello_I  ───────────────────────────────▶
///              ◀─────────────────────────────── hello_R
///     auth_I = Sign_I(label ‖ 0x01 ‖ th) ─────▶  verify with allowedPeers[I]
///              ◀─────────────────────────────── auth_R = Sign_R(label ‖ 0x02 ‖ th)
///     verify with allowedPeers[R]
///
/// th = transcript hash of both hellos. The responder signs only after the initiator has
/// proved its identity, and only a transcript holding its own fresh ephemeral key, so it is
/// no signing oracle for strangers. Any error ends the handshake; the caller closes.
struct Handshake {
    typealias Role = Wire.Role

    struct Established {
        let peerID: String
        var sendCipher: FrameCipher
        var receiveCipher: FrameCipher
    }

    /// What to do after a message: send `reply` (if any), then, if `established`, switch to frames.
    struct Step {
        var reply: [UInt8]?
        var established: Established?
    }

    private enum State {
        case idle
        case awaitingHello(sentHello: [UInt8]?)
        case awaitingAuth(peerID: String, transcriptHash: [UInt8], send: SecretBytes, receive: SecretBytes)
        case done
    }

    let role: Role
    let local: LocalIdentity
    let allowedPeers: [String: Ed25519PublicKey]
    /// For an initiator: the member it dialed. The responder's hello must name it.
    let expectedPeer: String?
    /// Dropped (and zeroed on release) once the shared secret is computed: forward secrecy
    /// needs no copy of it to outlive the handshake (docs/P2P.md).
    private var ephemeral: X25519PrivateKey?
    private var state: State = .idle

    /// Whether the ephemeral X25519 secret is still held.
    var holdsEphemeralSecret: Bool { ephemeral != nil }

    init(role: Role, local: LocalIdentity, allowedPeers: [String: Ed25519PublicKey], expectedPeer: String?,
         ephemeral: X25519PrivateKey = X25519PrivateKey()) {
        precondition(role == .responder || expectedPeer != nil, "an initiator knows whom it dials")
        self.role = role
        self.local = local
        self.allowedPeers = allowedPeers
        self.expectedPeer = expectedPeer
        self.ephemeral = ephemeral
        self.ephemeralPublicKey = ephemeral.publicKey.bytes
    }

    private let ephemeralPublicKey: [UInt8]

    var isDone: Bool { if case .done = state { true } else { false } }

    /// The first message on the connection: the initiator's hello; nil for a responder.
    mutating func start() -> [UInt8]? {
        guard case .idle = state else { preconditionFailure("handshake started twice") }
        switch role {
        case .initiator:
            let hello = ownHello()
            state = .awaitingHello(sentHello: hello)
            return hello
        case .responder:
            state = .awaitingHello(sentHello: nil)
            return nil
        }
    }

    mutating func receive(_ message: [UInt8]) throws(P2PError) -> Step {
        switch state {
        case .idle, .done:
            preconditionFailure("handshake message outside the handshake")
        case .awaitingHello(let sentHello):
            let hello = try Wire.Hello(decoding: message)
            try check(hello)
            let peerKey: X25519PublicKey
            do { peerKey = try X25519PublicKey(bytes: hello.ephemeralPublicKey) } catch {
                throw P2PError(.badKey, "ephemeral key is not an X25519 key")
            }
            let initiatorHello: [UInt8], responderHello: [UInt8], reply: [UInt8]
            switch role {
            case .initiator:
                initiatorHello = sentHello!
                responderHello = message
            case .responder:
                initiatorHello = message
                responderHello = ownHello()
            }
            let th = Wire.transcriptHash(initiatorHello: initiatorHello, responderHello: responderHello)
            let keys: (initiatorToResponder: SecretBytes, responderToInitiator: SecretBytes)
            do {
                guard let secret = ephemeral else { throw P2PError(.badKey, "no ephemeral secret") }
                let shared = try secret.sharedSecret(with: peerKey)
                ephemeral = nil
                keys = try Wire.sessionKeys(sharedSecret: shared, transcriptHash: th)
            } catch {
                throw P2PError(.badKey, "ephemeral key gives no shared secret (low-order point)")
            }
            switch role {
            case .initiator:
                reply = Wire.encodeAuth(signature: local.signingKey.signature(for: Wire.signedMessage(role: .initiator, transcriptHash: th)))
                state = .awaitingAuth(peerID: hello.memberID, transcriptHash: th,
                                      send: keys.initiatorToResponder, receive: keys.responderToInitiator)
            case .responder:
                reply = responderHello
                state = .awaitingAuth(peerID: hello.memberID, transcriptHash: th,
                                      send: keys.responderToInitiator, receive: keys.initiatorToResponder)
            }
            return Step(reply: reply, established: nil)
        case .awaitingAuth(let peerID, let th, let sendKey, let receiveKey):
            let signature = try Wire.decodeAuth(message)
            let peerRole: Role = role == .initiator ? .responder : .initiator
            // check(hello) made sure the key exists.
            let identity = allowedPeers[peerID]!
            guard identity.isValidSignature(signature, for: Wire.signedMessage(role: peerRole, transcriptHash: th)) else {
                throw P2PError(.badSignature, "signature of \(peerID) does not verify with its genesis key")
            }
            state = .done
            let established = Established(peerID: peerID, sendCipher: FrameCipher(key: sendKey), receiveCipher: FrameCipher(key: receiveKey))
            switch role {
            case .initiator:
                return Step(reply: nil, established: established)
            case .responder:
                let auth = Wire.encodeAuth(signature: local.signingKey.signature(for: Wire.signedMessage(role: .responder, transcriptHash: th)))
                return Step(reply: auth, established: established)
            }
        }
    }

    private func ownHello() -> [UInt8] {
        Wire.Hello(chainID: local.chainID, genesisHash: local.genesisHash, memberID: local.memberID,
                   ephemeralPublicKey: ephemeralPublicKey).encoded()
    }

    private func check(_ hello: Wire.Hello) throws(P2PError) {
        guard hello.chainID == local.chainID, hello.genesisHash == local.genesisHash else {
            throw P2PError(.wrongChain, "peer is on chain \(hello.chainID) with genesis \(hello.genesisHash.hexString.prefix(16))…, "
                + "this node on \(local.chainID) with genesis \(local.genesisHash.hexString.prefix(16))…")
        }
        guard hello.memberID != local.memberID else {
            throw P2PError(.selfConnection, "peer claims this node's own member id \(hello.memberID)")
        }
        guard allowedPeers[hello.memberID] != nil else {
            throw P2PError(.unknownMember, "member \(hello.memberID) is not in this node's allowed peers")
        }
        if let expectedPeer, hello.memberID != expectedPeer {
            throw P2PError(.unexpectedMember, "dialed \(expectedPeer) but the peer is \(hello.memberID)")
        }
    }
}
