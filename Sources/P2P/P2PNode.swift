import LedgerCore
import LedgerCrypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The authenticated, encrypted transport between consortium members.
///
/// A node listens for members, dials the members whose id sorts after its own, and keeps one
/// authenticated session per member. Messages are opaque bytes, ordered per connection; a
/// message can be lost when a connection drops (the layer above retransmits).
///
/// All connections of one node live on one event loop, so session changes and callbacks are
/// serialized; `send`, `broadcast` and `connectedPeers` may be called from any thread.
public final class P2PNode: Sendable {
    let config: P2PConfig
    let logger: Logger
    private let local: LocalIdentity
    private let onMessage: @Sendable (_ from: String, _ message: [UInt8]) -> Void
    private let onPeer: @Sendable (_ member: String, _ connected: Bool) -> Void
    private let eventLoop: any EventLoop
    private let state: NIOLockedValueBox<State>

    private struct Session {
        let channel: any Channel
        let role: Wire.Role
        let established: NIODeadline
        let liveness: SessionLiveness
        /// Bytes accepted by `send` and not yet written to the socket.
        var queuedBytes = 0
    }

    private struct Dialer {
        var backoff: Backoff
        var scheduled: Scheduled<Void>?
        /// A connect is under way, or its channel is open (handshaking or in session).
        var inFlight = false
        /// The last failure logged, so that a peer that stays down is reported once.
        var reported: String?
    }

    private struct State {
        var started = false
        var stopped = false
        var serverChannel: (any Channel)?
        var peers: [String: PeerAddress] = [:]
        var dialers: [String: Dialer] = [:]
        var sessions: [String: Session] = [:]
        /// Every open connection, so that `stop` can close them all.
        var channels: [ObjectIdentifier: any Channel] = [:]
        var inboundCount = 0
        /// Inbound connections still handshaking, by channel, with their `handshakeLimitKey`
        /// (at most `maxInboundConnections` entries). Removed when the session opens or the
        /// connection closes.
        var handshaking: [ObjectIdentifier: (address: String, since: NIODeadline)] = [:]
        var lastDropLog: [String: NIODeadline] = [:]
        var lastInboundRefusalLog: NIODeadline?
        /// Failed inbound handshakes: at most `maxHandshakeRefusalLogs` lines a second, then
        /// counted; the next line logged says how many were not.
        var handshakeRefusalWindow: NIODeadline?
        var handshakeRefusalsLogged = 0
        var unloggedHandshakeRefusals = 0
        /// Second sessions refused per member since the last warning about them, and when
        /// that warning was logged (at most one per member per `refusalWarningInterval`).
        var refusedSecondSessions: [String: Int] = [:]
        var lastSecondSessionWarning: [String: NIODeadline] = [:]
        /// Peers that last ended a session of this node's with a `closing` frame, and when.
        var endedBy: [String: (at: NIODeadline, why: String)] = [:]
    }

    /// A member's session that heard from its peer within this long is live: a second
    /// connection authenticating as that member is refused rather than replacing it. Two
    /// keepalive intervals: a live peer writes at least once per interval. A peer that
    /// restarted closed its old connection with the process (the kernel sends FIN or RST), and
    /// one whose old connection died silently is let in once that connection has been quiet
    /// this long.
    var liveSessionWindow: TimeAmount { TimeAmount(config.keepaliveInterval) * 2 }
    static let refusalWarningInterval: TimeAmount = .seconds(60)

    /// What `sessionEstablished` decided about a connection that completed its handshake.
    enum SessionAdmission: Equatable {
        case accepted
        /// The node is stopping.
        case stopping
        /// The member has a live session already; the reason is sent to the peer.
        case refused(String)
    }

    /// onMessage is called for every authenticated, decrypted message, on an event-loop thread; it must not block.
    /// onPeer(member, connected) when an authenticated session opens or closes.
    public convenience init(config: P2PConfig, logger: Logger,
                            onMessage: @escaping @Sendable (_ from: String, _ message: [UInt8]) -> Void,
                            onPeer: @escaping @Sendable (_ member: String, _ connected: Bool) -> Void) {
        self.init(config: config, logger: logger, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                  onMessage: onMessage, onPeer: onPeer)
    }

