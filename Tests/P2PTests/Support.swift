import Foundation
import LedgerCore
import LedgerCrypto
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import P2P
import XCTest

// MARK: logs

/// Log lines captured per node, so tests can assert what was logged and at which level.
final class LogCapture: Sendable {
    struct Line: Sendable {
        let level: Logger.Level
        let message: String
    }

    private let box = NIOLockedValueBox<[Line]>([])

    var lines: [Line] { box.withLockedValue { $0 } }

    func append(_ line: Line) { box.withLockedValue { $0.append(line) } }

    /// Lines at `level` containing every one of `parts`.
    func matching(_ level: Logger.Level, _ parts: String...) -> [String] { matching(level, parts) }

    func matching(_ level: Logger.Level, _ parts: [String]) -> [String] {
        lines.filter { line in line.level == level && parts.allSatisfy { line.message.contains($0) } }.map(\.message)
    }

    /// Waits for `count` matching lines (a close is seen by the peer before the node logs it),
    /// then checks there are exactly that many.
    func expect(_ count: Int = 1, _ level: Logger.Level, _ parts: String..., file: StaticString = #filePath, line: UInt = #line) async throws {
        try await eventually("\(count) \(level) line(s) with \(parts)", file: file, line: line) { matching(level, parts).count >= count }
        XCTAssertEqual(matching(level, parts).count, count, dump, file: file, line: line)
    }

    var dump: String { lines.map { "[\($0.level)] \($0.message)" }.joined(separator: "\n") }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.append(.init(level: event.level, message: event.message.description))
    }
}

// MARK: what a node received

final class Recorder: Sendable {
    struct State {
        var messages: [(from: String, bytes: [UInt8])] = []
        var peerEvents: [(member: String, connected: Bool)] = []
    }

    private let box = NIOLockedValueBox(State())

    func message(from: String, _ bytes: [UInt8]) { box.withLockedValue { $0.messages.append((from, bytes)) } }
    func peer(_ member: String, _ connected: Bool) { box.withLockedValue { $0.peerEvents.append((member, connected)) } }

    func messages(from member: String) -> [[UInt8]] {
        box.withLockedValue { $0.messages.filter { $0.from == member }.map(\.bytes) }
    }

    func peerEvents(_ member: String) -> [Bool] {
        box.withLockedValue { $0.peerEvents.filter { $0.member == member }.map(\.connected) }
    }
}

// MARK: members and nodes

struct TestMember: Sendable {
    let id: String
    let key: Ed25519PrivateKey

    init(_ id: String, key: Ed25519PrivateKey = Ed25519PrivateKey()) {
        self.id = id
        self.key = key
    }
}

struct TestNode {
    let member: TestMember
    let node: P2PNode
    let recorder: Recorder
    let logs: LogCapture
    var port = 0
    var id: String { member.id }

    var address: PeerAddress { PeerAddress(memberID: member.id, host: "127.0.0.1", port: port) }
}

let testChainID = "test-chain"
let testGenesisHash = SHA256.hash(Array("p2p test genesis".utf8))

/// A small consortium: every member knows every other member's key.
struct Consortium {
    let members: [TestMember]
    var allowed: [String: Ed25519PublicKey] {
        Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.key.publicKey) })
    }

    init(_ ids: String...) { members = ids.map { TestMember($0) } }

    subscript(id: String) -> TestMember { members.first { $0.id == id }! }

    /// Fast timers for tests; every limit stays explicit.
    static func config(for member: TestMember, allowed: [String: Ed25519PublicKey], port: Int = 0,
                       genesisHash: [UInt8] = testGenesisHash) -> P2PConfig {
        var config = P2PConfig(chainID: testChainID, genesisHash: genesisHash, localMemberID: member.id, signingKey: member.key,
                               listenHost: "127.0.0.1", listenPort: port, peers: [], allowedPeers: allowed)
        config.handshakeTimeout = .seconds(2)
        config.reconnectInitialDelay = .milliseconds(20)
        config.reconnectMaxDelay = .milliseconds(200)
        return config
    }

    /// Starts a node (not yet told about any peer).
    static func start(_ member: TestMember, allowed: [String: Ed25519PublicKey], port: Int = 0,
                      configure: (inout P2PConfig) -> Void = { _ in }) async throws -> TestNode {
        var config = config(for: member, allowed: allowed, port: port)
        configure(&config)
        let recorder = Recorder(), logs = LogCapture()
        let logger = Logger(label: "p2p.\(member.id)") { _ in CapturingLogHandler(capture: logs) }
        let node = P2PNode(config: config, logger: logger,
                           onMessage: { recorder.message(from: $0, $1) }, onPeer: { recorder.peer($0, $1) })
        var started = TestNode(member: member, node: node, recorder: recorder, logs: logs)
        started.port = try await node.start()
        return started
    }

    func start(_ id: String, configure: (inout P2PConfig) -> Void = { _ in }) async throws -> TestNode {
        try await Self.start(self[id], allowed: allowed, configure: configure)
    }
}

