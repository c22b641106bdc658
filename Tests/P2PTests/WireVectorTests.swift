import LedgerCore
import LedgerCrypto
import NIOCore
@testable import P2P
import XCTest

/// The worked example of docs/P2P.md ("Test vector"), produced by the real state machine.
/// An independent implementation that reproduces these bytes speaks the protocol.
final class WireVectorTests: XCTestCase {
    struct Vector {
        var helloI = "", helloR = "", transcript = "", authI = "", authR = "", keyI2R = "", keyR2I = "", frame = ""
    }

    static func compute() throws -> Vector {
        let genesis = [UInt8](repeating: 0x05, count: 32)
        let m1 = try Ed25519PrivateKey(seed: [UInt8](repeating: 0x01, count: 32))
        let m2 = try Ed25519PrivateKey(seed: [UInt8](repeating: 0x02, count: 32))
        let allowed = ["m1": m1.publicKey, "m2": m2.publicKey]
        var i = Handshake(role: .initiator, local: LocalIdentity(chainID: "test-chain", genesisHash: genesis, memberID: "m1", signingKey: m1),
                          allowedPeers: allowed, expectedPeer: "m2",
                          ephemeral: try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 0x03, count: 32)))
        var r = Handshake(role: .responder, local: LocalIdentity(chainID: "test-chain", genesisHash: genesis, memberID: "m2", signingKey: m2),
                          allowedPeers: allowed, expectedPeer: nil,
                          ephemeral: try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 0x04, count: 32)))
        var v = Vector()
        _ = r.start()
        let helloI = i.start()!
        let helloR = try r.receive(helloI).reply!
        let authI = try i.receive(helloR).reply!
        let authR = try r.receive(authI).reply!
        var established = try i.receive(authR).established!
        let th = Wire.transcriptHash(initiatorHello: helloI, responderHello: helloR)
        let shared = try X25519PrivateKey(rawRepresentation: [UInt8](repeating: 0x03, count: 32))
            .sharedSecret(with: X25519PrivateKey(rawRepresentation: [UInt8](repeating: 0x04, count: 32)).publicKey)
        let keys = try Wire.sessionKeys(sharedSecret: shared, transcriptHash: th)
        let frame = try established.sendCipher.seal(kind: .message, payload: Array("hello".utf8), allocator: ByteBufferAllocator())
        v.helloI = helloI.hexString
        v.helloR = helloR.hexString
        v.transcript = th.hexString
        v.authI = authI.hexString
        v.authR = authR.hexString
        v.keyI2R = keys.initiatorToResponder.copiedBytes.hexString
        v.keyR2I = keys.responderToInitiator.copiedBytes.hexString
        v.frame = Array(frame.readableBytesView).hexString
        return v
    }

    func testDocumentedVector() throws {
        let v = try Self.compute()
        XCTAssertEqual(v.helloI, "0100010a746573742d636861696e0505050505050505050505050505050505050505050505050505050505050505026d315dfedd3b6bd47f6fa28ee15d969d5bb0ea53774d488bdaf9df1c6e0124b3ef22")
        XCTAssertEqual(v.helloR, "0100010a746573742d636861696e0505050505050505050505050505050505050505050505050505050505050505026d32ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10b")
        XCTAssertEqual(v.transcript, "97d7babe5afb90af3cb7946182fa1bf71b19046b1a732a4e119857ac24aa027e")
        XCTAssertEqual(v.authI, "02ea9e53e78efb79a0802ff857037eda9e2cf8a7aae26d7bf21e1825c0be74e285a453bc56be8ed538c4fd46625d2e0a86afb6ee3f43ee0ac10351a14fbd870906")
        XCTAssertEqual(v.authR, "022fdb9e84ff9d1cc4736d490a36e01c0eb13722e8af8b5252b8c77bba48197bd371fc15912536f0735a84fd54e133c4886d00abec3b03e33ed1b8a3c5200b710f")
        XCTAssertEqual(v.keyI2R, "893c4f6f725526d723d773dbab6975bdf40e4e052666336c8c89638de114fbe8")
        XCTAssertEqual(v.keyR2I, "0a59e7be3f3cb7740e27c6da8a9ea62fc2fe74a11c04ba5fd5364be0431bf602")
        XCTAssertEqual(v.frame, "00000016903aa7e76f7b35866dcd4f39e1337e575bcb8612145f")
    }
}