    /// As above, on an event loop of `eventLoopGroup` (which the caller owns and shuts down).
    public init(config: P2PConfig, logger: Logger, eventLoopGroup: any EventLoopGroup,
                onMessage: @escaping @Sendable (_ from: String, _ message: [UInt8]) -> Void,
                onPeer: @escaping @Sendable (_ member: String, _ connected: Bool) -> Void) {
        var logger = logger
        logger[metadataKey: "p2p.member"] = "\(config.localMemberID)"
        self.config = config
        self.logger = logger
        self.local = LocalIdentity(chainID: config.chainID, genesisHash: config.genesisHash,
                                   memberID: config.localMemberID, signingKey: config.signingKey)
        self.onMessage = onMessage
        self.onPeer = onPeer
        self.eventLoop = eventLoopGroup.next()
        var initial = State()
        Self.apply(peers: config.peers, to: &initial, config: config)
        self.state = NIOLockedValueBox(initial)
    }

    // MARK: public API

    /// Binds, starts dialing; returns the bound port.
    public func start() async throws -> Int {
        try config.validate()
        try state.withLockedValue { s in
            guard !s.stopped else { throw P2PError(.stopped, "node was stopped; create a new one") }
            guard !s.started else { throw P2PError(.alreadyStarted, "node already started") }
            s.started = true
        }
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: eventLoop)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: Self.waterMark)
                .childChannelInitializer { [self] channel in initializeInbound(channel) }
                .bind(host: config.listenHost, port: config.listenPort)
                .get()
        } catch {
            state.withLockedValue { $0.started = false }
            throw P2PError(.invalidConfiguration, "cannot listen on \(config.listenHost):\(config.listenPort): \(error)")
        }
        let targets: [String]? = state.withLockedValue { s in
            guard !s.stopped else { return nil }
            s.serverChannel = server
            return Array(s.dialers.keys)
        }
        guard let targets else {
            try? await server.close()
            throw P2PError(.stopped, "node was stopped while starting")
        }
        let port = server.localAddress?.port ?? config.listenPort
        logger.info("p2p listening on \(config.listenHost):\(port)")
        for member in targets.sorted() { dialSoon(member, after: .zero) }
        return port
    }

    /// Closes everything; idempotent. No callback runs after it returns.
    public func stop() async {
        let toClose: (server: (any Channel)?, channels: [any Channel])? = state.withLockedValue { s in
            guard !s.stopped else { return nil }
            s.stopped = true
            for member in s.dialers.keys { s.dialers[member]?.scheduled?.cancel() }
            return (s.serverChannel, Array(s.channels.values))
        }
        guard let toClose else { return }
        try? await toClose.server?.close()
        for channel in toClose.channels { channel.close(promise: nil) }
        for channel in toClose.channels { try? await channel.closeFuture.get() }
        // Let callbacks already queued on the loop (close handling) run before returning.
        try? await eventLoop.submit {}.get()
        logger.info("p2p stopped")
    }

    /// Queues `message` for `member`. False when there is no session, the message is larger than
    /// `maxFrameBytes`, or the peer's queue would exceed `maxQueuedBytesPerPeer` (the message is
    /// dropped; drops are logged at most once per second per peer).
    ///
    /// `bulk` (transaction gossip, catch-up blocks): written after every other message queued
    /// for the peer, and refused once the queue holds `bulkQueuedBytesPerPeer` (three quarters of
    /// the bound), so the last quarter is kept for consensus messages. Votes waited behind a
    /// 16 MiB gossip batch, longer than the round's timeouts on a slow link, and were dropped
    /// when gossip had filled the queue (found in review, 2026-12-07).
    @discardableResult
    public func send(_ message: [UInt8], to member: String, bulk: Bool = false) -> Bool {
        guard message.count <= config.maxFrameBytes else {
            logDrop(member, "message of \(message.count) bytes exceeds maxFrameBytes \(config.maxFrameBytes)")
            return false
        }
        enum Outcome { case queued(any Channel), notConnected, full(Int, Int) }
        let limit = bulk ? bulkQueuedBytesPerPeer : config.maxQueuedBytesPerPeer
        let outcome: Outcome = state.withLockedValue { s in
            guard var session = s.sessions[member] else { return .notConnected }
            guard session.queuedBytes + message.count <= limit else { return .full(session.queuedBytes, limit) }
            session.queuedBytes += message.count
            s.sessions[member] = session
            return .queued(session.channel)
        }
        switch outcome {
        case .notConnected:
            logDrop(member, "no session")
            return false
        case .full(let queued, let limit):
            logDrop(member, "\(queued) bytes already queued, limit \(limit)\(bulk ? " for gossip and catch-up blocks (the rest of \(config.maxQueuedBytesPerPeer) is kept for consensus messages)" : "")")
            return false
        case .queued(let channel):
            let promise = channel.eventLoop.makePromise(of: Void.self)
            let count = message.count
            promise.futureResult.whenComplete { [self] _ in
                state.withLockedValue { s in
                    if let session = s.sessions[member], session.channel === channel {
                        s.sessions[member]!.queuedBytes -= count
                    }
                }
            }
            channel.writeAndFlush(Outgoing(payload: message, bulk: bulk), promise: promise)
            return true
        }
    }

    /// Sends to every connected peer (`bulk` as for `send`).
    public func broadcast(_ message: [UInt8], bulk: Bool = false) {
        for member in connectedPeers { send(message, to: member, bulk: bulk) }
    }

    /// The most bytes queued for one peer past which a bulk message is refused: three quarters
    /// of `maxQueuedBytesPerPeer`, at least one frame.
    public var bulkQueuedBytesPerPeer: Int { max(config.maxFrameBytes, config.maxQueuedBytesPerPeer / 4 * 3) }

    /// Sorted member ids with an authenticated session.
    public var connectedPeers: [String] {
        state.withLockedValue { $0.sessions.keys.sorted() }
    }

    /// How long ago `peer`'s session last delivered a frame (nil without a session). A hung peer
    /// keeps its session until the idle timeout (20 s) while it says nothing.
    public func silence(of peer: String) -> TimeAmount? {
        state.withLockedValue { $0.sessions[peer]?.liveness.silence }
    }

    /// Replaces the known peer addresses (for example once listeners have their ports). New
    /// targets are dialed at once; a removed target is no longer redialed (its session, if any, stays).
    public func setPeers(_ peers: [PeerAddress]) {
        let dialNow: [String] = state.withLockedValue { s in
            let before = Set(s.dialers.keys)
            Self.apply(peers: peers, to: &s, config: config)
            return s.started && !s.stopped ? s.dialers.keys.filter { !before.contains($0) }.sorted() : []
        }
        for member in dialNow { dialSoon(member, after: .zero) }
    }

    /// The most bytes queued for one peer; a message that would go past it is dropped.
    public var maxQueuedBytesPerPeer: Int { config.maxQueuedBytesPerPeer }

    /// The connection of the session with `member` (tests read its socket options).
    func sessionChannel(_ member: String) -> (any Channel)? {
        state.withLockedValue { $0.sessions[member]?.channel }
    }

    /// Bytes queued for `member` and not yet written to its socket (0 without a session).
    public func queuedBytes(for member: String) -> Int {
        state.withLockedValue { $0.sessions[member]?.queuedBytes ?? 0 }
    }

    /// Inbound connections open now, handshaking or in session (bounded by `maxInboundConnections`).
    var inboundConnectionCount: Int { state.withLockedValue { $0.inboundCount } }
    /// Inbound connections still in their handshake (bounded per address by `maxHandshakesPerAddress`).
    var handshakingConnectionCount: Int { state.withLockedValue { $0.handshaking.count } }

    // MARK: peers and dialing

    private static let waterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 256 << 10, high: 1 << 20)

    private static func apply(peers: [PeerAddress], to s: inout State, config: P2PConfig) {
        s.peers = [:]
        for peer in peers where peer.memberID != config.localMemberID { s.peers[peer.memberID] = peer }
        let targets = Set(s.peers.keys.filter { $0 > config.localMemberID })
        for member in s.dialers.keys where !targets.contains(member) {
            s.dialers[member]?.scheduled?.cancel()
            s.dialers[member] = nil
        }
        for member in targets where s.dialers[member] == nil {
            s.dialers[member] = Dialer(backoff: Backoff(initial: TimeAmount(config.reconnectInitialDelay),
                                                        maximum: TimeAmount(config.reconnectMaxDelay)))
        }
    }

    /// Schedules a dial of `member` unless one is scheduled or under way, or a session exists.
    private func dialSoon(_ member: String, after delay: TimeAmount) {
        state.withLockedValue { s in
            guard s.started, !s.stopped, var dialer = s.dialers[member], dialer.scheduled == nil, !dialer.inFlight,
                  s.sessions[member] == nil else { return }
            dialer.scheduled = eventLoop.scheduleTask(in: delay) { [self] in dial(member) }
            s.dialers[member] = dialer
        }
    }

    private func dial(_ member: String) {
        let address: PeerAddress? = state.withLockedValue { s in
            s.dialers[member]?.scheduled = nil
            guard !s.stopped, s.dialers[member] != nil, s.sessions[member] == nil, let address = s.peers[member] else { return nil }
            s.dialers[member]!.inFlight = true
            return address
        }
        guard let address else { return }
        logger.debug("p2p dialing \(member) at \(address.host):\(address.port)")
        ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(config.handshakeTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: Self.waterMark)
            .channelInitializer { [self] channel in initializeOutbound(channel, member: member) }
            .connect(host: address.host, port: address.port)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    // The dialer stays in flight until this connection closes, session or not.
                    channel.closeFuture.whenComplete { [self] _ in redial(member, after: nil) }
                case .failure(let error):
                    // A name that does not resolve is a mistake in an address, not a peer that is
                    // down: said as a warning (it was an info line, retried for ever; found by
                    // black-box testing).
                    if let e = error as? NIOConnectionError, e.connectionErrors.isEmpty, e.dnsAError != nil || e.dnsAAAAError != nil {
                        redial(member, after: "cannot resolve host \(address.host) (check the address for \(member) under \"peers\" in the config, or its p2p_address in genesis): \(error)", loud: true)
                    } else {
                        redial(member, after: "cannot connect to \(address.host):\(address.port): \(error)")
                    }
                }
            }
    }

    /// A dial attempt ended (connect failed, handshake failed, or the session closed): back off and retry.
    private func redial(_ member: String, after failure: String?, loud: Bool = false) {
        let (delay, report): (TimeAmount?, String?) = state.withLockedValue { s in
            guard s.dialers[member] != nil else { return (nil, nil) }
            s.dialers[member]!.inFlight = false
            var report: String?
            if let failure, s.dialers[member]!.reported != failure {
                s.dialers[member]!.reported = failure
                report = failure
            }
            return (s.dialers[member]!.backoff.nextDelay(), report)
        }
        guard let delay else { return }
        if let report {
            logger.log(level: loud ? .warning : .info, "p2p peer \(member) unreachable: \(report); retrying with backoff up to \(config.reconnectMaxDelay)")
        }
        dialSoon(member, after: delay)
    }

    // MARK: connections

    private func initializeInbound(_ channel: any Channel) -> EventLoopFuture<Void> {
        initialize(channel, handshake: Handshake(role: .responder, local: local, allowedPeers: config.allowedPeers, expectedPeer: nil))
    }

    private func initializeOutbound(_ channel: any Channel, member: String) -> EventLoopFuture<Void> {
        initialize(channel, handshake: Handshake(role: .initiator, local: local, allowedPeers: config.allowedPeers, expectedPeer: member))
    }

    /// Admits a new connection (inbound ones within `maxInboundConnections`), tracks it until
    /// it closes, and installs its handlers.
    private func initialize(_ channel: any Channel, handshake: Handshake) -> EventLoopFuture<Void> {
        let id = ObjectIdentifier(channel)
        let inbound = handshake.role == .responder
        let address = inbound ? Self.handshakeLimitKey(channel.remoteAddress) : ""
        let (admitted, refusal, evicted): (Bool, String?, (any Channel)?) = state.withLockedValue { s in
            guard !s.stopped else { return (false, nil, nil) }
            var evicted: (any Channel)? = nil
            if inbound {
                func refuse(_ why: String) -> (Bool, String?, (any Channel)?) {
                    let now = NIODeadline.now()
                    let log = s.lastInboundRefusalLog.map { now - $0 >= .seconds(1) } ?? true
                    if log { s.lastInboundRefusalLog = now }
                    return (false, log ? why : nil, nil)
                }
                guard s.inboundCount < config.maxInboundConnections else {
                    return refuse("\(config.maxInboundConnections) inbound connections already open (maxInboundConnections)")
                }
                let pending = s.handshaking.values.reduce(0) { $1.address == address ? $0 + 1 : $0 }
                guard pending < config.maxHandshakesPerAddress else {
                    return refuse("\(pending) connections from \(address) already in their handshake (maxHandshakesPerAddress)")
                }
                // Unauthenticated connections never take the slots members need to reconnect:
                // handshakes in progress leave one inbound slot per genesis member free. When
                // they are all taken, the oldest handshake gives way if it has run for
                // `handshakeEvictionAge` (a member's takes milliseconds): holding the slots
                // then takes a stream of new connections, not a few silent ones.
                let handshakeCap = max(1, config.maxInboundConnections - config.allowedPeers.count)
                if s.handshaking.count >= handshakeCap {
                    let now = NIODeadline.now()
                    guard let (oldest, entry) = s.handshaking.min(by: { $0.value.since < $1.value.since }),
                          now - entry.since >= Self.handshakeEvictionAge, let channel = s.channels[oldest] else {
                        return refuse("\(s.handshaking.count) connections already in their handshake, at most \(handshakeCap) so that every member keeps an inbound slot, none of them for \(Self.handshakeEvictionAge.nanoseconds / 1_000_000) ms yet")
                    }
                    s.handshaking[oldest] = nil
                    evicted = channel
                }
                s.inboundCount += 1
                s.handshaking[id] = (address, NIODeadline.now())
            }
            s.channels[id] = channel
            return (true, nil, evicted)
        }
        if let evicted {
            logger.debug("p2p closed the connection from \(ConnectionHandler.describe(evicted.remoteAddress)), still in its handshake, for a new one")
            evicted.close(promise: nil)
        }
        guard admitted else {
            if let refusal {
                logger.warning("p2p refused connection from \(ConnectionHandler.describe(channel.remoteAddress)): \(refusal)")
            }
            return channel.eventLoop.makeFailedFuture(P2PError(.stopped, "connection not admitted"))
        }
        channel.closeFuture.whenComplete { [self] _ in
            state.withLockedValue { s in
                if inbound { s.inboundCount -= 1 }
                s.handshaking[id] = nil
                s.channels[id] = nil
            }
        }
        return channel.eventLoop.makeCompletedFuture { [self] in
            try channel.pipeline.syncOperations.addHandlers([
                IdleStateHandler(readTimeout: TimeAmount(config.idleTimeout), writeTimeout: TimeAmount(config.keepaliveInterval)),
                ConnectionHandler(node: self, handshake: handshake, maxFrameBytes: config.maxFrameBytes,
                                  handshakeTimeout: TimeAmount(config.handshakeTimeout), frameTimeout: config.frameTimeout),
            ])
        }
    }

    /// How long an inbound handshake holds its slot against newcomers once all are taken.
    static let handshakeEvictionAge: TimeAmount = .milliseconds(500)

    /// What `maxHandshakesPerAddress` counts by: an IPv4 address (also when it arrives
    /// IPv4-mapped on a dual-stack socket), or an IPv6 /64, since one host usually holds a
    /// whole /64.
    public static func handshakeLimitKey(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown address" }
        if case .v6(let v6) = address {
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                return bytes[12...].map(String.init).joined(separator: ".")
            }
            let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        }
        return address.ipAddress ?? "\(address)"
    }

    // MARK: events from connections (on the event loop)

    /// Lines a second for failed inbound handshakes: anyone who can reach the port can open
    /// connections that fail, as fast as TCP allows.
    static let maxHandshakeRefusalLogs = 10

    /// A connection that never became a session closed: one line per connection, inbound ones
    /// at most `maxHandshakeRefusalLogs` a second (the next line says how many were not logged).
    func handshakeEnded(role: Wire.Role, expectedPeer: String?, remote: String, reason: CloseReason?) {
        let stopping = state.withLockedValue { $0.stopped }
        if stopping { return }
        switch role {
        case .responder:
            let unlogged = state.withLockedValue { s -> Int? in
                let now = NIODeadline.now()
                if s.handshakeRefusalWindow.map({ now - $0 >= .seconds(1) }) ?? true {
                    s.handshakeRefusalWindow = now
                    s.handshakeRefusalsLogged = 0
                }
                guard s.handshakeRefusalsLogged < Self.maxHandshakeRefusalLogs else { s.unloggedHandshakeRefusals += 1; return nil }
                s.handshakeRefusalsLogged += 1
                defer { s.unloggedHandshakeRefusals = 0 }
                return s.unloggedHandshakeRefusals
            }
            guard let unlogged else { return }
            let also = unlogged > 0 ? " (and \(unlogged) earlier failed inbound handshakes not logged, over \(Self.maxHandshakeRefusalLogs) a second)" : ""
            if let reason {
                logger.log(level: reason.level, "p2p refused connection from \(remote): \(reason.message)\(also)")
            } else {
                logger.log(level: unlogged > 0 ? .warning : .info, "p2p connection from \(remote) closed by the peer during the handshake\(also)")
            }
        case .initiator:
            // Logged (once per distinct failure) by the dialer, which also schedules the retry.
            let member = expectedPeer ?? "?"
            let message = reason.map { "handshake with \(remote) failed: \($0.message)" }
                // The peer says nothing to a node it refuses; the likely causes are named here,
                // where the operator reads them (a node on another genesis heard only "closed";
                // found by black-box testing).
                ?? "\(remote) closed the connection during the handshake (a peer refuses a node on another genesis or chain, "
                    + "or whose key its genesis does not list, and says so in its own log only: check this node's genesis file against the peer's)"
            let report = state.withLockedValue { s -> Bool in
                guard s.dialers[member] != nil, s.dialers[member]!.reported != message else { return false }
                s.dialers[member]!.reported = message
                return true
            }
            if report {
                logger.warning("p2p cannot open a session with \(member): \(message); retrying with backoff up to \(config.reconnectMaxDelay)")
            } else {
                logger.debug("p2p cannot open a session with \(member): \(message)")
            }
        }
    }

    /// A handshake succeeded. Registers the session, replacing an older one with the same
    /// member that has gone quiet (the peer restarted and its old connection died silently).
    /// A second connection for a member whose session is live is refused: two nodes running
    /// with one member's key (a standby left running, or a stolen key) used to replace each
    /// other's sessions every few seconds, dropping what was in flight each time and slowing
    /// the whole network's commits (found by black-box testing); now the one that came first
    /// keeps the session and the other is told why.
    func sessionEstablished(peer: String, channel: any Channel, role: Wire.Role, remote: String, liveness: SessionLiveness) -> SessionAdmission {
        let window = liveSessionWindow
        /// `warn`: the refusals to warn about now (with the live session's address), nil between warnings.
        enum Outcome { case stopping, accepted(replaced: Session?), refused(silence: TimeAmount, warn: (count: Int, current: String)?) }
        let outcome: Outcome = state.withLockedValue { s in
            guard !s.stopped else { return .stopping }
            s.handshaking[ObjectIdentifier(channel)] = nil
            if let current = s.sessions[peer], case let silence = current.liveness.silence, silence < window {
                let now = NIODeadline.now()
                let count = (s.refusedSecondSessions[peer] ?? 0) + 1
                if s.lastSecondSessionWarning[peer].map({ now - $0 >= Self.refusalWarningInterval }) ?? true {
                    s.lastSecondSessionWarning[peer] = now
                    s.refusedSecondSessions[peer] = 0
                    return .refused(silence: silence, warn: (count, ConnectionHandler.describe(current.channel.remoteAddress)))
                }
                s.refusedSecondSessions[peer] = count
                return .refused(silence: silence, warn: nil)
            }
            let old = s.sessions.updateValue(Session(channel: channel, role: role, established: .now(), liveness: liveness), forKey: peer)
            if s.dialers[peer] != nil {
                // `reported` is kept until the session has lasted (`sessionClosed`): one the peer
                // ends at once (refusing a second session for this member) is the same failure again.
                // A session from either direction makes a scheduled dial pointless.
                s.dialers[peer]!.scheduled?.cancel()
                s.dialers[peer]!.scheduled = nil
            }
            return .accepted(replaced: old)
        }
        switch outcome {
        case .stopping:
            return .stopping
        case .refused(let silence, let warn):
            let heard = "\(silence.nanoseconds / 1_000_000) ms ago"
            if let (count, current) = warn {
                let counted = count > 1 ? " (\(count) such connections since the last warning)" : ""
                logger.warning("p2p refused a second session as \(peer) from \(remote)\(counted): its session from \(current) is live (heard \(heard)); two nodes may be running with \(peer)'s key (a standby left running, or a stolen key)")
            }
            // Without the varying figures, so that the refused node logs it once, not per attempt.
            return .refused("\(config.localMemberID) has a live session with \(peer) already: another node may be running with \(peer)'s key "
                + "(a standby left running, or a stolen key); this one retries with backoff")
        case .accepted(let replaced):
            if let old = replaced {
                logger.info("p2p replacing the session with \(peer), quiet for over \(window.nanoseconds / 1_000_000) ms: new authenticated connection \(remote)")
                old.channel.close(promise: nil)
                onPeer(peer, false)
            }
            logger.log(level: isEndingSessions(peer) ? .debug : .info, "p2p session with \(peer) established (\(role == .initiator ? "dialed" : "accepted") \(remote))")
            onPeer(peer, true)
            return .accepted
        }
    }

    /// Peers that ended this node's sessions with a reason within the last minute and hold no
    /// lasting session with it now, with the reason: members that refuse it (another node holds this
    /// member's key, say). For health, which said "ok" while a validator's peers all refused
    /// it (found by black-box testing).
    public var peersEndingSessions: [(peer: String, why: String)] {
        let now = NIODeadline.now()
        return state.withLockedValue { s in
            // A session of a moment is the next refusal under way, not a recovery.
            s.endedBy.filter { endingSessions($0.key, s, now: now) }.map { ($0.key, $0.value.why) }.sorted { $0.peer < $1.peer }
        }
    }

    /// Whether `peer` is ending this node's sessions (`peersEndingSessions`): its sessions then
    /// open only to be ended, and are logged at debug level, not each at info (found in review).
    public func isEndingSessions(_ peer: String) -> Bool {
        let now = NIODeadline.now()
        return state.withLockedValue { endingSessions(peer, $0, now: now) }
    }

    /// How long a refusal counts: a minute, or two retry intervals if those are longer, so that a
    /// node refused less often than once a minute is still reported (found in review).
    private var refusalWindow: TimeAmount { max(.seconds(60), TimeAmount(config.reconnectMaxDelay) * 2) }

    private func endingSessions(_ peer: String, _ s: State, now: NIODeadline) -> Bool {
        guard let ended = s.endedBy[peer], now - ended.at < refusalWindow else { return false }
        return s.sessions[peer].map { now - $0.established < TimeAmount(config.reconnectMaxDelay) } ?? true
    }

    /// A session's connection closed. Only the current session of a member reports a disconnect.
    func sessionClosed(peer: String, channel: any Channel, remote: String, reason: CloseReason?) {
        let (current, stopping, repeated): (Bool, Bool, Bool) = state.withLockedValue { s in
            guard let session = s.sessions[peer], session.channel === channel else { return (false, s.stopped, false) }
            s.sessions[peer] = nil
            // A session that held for a while resets the backoff and what was reported; one that
            // drops at once (a flapping peer, or one refusing this node) keeps backing off, and
            // the same reason is logged once.
            if let reason, reason.peerEnded { s.endedBy[peer] = (.now(), reason.message) }
            guard s.dialers[peer] != nil else { return (true, s.stopped, false) }
            if NIODeadline.now() - session.established >= TimeAmount(config.reconnectMaxDelay) {
                s.dialers[peer]!.backoff.reset()
                s.dialers[peer]!.reported = nil
                if !(reason?.peerEnded ?? false) { s.endedBy[peer] = nil }
            }
            guard let message = reason?.message else { return (true, s.stopped, false) }
            if s.dialers[peer]!.reported == message { return (true, s.stopped, true) }
            s.dialers[peer]!.reported = message
            return (true, s.stopped, false)
        }
        guard current else {
            logger.debug("p2p replaced connection with \(peer) (\(remote)) closed")
            return
        }
        if stopping {
            logger.debug("p2p session with \(peer) closed: node stopping")
        } else if let reason, repeated {
            logger.debug("p2p closed the session with \(peer) (\(remote)) again: \(reason.message)")
        } else if let reason {
            logger.log(level: reason.level, "p2p closed the session with \(peer) (\(remote)): \(reason.message)")
        } else {
            logger.info("p2p session with \(peer) (\(remote)) closed by the peer")
        }
        onPeer(peer, false)
        if !stopping { dialSoon(peer, after: TimeAmount(config.reconnectInitialDelay)) }
    }

    func deliver(from peer: String, _ payload: [UInt8]) {
        onMessage(peer, payload)
    }

    private func logDrop(_ member: String, _ why: String) {
        let now = NIODeadline.now()
        let log = state.withLockedValue { s -> Bool in
            if let last = s.lastDropLog[member], now - last < .seconds(1) { return false }
            s.lastDropLog[member] = now
            return true
        }
        if log { logger.warning("p2p dropped a message for \(member): \(why)") }
    }
}
