import LedgerCore
import LedgerCrypto
import NIOCore
@testable import P2P
import XCTest

/// The handshake state machine, the frame cipher and the framing, without sockets.
final class HandshakeTests: XCTestCase {
    let alice = TestMember("alice"), bob = TestMember("bob"), carol = TestMember("carol")
    var allowed: [String: Ed25519PublicKey] {
        [alice.id: alice.key.publicKey, bob.id: bob.key.publicKey, carol.id: carol.key.publicKey]
    }

    func identity(_ member: TestMember, chainID: String = testChainID, genesisHash: [UInt8] = testGenesisHash) -> LocalIdentity {
        LocalIdentity(chainID: chainID, genesisHash: genesisHash, memberID: member.id, signingKey: member.key)
    }

    func pair(_ initiator: LocalIdentity? = nil, _ responder: LocalIdentity? = nil, expecting: String = "bob",
              initiatorAllowed: [String: Ed25519PublicKey]? = nil, responderAllowed: [String: Ed25519PublicKey]? = nil)
        -> (Handshake, Handshake) {
        (Handshake(role: .initiator, local: initiator ?? identity(alice), allowedPeers: initiatorAllowed ?? allowed, expectedPeer: expecting),
         Handshake(role: .responder, local: responder ?? identity(bob), allowedPeers: responderAllowed ?? allowed, expectedPeer: nil))
    }

    /// Runs both sides to completion, passing each message through `tamper` (index, bytes).
    func run(_ i: inout Handshake, _ r: inout Handshake,
             tamper: (Int, inout [UInt8]) -> Void = { _, _ in }) throws(P2PError) -> (Handshake.Established, Handshake.Established) {
        XCTAssertNil(r.start())
        var m = i.start()!
        tamper(0, &m)
        var s = try r.receive(m)                      // hello_I -> hello_R
        XCTAssertNil(s.established)
        m = s.reply!
        tamper(1, &m)
        s = try i.receive(m)                          // hello_R -> auth_I
        XCTAssertNil(s.established)
        m = s.reply!
        tamper(2, &m)
        s = try r.receive(m)                          // auth_I -> auth_R, responder done
        let responder = s.established!
        m = s.reply!
        tamper(3, &m)
        s = try i.receive(m)
        XCTAssertNil(s.reply)
        return (s.established!, responder)
    }

    func testBothSidesAgreeOnPeersAndKeys() throws {
        var (i, r) = pair()
        let (a, b) = try run(&i, &r)
        XCTAssertEqual(a.peerID, "bob")
        XCTAssertEqual(b.peerID, "alice")
        XCTAssertTrue(i.isDone && r.isDone)
        let allocator = ByteBufferAllocator()
        var aSend = a.sendCipher, bReceive = b.receiveCipher, bSend = b.sendCipher, aReceive = a.receiveCipher
        for n in 0..<3 {
            var frame = try aSend.seal(kind: .message, payload: numbered("a", "b", n), allocator: allocator)
            frame.moveReaderIndex(forwardBy: 4)
            XCTAssertEqual(try bReceive.open(frame).payload, numbered("a", "b", n))
            var back = try bSend.seal(kind: .message, payload: numbered("b", "a", n), allocator: allocator)
            back.moveReaderIndex(forwardBy: 4)
            XCTAssertEqual(try aReceive.open(back).payload, numbered("b", "a", n))
        }
        // Directions use different keys: a frame cannot be reflected back to its sender.
        var reflected = try aSend.seal(kind: .message, payload: [1], allocator: allocator)
        reflected.moveReaderIndex(forwardBy: 4)
        XCTAssertThrowsError(try aReceive.open(reflected))
    }

    /// Neither side keeps its ephemeral X25519 secret once the shared secret is computed
    /// (forward secrecy, docs/P2P.md); the handshake still completes.
    func testEphemeralSecretsAreDroppedOnceUsed() throws {
        var (i, r) = pair()
        XCTAssertTrue(i.holdsEphemeralSecret && r.holdsEphemeralSecret)
        XCTAssertNil(r.start())
        var s = try r.receive(i.start()!)
        XCTAssertFalse(r.holdsEphemeralSecret, "the responder kept its ephemeral secret after computing the shared secret")
        XCTAssertTrue(i.holdsEphemeralSecret)
        s = try i.receive(s.reply!)
        XCTAssertFalse(i.holdsEphemeralSecret, "the initiator kept its ephemeral secret after computing the shared secret")
        s = try r.receive(s.reply!)
        XCTAssertNotNil(s.established)
        XCTAssertNotNil(try i.receive(s.reply!).established)
    }

