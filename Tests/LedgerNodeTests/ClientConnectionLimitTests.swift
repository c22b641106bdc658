import Logging
import NIOCore
import NIOEmbedded
@testable import LedgerNode
import XCTest

/// One client address holds at most its share of a listener's connections: one past it is
/// answered 429 at once, before it sends anything, and closed, and what it sends is not passed
/// on; closing one frees its place (one client's 600 slow connections held a bureau's member
/// listener for every bank; found by black-box testing). Loopback is not counted.
final class ClientConnectionLimitTests: XCTestCase {
    func connection(from address: SocketAddress, _ clients: ClientConnections) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: ClientConnectionLimitHandler(clients))
        try channel.connect(to: address).wait()   // an embedded channel's remote address is the one it "connects" to
        return channel
    }

    func testAClientPastItsShareIsAnswered429AndClosed() throws {
        let clients = ClientConnections(limit: 2, logger: Logger(label: "test"), what: "member API")
        let member = try SocketAddress(ipAddress: "203.0.113.7", port: 40000)
        let held = try (0..<2).map { _ in try connection(from: member, clients) }
        XCTAssertEqual(clients.count("203.0.113.7"), 2)
        for c in held { XCTAssertNil(try c.readOutbound(as: ByteBuffer.self)) }

        let third = try connection(from: member, clients)
        let reply = String(buffer: try XCTUnwrap(third.readOutbound(as: ByteBuffer.self)))
        XCTAssertTrue(reply.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"), reply)
        XCTAssertTrue(reply.contains("Retry-After: 1") && reply.contains("\"code\":\"tooManyConnections\"")
                      && reply.contains("203.0.113.7 holds 2 open connections"), reply)
        XCTAssertFalse(third.isActive, "the refused connection stays open")
        // What a refused connection sends goes nowhere.
        XCTAssertNoThrow(try third.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")))
        XCTAssertNil(try third.readInbound(as: ByteBuffer.self))
        XCTAssertEqual(clients.count("203.0.113.7"), 2, "a refused connection took a place")

        // Another client, and loopback, are not affected.
        let other = try connection(from: try SocketAddress(ipAddress: "198.51.100.1", port: 1), clients)
        XCTAssertNil(try other.readOutbound(as: ByteBuffer.self))
        for _ in 0..<5 {
            let local = try connection(from: try SocketAddress(ipAddress: "127.0.0.1", port: 2), clients)
            XCTAssertNil(try local.readOutbound(as: ByteBuffer.self))
            try local.writeInbound(ByteBuffer(string: "x"))
            XCTAssertNotNil(try local.readInbound(as: ByteBuffer.self), "loopback's bytes were held back")
        }
        XCTAssertEqual(clients.count("127.0.0.1"), 0)

        // Closing one frees its place.
        try held[0].close().wait()
        XCTAssertEqual(clients.count("203.0.113.7"), 1)
        let again = try connection(from: member, clients)
        XCTAssertNil(try again.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(clients.count("203.0.113.7"), 2)
    }

    /// A listener at its limit of open connections says so, at most once a minute; below it,
    /// it accepts again.
    func testAListenerAtItsConnectionLimitWarns() {
        let logs = LogLines()
        var limit = ListenerConnectionLimit(3, logger: Logger(label: "test") { _ in LogLines.Handler(lines: logs) }, what: "member API")
        for _ in 0..<2 { limit.connectionOpened() }
        XCTAssertTrue(limit.isAcceptingNewConnections())
        XCTAssertTrue(logs.lines.isEmpty)
        limit.connectionOpened()
        XCTAssertFalse(limit.isAcceptingNewConnections())
        limit.connectionClosed()
        limit.connectionOpened()
        let warnings = logs.lines.filter { $0.level == .warning }.map(\.message)
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("member API holds its limit of 3 open connections and accepts no more until one closes") == true, "\(warnings)")
        limit.connectionClosed()
        XCTAssertTrue(limit.isAcceptingNewConnections())
    }

    func testLoopbackAddresses() throws {
        for (ip, loopback) in [("127.0.0.1", true), ("127.200.1.1", true), ("::1", true), ("::ffff:127.0.0.1", true),
                               ("10.0.0.1", false), ("::2", false), ("::ffff:10.0.0.1", false), ("fd00::1", false)] {
            XCTAssertEqual(ClientConnectionLimitHandler.isLoopback(try SocketAddress(ipAddress: ip, port: 1)), loopback, ip)
        }
    }
}
