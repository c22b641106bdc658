import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import P2P
import Synchronization

/// Open connections per client address on one HTTP listener: an IPv4 address, or an IPv6 /64
/// (as P2P counts handshakes). A connection past a client's share is answered at once with 429
/// `tooManyConnections` and closed, before anything is read from it, so one client holding
/// connections open (slow headers, say) takes at most its share of the listener's
/// `maxConnections` and the other members keep theirs. Until 2026-12-07 there was only the
/// listener's total: one client with 600 slow connections held a bureau's member listener, and
/// a bank's query waited 29 s instead of 13 ms (found by black-box testing).
///
/// Loopback clients are not counted: a TLS reverse proxy on the node's host (docs/PRIVACY.md
/// §1) brings every member from 127.0.0.1, and one share for all of them would let one slow
/// member shut the others out (found in review). Such a proxy limits its own clients.
final class ClientConnections: Sendable {
    let limit: Int
    private let open = Mutex<[String: Int]>([:])
    private let lastWarning = Mutex<[String: ContinuousClock.Instant]>([:])
    private let logger: Logger
    private let what: String

    init(limit: Int, logger: Logger, what: String) {
        self.limit = limit
        self.logger = logger
        self.what = what
    }

    /// Takes a slot for `client`, or nil when it holds `limit` already.
    func admit(_ client: String) -> Bool {
        open.withLock { counts in
            let n = counts[client, default: 0]
            guard n < limit else { return false }
            counts[client] = n + 1
            return true
        }
    }

    func release(_ client: String) {
        open.withLock { counts in
            let n = counts[client, default: 0]
            counts[client] = n > 1 ? n - 1 : nil
        }
    }

    func count(_ client: String) -> Int { open.withLock { $0[client, default: 0] } }

    /// One warning per client a minute.
    func warnRefused(_ client: String) {
        let now = ContinuousClock.now
        let warn = lastWarning.withLock { last in
            if let t = last[client], now - t < .seconds(60) { return false }
            if last.count >= 4_096 { last.removeAll() }
            last[client] = now
            return true
        }
        if warn {
            logger.warning("\(what): \(client) holds \(limit) open connections, its limit (http_max_connections_per_client); further ones are answered 429 and closed")
        }
    }

    /// The reply to a connection past the limit: whole, so any HTTP client reads a status and a reason.
    func refusal(_ client: String) -> String {
        let body = #"{"error":{"code":"tooManyConnections","message":"\#(client) holds \#(limit) open connections to this listener, the most one client may (http_max_connections_per_client); close some or reuse them"}}"#
        return "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Retry-After: 1\r\nConnection: close\r\n\r\n" + body
    }
}

/// First in a connection's pipeline, before the HTTP decoder: counts the connection against its
/// client's share, and answers and closes one past it without reading a byte.
final class ClientConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let clients: ClientConnections
    private var client: String?
    private var admitted = false

    init(_ clients: ClientConnections) { self.clients = clients }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress
        guard !Self.isLoopback(address) else {
            admitted = true
            context.fireChannelActive()
            return
        }
        let client = P2PNode.handshakeLimitKey(address)
        admitted = clients.admit(client)
        if admitted { self.client = client }
        // Active first, so the handlers after this one see it before the close.
        context.fireChannelActive()
        if !admitted {
            clients.warnRefused(client)
            let reply = context.channel.allocator.buffer(string: clients.refusal(client))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// 127.0.0.0/8, ::1, and IPv4-mapped 127.0.0.0/8.
    static func isLoopback(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let a)?:
            return UInt32(bigEndian: a.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let a)?:
            let b = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
            return b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff && b[12] == 127
        default:
            return false
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard admitted else { return }   // refused: nothing it sends is read
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { clients.release(client) }   // set only for a counted connection
        client = nil
        admitted = false
        context.fireChannelInactive()
    }
}

/// Hummingbird's HTTP/1.1 with `ClientConnectionLimitHandler` in front, and
/// `ExpectContinueHandler` and `ParseErrorReplyHandler` right after NIO's request decoder.
struct NodeHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let clients: ClientConnections
    /// The body limit of each path that reads a body (`LedgerAPI.bodyLimits`).
    let bodyLimits: [String: Int]

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let clients = clients
        let bodyLimits = bodyLimits
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ClientConnectionLimitHandler(clients), position: .first)
        }.flatMap { inner.setup(channel: channel, logger: logger) }.flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandlers([ExpectContinueHandler(bodyLimits: bodyLimits), ParseErrorReplyHandler()], position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The listener's limit on open connections (Hummingbird's `MaximumAvailableConnections`, which
/// logs only at trace level), with a warning when it is reached: past it the listener accepts
/// nothing until a connection closes, and members saw requests hang while the node said nothing
/// (found in review, 2026-12-08). At most one warning a minute per listener.
struct ListenerConnectionLimit: AvailableConnectionsDelegate {
    let maxConnections: Int
    let logger: Logger
    let what: String
    private var lastWarning: ContinuousClock.Instant? = nil
    private(set) var connectionCount = 0
    static let warningInterval: Duration = .seconds(60)

    init(_ maxConnections: Int, logger: Logger, what: String) {
        (self.maxConnections, self.logger, self.what) = (maxConnections, logger, what)
    }

    mutating func connectionOpened() {
        connectionCount += 1
        guard connectionCount >= maxConnections else { return }
        let now = ContinuousClock.now
        if lastWarning.map({ now - $0 >= Self.warningInterval }) ?? true {
            lastWarning = now
            logger.warning("\(what) holds its limit of \(maxConnections) open connections and accepts no more until one closes (new clients wait in the kernel's backlog): raise http_max_connections, or find the clients holding connections open (http_max_connections_per_client bounds each address)")
        }
    }

    mutating func connectionClosed() { connectionCount -= 1 }

    func isAcceptingNewConnections() -> Bool { connectionCount < maxConnections }
}
