import LedgerCrypto
import Logging
import NIOCore
import Synchronization

/// Why a connection ended, as the node logs it: one line per connection.
struct CloseReason: Sendable {
    let message: String
    let level: Logger.Level
    /// A protocol violation or refusal (as opposed to an I/O event or a local close).
    let isProtocolError: Bool
    /// The peer ended the session with a `closing` frame.
    var peerEnded = false

    static func protocolError(_ error: P2PError) -> CloseReason {
        CloseReason(message: error.reason, level: .warning, isProtocolError: true, peerEnded: error.code == .peerClosed)
    }
}

/// When a session last heard from its peer (any authenticated frame, or the handshake's end),
/// in `NIODeadline` nanoseconds: the node refuses a second session for a member whose
/// current one is live.
final class SessionLiveness: Sendable {
    private let lastHeard = Atomic<UInt64>(NIODeadline.now().uptimeNanoseconds)

    func heard() { lastHeard.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed) }

    /// How long ago the peer was last heard from.
    var silence: TimeAmount {
        let now = NIODeadline.now().uptimeNanoseconds, then = lastHeard.load(ordering: .relaxed)
        return .nanoseconds(Int64(now > then ? now - then : 0))
    }
}

/// A message for a peer. `bulk`: transaction gossip or catch-up blocks, which may be large and
/// wait behind consensus messages (proposals, votes, status, block fetches) queued after them.
struct Outgoing: Sendable {
    let payload: [UInt8]
    let bulk: Bool
}

