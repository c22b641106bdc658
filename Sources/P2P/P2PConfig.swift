import LedgerCore
import LedgerCrypto

/// Where to reach a member's P2P listener.
public struct PeerAddress: Sendable, Hashable {
    public let memberID: String
    public let host: String
    public let port: Int

    public init(memberID: String, host: String, port: Int) {
        self.memberID = memberID
        self.host = host
        self.port = port
    }
}

/// Everything a `P2PNode` needs: identity, chain binding, peers, and every limit.
public struct P2PConfig: Sendable {
    public var chainID: String
    /// 32 bytes; bound into the handshake: peers of another chain are refused.
    public var genesisHash: [UInt8]
    public var localMemberID: String
    /// The member's genesis identity key.
    public var signingKey: Ed25519PrivateKey
    public var listenHost: String
    /// 0 = ephemeral (tests); the bound port is returned by `start()`.
    public var listenPort: Int
    /// Addresses this node knows. It dials those whose member id sorts after its own.
    public var peers: [PeerAddress]
    /// Member id -> identity key, from genesis; anyone else is refused.
    public var allowedPeers: [String: Ed25519PublicKey]

    /// Largest message payload `send` accepts and a peer may send; a frame on the wire is
    /// this plus `Wire.frameOverheadBytes`.
    public var maxFrameBytes: Int = 32 << 20
    /// Bytes of messages accepted by `send` and not yet written to the socket, per peer.
    public var maxQueuedBytesPerPeer: Int = 128 << 20
    /// Inbound TCP connections open at once (handshaking or established). Of these, at most
    /// this less the number of genesis members may still be in their handshake, so connections
    /// that never authenticate cannot keep a member from reconnecting.
    public var maxInboundConnections: Int = 64
    /// Inbound connections from one IPv4 address (or IPv6 /64) still in their handshake. One more is
    /// closed at accept, so a single host cannot fill `maxInboundConnections` with connections
    /// that never authenticate; sessions from that address do not count.
    public var maxHandshakesPerAddress: Int = 8
    /// From TCP connect (or accept) to an authenticated session; also the TCP connect timeout.
    public var handshakeTimeout: Duration = .seconds(5)
    public var reconnectInitialDelay: Duration = .milliseconds(100)
    public var reconnectMaxDelay: Duration = .seconds(5)
    /// A session sends a keepalive frame when it has written nothing for this long.
    public var keepaliveInterval: Duration = .seconds(5)
    /// A session that has read nothing for this long is closed (the peer or the path is dead).
    public var idleTimeout: Duration = .seconds(20)
    /// How long one frame may take to arrive, from its first bytes; nil: 30 s and a second per
    /// 64 KiB the frame declares (any byte keeps a session live, so without it a peer could
    /// trickle the last bytes of a large frame and hold its buffer for good).
    public var frameTimeout: Duration? = nil

    public init(chainID: String, genesisHash: [UInt8], localMemberID: String, signingKey: Ed25519PrivateKey,
                listenHost: String, listenPort: Int, peers: [PeerAddress], allowedPeers: [String: Ed25519PublicKey]) {
        self.chainID = chainID
        self.genesisHash = genesisHash
        self.localMemberID = localMemberID
        self.signingKey = signingKey
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.peers = peers
        self.allowedPeers = allowedPeers
    }

    /// Refuses values the wire format cannot carry or that make no sense.
    public func validate() throws {
        func invalid(_ reason: String) -> P2PError { P2PError(.invalidConfiguration, reason) }
        guard Genesis.isValidIdentifier(chainID, max: Wire.maxChainIDBytes) else {
            throw invalid("chain id \"\(chainID)\" must be 1-\(Wire.maxChainIDBytes) characters of a-z 0-9 . - / _")
        }
        guard genesisHash.count == 32 else { throw invalid("genesis hash must be 32 bytes, got \(genesisHash.count)") }
        guard Genesis.isValidMemberID(localMemberID) else { throw invalid("local member id \"\(localMemberID)\" is not a valid member id") }
        for id in allowedPeers.keys where !Genesis.isValidMemberID(id) {
            throw invalid("allowed peer \"\(id)\" is not a valid member id")
        }
        guard (0...65535).contains(listenPort) else { throw invalid("listen port \(listenPort) is out of range") }
        for peer in peers where !(1...65535).contains(peer.port) {
            throw invalid("peer \(peer.memberID) has port \(peer.port), out of range")
        }
        guard (1...Wire.maxFrameBytesLimit).contains(maxFrameBytes) else {
            throw invalid("maxFrameBytes is \(maxFrameBytes), allowed 1-\(Wire.maxFrameBytesLimit)")
        }
        guard maxQueuedBytesPerPeer >= maxFrameBytes else {
            throw invalid("maxQueuedBytesPerPeer (\(maxQueuedBytesPerPeer)) must be at least maxFrameBytes (\(maxFrameBytes))")
        }
        guard maxInboundConnections >= 1 else { throw invalid("maxInboundConnections must be at least 1") }
        guard maxHandshakesPerAddress >= 1 else { throw invalid("maxHandshakesPerAddress must be at least 1") }
        let positive: [(String, Duration)] = [
            ("handshakeTimeout", handshakeTimeout), ("reconnectInitialDelay", reconnectInitialDelay),
            ("reconnectMaxDelay", reconnectMaxDelay), ("keepaliveInterval", keepaliveInterval), ("idleTimeout", idleTimeout),
        ]
        for (name, value) in positive where value <= .zero { throw invalid("\(name) must be positive") }
        guard reconnectMaxDelay >= reconnectInitialDelay else { throw invalid("reconnectMaxDelay must be at least reconnectInitialDelay") }
        guard reconnectMaxDelay <= .seconds(3600) else { throw invalid("reconnectMaxDelay must be at most one hour") }
        guard idleTimeout > keepaliveInterval else { throw invalid("idleTimeout must be longer than keepaliveInterval") }
    }
}
