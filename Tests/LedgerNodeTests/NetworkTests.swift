import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import XCTest

/// Real `credit-node run` processes: four validators and an auditor on loopback.
final class NetworkTests: XCTestCase {
    final class Acks: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var ids: [Hash] = []
        private(set) var failures = 0
        func ack(_ new: [Hash]) { lock.withLock { ids += new } }
        func failed() { lock.withLock { failures += 1 } }
    }

    /// Signed submissions with distinct nonces, built before the clock starts.
    func submissions(_ net: LocalConsortium, count: Int, seed: UInt64) throws -> [Submission] {
        let keys = try MemberSecretKeys.load(from: net.keyPath("samr-330106"))
        var nonce: UInt64 = seed << 32
        return try DemoRecords.requests(count: count, subjects: 200, seed: seed).map { r in
            nonce += 1
            return try r.build(genesis: net.genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
    }

    /// Steady load on all four validators; one is killed with SIGKILL and restarted. It catches
    /// up, no acknowledged transaction is missing anywhere, and all heads agree.
    func testKillOneValidatorUnderLoadThenItCatchesUp() throws {
        let net = try LocalConsortium(name: "kill-one")
        try net.startAll()
        let all = try submissions(net, count: 4 * 60 * 10, seed: 1)
        let acks = Acks()
        let stop = NSLock()
        nonisolated(unsafe) var stopped = false
        let group = DispatchGroup()
        for (c, m) in LocalConsortium.validators.enumerated() {
            let client = try net.client(m, timeout: 15)
            DispatchQueue.global().async(group: group) {
                for b in 0..<60 {
                    if stop.withLock({ stopped }) { return }
                    let start = (c * 60 + b) * 10
                    let batch = Array(all[start..<start + 10])
                    do {
                        _ = try client.submit(batch: batch)
                        acks.ack(batch.map(\.transaction.id))
                    } catch {
                        acks.failed()
                        if m == "bank-b" { return }   // its node is down
                    }
                    Thread.sleep(forTimeInterval: 0.03)
                }
            }
        }
        Thread.sleep(forTimeInterval: 1.0)
        net.kill9("bank-b")
        let heightAtKill = net.head("samr-330106")?.0 ?? 0
        Thread.sleep(forTimeInterval: 2.0)
        // The other three (a quorum) kept committing.
        XCTAssertGreaterThan(net.head("samr-330106")?.0 ?? 0, heightAtKill, "three of four validators stopped committing")
        try net.start("bank-b")
        group.wait()
        stop.withLock { stopped = true }
        let everyone = LocalConsortium.members
        guard let (height, _) = net.waitForAgreement(everyone, minHeight: heightAtKill + 1) else {
            return XCTFail("heads did not agree: \(everyone.map { "\($0): \(String(describing: net.head($0)))" })")
        }
        XCTAssertGreaterThan(acks.ids.count, 1000)
        // Identical heads mean identical chains; check every acknowledged transaction on the restarted node.
        let restarted = try net.client("bank-b")
        var missing = 0
        for id in acks.ids {
            if (try? restarted.getJSON("/v1/transactions/\(id.hexString)")) == nil { missing += 1 }
        }
        XCTAssertEqual(missing, 0, "acknowledged transactions missing on the restarted validator")
        let log = try String(contentsOfFile: net.log("bank-b"), encoding: .utf8)
        XCTAssertTrue(log.contains("caught up"), "the restarted validator did not catch up from peers")
        let status = try net.client("samr-330106").getJSON("/v1/status")
        XCTAssertLessThanOrEqual((status["log_size"] as? NSNumber)?.intValue ?? .max, all.count, "more transactions committed than submitted")
        print("kill-one: height \(height), \(acks.ids.count) acknowledged, \(acks.failures) failed requests")
    }

    /// Two of four validators down: no quorum, so nothing commits (and nothing forks); when one
    /// returns the pending transaction commits, and the returning validators catch up.
    func testTwoOfFourDownStopsCommittingAndResumes() throws {
        let net = try LocalConsortium(name: "kill-two")
        try net.startAll()
        let txs = try submissions(net, count: 20, seed: 2)
        _ = try net.client("samr-330106").submit(batch: Array(txs[0..<10]))
        guard let (h0, _) = net.waitForAgreement(LocalConsortium.members) else { return XCTFail("no initial agreement") }
        net.kill9("bank-a")
        net.kill9("bank-b")
        let pending = DispatchGroup()
        let client = try net.client("data-330106", timeout: 60)
        nonisolated(unsafe) var committed: [[String: Any]]? = nil
        DispatchQueue.global().async(group: pending) { committed = try? client.submit(batch: Array(txs[10..<20])) }
        Thread.sleep(forTimeInterval: 4)
        for m in ["samr-330106", "data-330106", "auditor"] {
            XCTAssertEqual(net.head(m)?.0, h0, "\(m) committed without a quorum")
        }
        XCTAssertNil(committed)
        try net.start("bank-a")
        XCTAssertEqual(pending.wait(timeout: .now() + 30), .success, "the pending batch never committed after a validator returned")
        XCTAssertEqual(committed?.count, 10)
        try net.start("bank-b")
        guard let (h1, _) = net.waitForAgreement(LocalConsortium.members, minHeight: h0 + 1) else {
            return XCTFail("heads did not agree after both returned")
        }
        XCTAssertGreaterThan(h1, h0)
    }

    /// Garbage, an oversized frame and a peer with a key that is not in genesis: each connection is
    /// dropped with a log line; the node keeps running and serving.
    func testBadPeersAreDroppedAndTheNodeKeepsRunning() throws {
        let net = try LocalConsortium(name: "bad-peers")
        try net.startAll(["samr-330106"])
        let port = net.p2pPorts["samr-330106"]!
        // 1. Garbage bytes.
        try rawSend(port: port, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8) + Array(repeating: 0xAB, count: 4096))
        // 2. A length prefix far over the frame limit.
        try rawSend(port: port, [0xFF, 0xFF, 0xFF, 0xF0] + Array(repeating: 0, count: 64))
        // 3. An impostor: a real handshake by a key that is not bank-a's.
        let impostor = try LocalConsortium.impostorHandshake(port: port, genesis: net.genesis, claiming: "bank-a")
        XCTAssertFalse(impostor, "a peer with a key not in genesis got a session")
        Thread.sleep(forTimeInterval: 0.5)
        let log = try String(contentsOfFile: net.log("samr-330106"), encoding: .utf8)
        let warnings = log.split(separator: "\n").filter { $0.contains("warning") }
        XCTAssertGreaterThanOrEqual(warnings.count, 3, "expected a log line per dropped connection:\n\(log.suffix(3000))")
        // Still serving, and the legitimate peers still connect.
        XCTAssertNotNil(net.head("samr-330106"))
        try net.startAll(["data-330106", "bank-a", "bank-b"])
        let txs = try submissions(net, count: 5, seed: 3)
        XCTAssertEqual(try net.client("samr-330106").submit(batch: txs).count, 5)
        XCTAssertNotNil(net.waitForAgreement(LocalConsortium.validators))
    }

    /// Live scoring: a new attestation commits; the designated bureau scores the subject, the other
    /// recomputes and endorses, every validator recomputes again; the score reaches a bank's node.
    func testNewAttestationIsScoredAndEndorsedOnTheNetwork() throws {
        let net = try LocalConsortium(name: "live-score", withModels: true)
        try net.startAll(LocalConsortium.validators)
        let keys = try MemberSecretKeys.load(from: net.keyPath("samr-330106"))
        var subjects: [String] = []
        var batch: [Submission] = []
        for (i, r) in DemoRecords.requests(count: 6, subjects: 6, seed: 5).enumerated() {
            subjects.append(r.subject)
            batch.append(try r.build(genesis: net.genesis, keys: keys, nonce: UInt64(100 + i), issuedAtMillis: 1))
        }
        let started = Date()
        _ = try net.client("data-330106").submit(batch: batch)
        let bank = try net.client("bank-b")
        var scored = Set<String>()
        while Date().timeIntervalSince(started) < 20, scored.count < Set(subjects).count {
            for s in Set(subjects).subtracting(scored) {
                let history = try bank.getJSON("/v1/subjects/\(s)/history")
                let kinds = (history["records"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
                if kinds.contains("score_update") { scored.insert(s) }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(scored, Set(subjects), "subjects without a committed score update after \(seconds) s")
        print(String(format: "live scoring: %d subjects scored, endorsed and committed on bank B's node %.2f s after their records were submitted", scored.count, seconds))
        // Both bureaus scored (the designation spreads subjects), and every update carries the other bureau's endorsement.
        var signers = Set<String>()
        for s in subjects {
            let history = try bank.getJSON("/v1/subjects/\(s)/history")
            for r in history["records"] as? [[String: Any]] ?? [] where r["kind"] as? String == "score_update" {
                signers.insert(r["issuer"] as? String ?? "")
                let tx = try bank.getJSON("/v1/transactions/\(r["id"] as! String)")
                let body = (tx["transaction"] as? [String: Any])?["score_update"] as? [String: Any]
                let endorsers = (body?["endorsements"] as? [[String: Any]] ?? []).compactMap { $0["member"] as? String }
                XCTAssertEqual(endorsers.count, 1)
                XCTAssertNotEqual(endorsers.first, r["issuer"] as? String)
            }
        }
        XCTAssertTrue(signers.isSubset(of: ["samr-330106", "data-330106"]), "\(signers)")
    }

    func rawSend(port: Int, _ bytes: [UInt8]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else { throw LedgerError(.notFound, "cannot connect to 127.0.0.1:\(port)") }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        // The node must close the connection: read until EOF (or time out).
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return }
            if n < 0 {
                if errno == ECONNRESET { return }   // closed with our bytes unread: a reset
                throw LedgerError(.invalidValue, "the node did not close a connection that sent bad bytes (errno \(errno))")
            }
        }
    }
}