/// One TCP connection: length-prefixed handshake, then encrypted frames. Lives on the node's
/// event loop; reports to the node, which owns sessions, logging and dialing.
///
/// Inbound bytes are buffered only up to the length the current prefix announces, after that
/// length has been checked against the limit of the phase. Outbound messages wait in `urgent`
/// or `pending` while the channel is not writable, urgent ones written first; the node bounds
/// them in bytes per peer.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = Outgoing
    typealias OutboundOut = ByteBuffer

    private enum Phase { case handshaking, established, closed }

    private let node: P2PNode
    private let role: Wire.Role
    private let expectedPeer: String?
    private let frameLengths: ClosedRange<Int>
    private let handshakeTimeout: TimeAmount
    private var phase = Phase.handshaking
    /// Released once the session is established: with it go the ephemeral X25519 secret
    /// (zeroed on release) and the handshake's copies of the session keys (docs/P2P.md,
    /// forward secrecy).
    private var handshake: Handshake?
    private var sendCipher: FrameCipher?
    private var receiveCipher: FrameCipher?
    private var handshakeCompleted = false
    /// Set once the node has registered this connection as the session with that member.
    private var sessionPeer: String?
    private let liveness = SessionLiveness()
    private var inbound: ByteBuffer?
    /// A message waiting to be written, with the promise `send` gave for it.
    private typealias Queued = (payload: [UInt8], promise: EventLoopPromise<Void>?)
    private var pending = CircularBuffer<Queued>()
    /// Messages that are not bulk (`Outgoing.bulk`): written before any waiting in `pending`.
    private var urgent = CircularBuffer<Queued>()
    private var draining = false
    private var timeout: Scheduled<Void>?
    private var remote = "unknown address"
    private var closeReason: CloseReason?

    init(node: P2PNode, handshake: Handshake, maxFrameBytes: Int, handshakeTimeout: TimeAmount, frameTimeout: Duration? = nil) {
        self.frameTimeoutNanos = frameTimeout.map { UInt64(max(0, $0.inSeconds) * 1e9) }
        self.node = node
        self.role = handshake.role
        self.expectedPeer = handshake.expectedPeer
        self.handshake = handshake
        self.frameLengths = Wire.frameOverheadBytes...(maxFrameBytes + Wire.frameOverheadBytes)
        self.handshakeTimeout = handshakeTimeout
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown address" }
        if let ip = address.ipAddress, let port = address.port {
            return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return "\(address)"
    }

    // MARK: lifecycle

    func channelActive(context: ChannelHandlerContext) {
        remote = Self.describe(context.channel.remoteAddress)
        let timeoutText = "\(handshakeTimeout.nanoseconds / 1_000_000) ms"
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) { [self] in
            guard phase == .handshaking else { return }
            fail(context, CloseReason.protocolError(P2PError(.handshakeTimeout, "handshake did not complete within \(timeoutText)")))
        }
        if let hello = handshake?.start() {
            context.writeAndFlush(wrapOutboundOut(frame(hello, allocator: context.channel.allocator)), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        timeout?.cancel()
        failPending()
        if let peer = sessionPeer {
            node.sessionClosed(peer: peer, channel: context.channel, remote: remote, reason: closeReason)
        } else if !handshakeCompleted {
            node.handshakeEnded(role: role, expectedPeer: expectedPeer, remote: remote, reason: closeReason)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        failPending()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context, CloseReason(message: "connection error: \(error)", level: .info, isProtocolError: false))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, phase == .established {
            switch idle {
            case .read:
                fail(context, CloseReason.protocolError(P2PError(.peerSilent, "peer sent nothing, not even a keepalive, within the idle timeout")))
            case .write:
                if pending.isEmpty && urgent.isEmpty { sendFrame(context, kind: .keepalive, payload: [], promise: nil, flush: true) }
            case .all:
                break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes with `reason`; the node logs it once, when the channel is inactive.
    private func fail(_ context: ChannelHandlerContext, _ reason: CloseReason) {
        guard phase != .closed else { return }
        phase = .closed
        closeReason = reason
        timeout?.cancel()
        inbound = nil
        context.close(promise: nil)
    }

    private func failPending() {
        while let item = urgent.popFirst() ?? pending.popFirst() {
            item.promise?.fail(P2PError(.notConnected, "connection closed before the message was written"))
        }
    }

    // MARK: inbound

    /// When the frame now arriving began to (`NIODeadline` nanoseconds), nil between frames.
    private var partialFrameSince: UInt64? = nil

    /// How long one frame may take to arrive: `P2PConfig.frameTimeout` when set, else 30 s and a
    /// second per 64 KiB the frame declares (a full 32 MiB frame may take 9 minutes, a rate no
    /// working link is below). Any byte keeps a session live, so a member that sent all of a
    /// 32 MiB frame but its last byte, then a byte every 19 s, held that buffer for good (found
    /// in review, 2026-12-08).
    let frameTimeoutNanos: UInt64?

    func frameAllowanceNanos(declaring length: Int) -> UInt64 {
        frameTimeoutNanos ?? (30 + UInt64(max(0, length)) / (64 << 10)) * 1_000_000_000
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard phase != .closed else { return }
        // Bytes of a session count as hearing from the peer, whole frames or not: a large frame
        // crossing a slow link keeps the session live (found in review).
        if phase == .established { liveness.heard() }
        let now = NIODeadline.now().uptimeNanoseconds
        if phase == .established, let since = partialFrameSince, let held = inbound {
            let declared = held.getInteger(at: held.readerIndex, endianness: .big, as: UInt32.self).map(Int.init) ?? 0
            let allowance = frameAllowanceNanos(declaring: declared)
            if now &- since > allowance {
                fail(context, CloseReason.protocolError(P2PError(.peerSilent, "a frame of \(declared) bytes took over \(allowance / 1_000_000) ms to arrive (\(held.readableBytes) bytes of it so far): a peer that trickles a frame holds its buffer")))
                return
            }
        }
        var bytes = unwrapInboundIn(data)
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        do {
            try process(context)
        } catch {
            fail(context, CloseReason.protocolError(error))
        }
        if var buffer = inbound {
            inbound = nil
            // Reclaim consumed space once it is a sizeable part of the buffer.
            if buffer.readerIndex > 64 << 10, buffer.readerIndex > buffer.capacity / 2 { buffer.discardReadBytes() }
            if buffer.readableBytes > 0, phase != .closed { inbound = buffer }
        }
        // A frame part-way: timed from its first bytes (each whole frame read ends the timing, in `process`).
        partialFrameSince = inbound == nil ? nil : partialFrameSince ?? now
    }

    private func process(_ context: ChannelHandlerContext) throws(P2PError) {
        while phase != .closed, inbound != nil {
            switch phase {
            case .closed:
                return
            case .handshaking:
                guard let body = try Framing.nextBody(in: &inbound!, lengths: 1...Wire.maxHandshakeMessageBytes, what: "handshake message") else { return }
                guard handshake != nil else { throw P2PError(.malformedHandshake, "handshake message after the handshake") }
                let step = try handshake!.receive(Array(body.readableBytesView))
                if let reply = step.reply {
                    context.write(wrapOutboundOut(frame(reply, allocator: context.channel.allocator)), promise: nil)
                }
                context.flush()
                if let established = step.established {
                    handshakeCompleted = true
                    handshake = nil
                    timeout?.cancel()
                    sendCipher = established.sendCipher
                    receiveCipher = established.receiveCipher
                    phase = .established
                    liveness.heard()
                    switch node.sessionEstablished(peer: established.peerID, channel: context.channel, role: role, remote: remote, liveness: liveness) {
                    case .accepted:
                        sessionPeer = established.peerID
                    case .stopping:
                        fail(context, CloseReason(message: "node is stopping", level: .debug, isProtocolError: false))
                        return
                    case .refused(let why):
                        // Told to the peer, whose operator reads its log, then closed once written.
                        // The node has logged it here (rate-limited).
                        let written = context.eventLoop.makePromise(of: Void.self)
                        sendFrame(context, kind: .closing, payload: Array(why.utf8.prefix(Wire.maxClosingReasonBytes)), promise: written, flush: true)
                        phase = .closed
                        closeReason = CloseReason(message: why, level: .debug, isProtocolError: true)
                        inbound = nil
                        let channel = context.channel
                        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                        return
                    }
                }
            case .established:
                guard let body = try Framing.nextBody(in: &inbound!, lengths: frameLengths, what: "frame") else { return }
                partialFrameSince = nil
                let (kind, payload) = try receiveCipher!.open(body)
                switch kind {
                case .message:
                    if let peer = sessionPeer { node.deliver(from: peer, payload) }
                case .keepalive:
                    break
                case .closing:
                    // Logged: made printable (no forged log lines), a character cut at the byte limit dropped.
                    let why = String(decoding: payload.prefix(Wire.maxClosingReasonBytes), as: UTF8.self).printable
                    throw P2PError(.peerClosed, "the peer ended the session: \(why)")
                }
            }
        }
    }

    private func frame(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: Wire.lengthPrefixBytes + message.count)
        buffer.writeInteger(UInt32(message.count), endianness: .big)
        buffer.writeBytes(message)
        return buffer
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard phase == .established else {
            promise?.fail(P2PError(.notConnected, "no session on this connection"))
            return
        }
        let message = unwrapOutboundIn(data)
        if message.bulk { pending.append((message.payload, promise)) } else { urgent.append((message.payload, promise)) }
    }

    func flush(context: ChannelHandlerContext) {
        drain(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { drain(context) }
        context.fireChannelWritabilityChanged()
    }

    /// Encrypts and writes queued messages while the channel is writable.
    private func drain(_ context: ChannelHandlerContext) {
        guard phase == .established, !draining else { return }
        draining = true
        defer { draining = false }
        var wrote = false
        while phase == .established, context.channel.isWritable, let item = nextToWrite() {
            sendFrame(context, kind: .message, payload: item.payload, promise: item.promise, flush: false)
            wrote = true
        }
        if wrote { context.flush() }
    }

    /// Urgent messages first, but after `urgentBurstBytes` of them in a row a waiting bulk one
    /// goes: proposals carry their blocks (up to a frame), and on a link slower than the chain
    /// they would otherwise hold catch-up replies back for good (found in review).
    private func nextToWrite() -> Queued? {
        if pending.isEmpty { urgentInARow = 0 }   // counted only while bulk messages wait
        if urgentInARow >= Self.urgentBurstBytes || urgent.isEmpty, let bulk = pending.popFirst() {
            urgentInARow = 0
            return bulk
        }
        guard let item = urgent.popFirst() else { return nil }
        urgentInARow += item.payload.count
        return item
    }

    /// Urgent bytes written in a row while bulk messages wait, before one bulk message goes.
    static let urgentBurstBytes = 8 << 20
    private var urgentInARow = 0

    private func sendFrame(_ context: ChannelHandlerContext, kind: Wire.FrameKind, payload: [UInt8], promise: EventLoopPromise<Void>?, flush: Bool) {
        do {
            let frame = try sendCipher!.seal(kind: kind, payload: payload, allocator: context.channel.allocator)
            if flush {
                context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
            } else {
                context.write(wrapOutboundOut(frame), promise: promise)
            }
        } catch {
            promise?.fail(error)
            fail(context, CloseReason(message: "cannot encrypt a frame: \(error)", level: .error, isProtocolError: false))
        }
    }
}