/// Tells every node where every other one listens.
func connectAll(_ nodes: [TestNode]) {
    for node in nodes { node.node.setPeers(nodes.map(\.address)) }
}

struct WaitTimeout: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` until it holds; fails the test after `timeout`. Outcomes do not depend
/// on timing: the timeout only bounds how long a broken build takes to fail.
func eventually(_ what: String, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
                _ condition: () -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        guard clock.now < deadline else {
            XCTFail("timed out waiting for \(what)", file: file, line: line)
            throw WaitTimeout(description: what)
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

func waitForSessions(_ nodes: [TestNode], file: StaticString = #filePath, line: UInt = #line) async throws {
    for node in nodes {
        let others = nodes.map(\.id).filter { $0 != node.id }.sorted()
        try await eventually("\(node.id) connected to \(others)", file: file, line: line) { node.node.connectedPeers == others }
    }
}

/// A message carrying its sender, receiver and sequence number, to check integrity and order.
func numbered(_ from: String, _ to: String, _ n: Int) -> [UInt8] { Array("\(from)->\(to) #\(n)".utf8) }

// MARK: a raw TCP peer

/// A plain TCP client: sends whatever bytes a test gives it, records what comes back and
/// whether the node closed the connection.
final class RawClient: Sendable {
    struct Received {
        var bytes = ByteBuffer()
        var closed = false
    }

    let channel: any Channel
    private let box: NIOLockedValueBox<Received>

    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let box: NIOLockedValueBox<Received>
        init(_ box: NIOLockedValueBox<Received>) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            box.withLockedValue { _ = $0.bytes.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            box.withLockedValue { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }

    private init(channel: any Channel, box: NIOLockedValueBox<Received>) {
        self.channel = channel
        self.box = box
    }

    static func connect(port: Int) async throws -> RawClient {
        let box = NIOLockedValueBox(Received())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(box)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, box: box)
    }

    var isClosed: Bool { box.withLockedValue { $0.closed } }

    /// Bytes received and not yet consumed by `receiveMessage`.
    var receivedByteCount: Int { box.withLockedValue { $0.bytes.readableBytes } }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Sends one length-prefixed message.
    func sendMessage(_ bytes: [UInt8]) async throws {
        try await send(Wire.lengthPrefix(bytes.count) + bytes)
    }

    func sendFrame(_ frame: ByteBuffer) async throws {
        try await channel.writeAndFlush(frame)
    }

    /// The next length-prefixed message from the node.
    func receiveMessage(maxLength: Int = Wire.maxHandshakeMessageBytes) async throws -> [UInt8] {
        var body: ByteBuffer?
        try await eventually("a message from the node") {
            body = box.withLockedValue { received in
                (try? Framing.nextBody(in: &received.bytes, lengths: 1...maxLength, what: "message")).flatMap { $0 }
            }
            return body != nil
        }
        return Array(body!.readableBytesView)
    }

    /// The message frames received so far, opened with `cipher` in order (keepalives left out).
    func messages(opening cipher: inout FrameCipher, maxLength: Int) throws -> [[UInt8]] {
        try frames(opening: &cipher, maxLength: maxLength).filter { $0.kind == .message }.map(\.payload)
    }

    /// Every frame received so far, opened with `cipher` in order.
    func frames(opening cipher: inout FrameCipher, maxLength: Int) throws -> [(kind: Wire.FrameKind, payload: [UInt8])] {
        var out: [(kind: Wire.FrameKind, payload: [UInt8])] = []
        while let body = try box.withLockedValue({ received throws(P2PError) in
            try Framing.nextBody(in: &received.bytes, lengths: 1...maxLength, what: "frame")
        }) {
            out.append(try cipher.open(body))
        }
        return out
    }

    func waitUntilClosed(_ what: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        try await eventually("node to close the connection (\(what))", file: file, line: line) { isClosed }
    }

    func close() async {
        try? await channel.close()
    }

    /// Runs the initiator side of the handshake as `member`, returning the session ciphers.
    func handshake(as member: TestMember, to peer: String, genesisHash: [UInt8] = testGenesisHash,
                   allowed: [String: Ed25519PublicKey]) async throws -> Handshake.Established {
        var handshake = Handshake(role: .initiator,
                                  local: LocalIdentity(chainID: testChainID, genesisHash: genesisHash, memberID: member.id, signingKey: member.key),
                                  allowedPeers: allowed, expectedPeer: peer)
        try await sendMessage(handshake.start()!)
        let auth = try handshake.receive(try await receiveMessage())
        try await sendMessage(auth.reply!)
        let step = try handshake.receive(try await receiveMessage())
        return step.established!
    }
}