    func testSessionKeysAreFreshPerHandshake() throws {
        var (i1, r1) = pair(), (i2, r2) = pair()
        let (a1, _) = try run(&i1, &r1), (_, b2) = try run(&i2, &r2)
        var s1 = a1.sendCipher, r = b2.receiveCipher
        var frame = try s1.seal(kind: .message, payload: [1, 2, 3], allocator: ByteBufferAllocator())
        frame.moveReaderIndex(forwardBy: 4)
        XCTAssertThrowsError(try r.open(frame), "a frame of one session must not open in another")
    }

    func expectRefusal(_ code: P2PError.Code, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected \(code)", file: file, line: line)
        } catch let error as P2PError {
            XCTAssertEqual(error.code, code, error.reason, file: file, line: line)
        } catch {
            XCTFail("expected a P2PError, got \(error)", file: file, line: line)
        }
    }

    func testRefusals() {
        expectRefusal(.unknownMember) {
            var (i, r) = pair(identity(TestMember("mallory")), nil)
            _ = try run(&i, &r)
        }
        expectRefusal(.wrongChain) {
            var (i, r) = pair(identity(alice, genesisHash: SHA256.hash([1])), nil)
            _ = try run(&i, &r)
        }
        expectRefusal(.wrongChain) {
            var (i, r) = pair(identity(alice, chainID: "other-chain"), nil)
            _ = try run(&i, &r)
        }
        expectRefusal(.unexpectedMember) {
            var (i, r) = pair(nil, identity(carol))   // dialed bob, carol answers
            _ = try run(&i, &r)
        }
        expectRefusal(.selfConnection) {
            var (i, r) = pair(nil, identity(alice), expecting: "alice")
            _ = try run(&i, &r)
        }
        // Claims to be alice, signs with another key.
        expectRefusal(.badSignature) {
            var (i, r) = pair(identity(TestMember("alice")), nil)
            _ = try run(&i, &r)
        }
        // The responder's signature is checked too.
        expectRefusal(.badSignature) {
            var (i, r) = pair(nil, identity(TestMember("bob")))
            _ = try run(&i, &r)
        }
    }

    func testTamperedMessagesAreRefused() {
        // A changed hello changes the transcript: the signature over it no longer verifies.
        expectRefusal(.badSignature) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 1 { m[m.count - 1] ^= 1 } }
        }
        expectRefusal(.badSignature) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 2 { m[10] ^= 1 } }
        }
        expectRefusal(.unsupportedVersion) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 0 { m[2] = 2 } }
        }
        expectRefusal(.malformedHandshake) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 0 { m.append(0) } }
        }
        expectRefusal(.malformedHandshake) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 0 { m.removeLast() } }
        }
        expectRefusal(.malformedHandshake) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 2 { m[0] = Wire.HandshakeKind.hello.rawValue } }
        }
        // An all-zero ephemeral key is a low-order point.
        expectRefusal(.badKey) {
            var (i, r) = pair()
            _ = try run(&i, &r) { index, m in if index == 0 { m.replaceSubrange(m.count - 32..<m.count, with: [UInt8](repeating: 0, count: 32)) } }
        }
        // A replayed initiator auth from an earlier handshake does not verify against a fresh responder.
        expectRefusal(.badSignature) {
            var (i1, r1) = pair()
            var oldAuth: [UInt8] = []
            _ = try run(&i1, &r1) { index, m in if index == 2 { oldAuth = m } }
            var (i2, r2) = pair()
            _ = try run(&i2, &r2) { index, m in if index == 2 { m = oldAuth } }
        }
    }

    func testHelloRoundTripsAndMatchesTheDocumentedLayout() throws {
        let key = [UInt8](repeating: 7, count: 32)
        let hello = Wire.Hello(chainID: "c", genesisHash: [UInt8](repeating: 9, count: 32), memberID: "m1", ephemeralPublicKey: key)
        let bytes = hello.encoded()
        XCTAssertEqual(Array(bytes.prefix(6)), [0x01, 0x00, 0x01, 0x01, 0x63, 0x09])
        XCTAssertEqual(bytes.count, 1 + 2 + 1 + 1 + 32 + 1 + 2 + 32)
        XCTAssertEqual(try Wire.Hello(decoding: bytes), hello)
        // Member ids that are not genesis member ids are refused before they reach a log line.
        var bad = Wire.Hello(chainID: "c", genesisHash: hello.genesisHash, memberID: "M\n1", ephemeralPublicKey: key).encoded()
        XCTAssertThrowsError(try Wire.Hello(decoding: bad))
        bad = []
        XCTAssertThrowsError(try Wire.Hello(decoding: bad))
    }

    func testFrameCipherRefusesReplayReorderAndTruncation() throws {
        var (i, r) = pair()
        let (a, b) = try run(&i, &r)
        let allocator = ByteBufferAllocator()
        var send = a.sendCipher
        let frames = try (0..<3).map { n -> ByteBuffer in
            var f = try send.seal(kind: .message, payload: numbered("a", "b", n), allocator: allocator)
            f.moveReaderIndex(forwardBy: 4)
            return f
        }
        var receive = b.receiveCipher
        XCTAssertEqual(try receive.open(frames[0]).payload, numbered("a", "b", 0))
        var replay = receive
        XCTAssertThrowsError(try replay.open(frames[0]))
        var reorder = receive
        XCTAssertThrowsError(try reorder.open(frames[2]))
        var truncate = receive
        XCTAssertThrowsError(try truncate.open(frames[1].getSlice(at: frames[1].readerIndex, length: frames[1].readableBytes - 1)!))
        var flip = receive
        var flipped = frames[1]
        flipped.setInteger(flipped.getInteger(at: flipped.readerIndex + 2, as: UInt8.self)! ^ 0x80, at: flipped.readerIndex + 2)
        XCTAssertThrowsError(try flip.open(flipped))
        XCTAssertEqual(try receive.open(frames[1]).payload, numbered("a", "b", 1))
        XCTAssertEqual(try receive.open(frames[2]).payload, numbered("a", "b", 2))
        XCTAssertEqual(Array(FrameCipher.nonce(0x0102).suffix(9)), [0, 0, 0, 0, 0, 0, 0, 1, 2])
    }

    /// The splitter sees every possible split of the stream, one byte at a time.
    func testFramingByteAtATime() throws {
        var stream = ByteBuffer()
        let bodies: [[UInt8]] = [[1], [2, 3], Array(repeating: 4, count: 300)]
        for body in bodies { stream.writeBytes(Wire.lengthPrefix(body.count) + body) }
        var buffer = ByteBuffer()
        var out: [[UInt8]] = []
        for byte in stream.readableBytesView {
            buffer.writeInteger(byte)
            while let body = try Framing.nextBody(in: &buffer, lengths: 1...300, what: "message") { out.append(Array(body.readableBytesView)) }
        }
        XCTAssertEqual(out, bodies)
        // A length over the limit is refused from the prefix alone, before the body exists.
        var huge = ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertThrowsError(try Framing.nextBody(in: &huge, lengths: 1...512, what: "handshake message")) { error in
            XCTAssertEqual((error as? P2PError)?.code, .frameTooLarge)
        }
        var empty = ByteBuffer(bytes: [0, 0, 0, 0])
        XCTAssertThrowsError(try Framing.nextBody(in: &empty, lengths: 1...512, what: "handshake message"))
        // A peer address that is really an HTTP listener answers "HTTP/1.1 …": said so.
        var http = ByteBuffer(bytes: Array("HTTP/1.1 400 Bad Request\r\n".utf8))
        XCTAssertThrowsError(try Framing.nextBody(in: &http, lengths: 1...512, what: "handshake message")) { error in
            XCTAssertTrue("\(error)".contains("this address answers HTTP; give the peer's p2p address"), "\(error)")
        }
    }

    func testBackoffGrowsToItsCapWithJitterAndResets() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1), random: { $0 - 1 })
        let delays = (0..<6).map { _ in backoff.nextDelay() }
        XCTAssertEqual(delays.map { $0.nanoseconds / 1_000_000 }, [100, 200, 400, 800, 1000, 1000])
        var low = Backoff(initial: .milliseconds(100), maximum: .seconds(1), random: { _ in 0 })
        XCTAssertEqual(low.nextDelay().nanoseconds / 1_000, 50_000)
        backoff.reset()
        XCTAssertEqual(backoff.nextDelay().nanoseconds / 1_000_000, 100)
    }

    func testConfigValidation() throws {
        let member = TestMember("m1")
        XCTAssertNoThrow(try Consortium.config(for: member, allowed: [:]).validate())
        var config = Consortium.config(for: member, allowed: [:])
        config.genesisHash = [1, 2]
        XCTAssertThrowsError(try config.validate())
        config = Consortium.config(for: member, allowed: [:])
        config.maxFrameBytes = 2 << 30
        XCTAssertThrowsError(try config.validate())
        config = Consortium.config(for: member, allowed: [:])
        config.maxQueuedBytesPerPeer = config.maxFrameBytes - 1
        XCTAssertThrowsError(try config.validate())
        config = Consortium.config(for: member, allowed: [:])
        config.idleTimeout = config.keepaliveInterval
        XCTAssertThrowsError(try config.validate())
    }
}
