import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import XCTest

/// A real `credit-node dev` process, killed with SIGKILL during a burst of submissions.
final class CrashRecoveryTests: XCTestCase {
    final class Record: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var acknowledged: [Hash] = []
        private(set) var lastCheckpoint: String?
        private(set) var failures = 0
        func ack(_ ids: [Hash]) { lock.withLock { acknowledged += ids } }
        func checkpoint(_ note: String) { lock.withLock { lastCheckpoint = note } }
        func failed() { lock.withLock { failures += 1 } }
        var count: Int { lock.withLock { acknowledged.count } }
    }

    func testKill9DuringBurstLosesNothingAcknowledged() throws {
        XCTAssertNotNil(BuiltTools.path("credit-node"), "credit-node binary not found next to the test bundle; run `swift build` first")
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir); try? FileManager.default.removeItem(atPath: dataDir + ".log") }

        var node = try DevNodeProcess(dataDir: dataDir)
        defer { node.terminate() }
        let client = LedgerClient(baseURL: try node.waitForAddress(), timeout: 10)
        let genesis = try client.genesis()
        let keys = try MemberSecretKeys.load(from: dataDir + "/keys/dev.key")

        // Pre-built, signed submissions: 8 clients × 40 batches × 25.
        let clients = 8, batches = 40, perBatch = 25
        let requests = DemoRecords.requests(count: clients * batches * perBatch, subjects: 300, seed: 99)
        var nonce: UInt64 = 1
        let submissions = try requests.map { r -> Submission in
            nonce += 1
            return try r.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
        let submitted = Set(submissions.map(\.transaction.id))
        let record = Record()
        let group = DispatchGroup()
        let stop = NSLock()
        nonisolated(unsafe) var stopped = false
        for c in 0..<clients {
            DispatchQueue.global().async(group: group) {
                for b in 0..<batches {
                    if stop.withLock({ stopped }) { return }
                    let start = (c * batches + b) * perBatch
                    let batch = Array(submissions[start..<start + perBatch])
                    do {
                        let results = try client.submit(batch: batch)
                        XCTAssertEqual(results.count, batch.count)
                        record.ack(batch.map(\.transaction.id))
                    } catch {
                        record.failed()
                        return
                    }
                }
            }
        }
        // On a thread of its own: the clients block in `poll`, and Dispatch's pool (about a
        // thread per core) started this loop only after the kill once they held it.
        group.enter()
        Thread {
            while !stop.withLock({ stopped }) {
                if let note = try? client.checkpoint() { record.checkpoint(note) }
                Thread.sleep(forTimeInterval: 0.01)
            }
            group.leave()
        }.start()
        // Kill once a good part of the burst is acknowledged, while the rest is in flight.
        let deadline = Date().addingTimeInterval(60)
        while record.count < clients * batches * perBatch / 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        let checkpointBeforeKill = try XCTUnwrap(record.lastCheckpoint)
        node.kill9()
        stop.withLock { stopped = true }
        group.wait()
        let acknowledged = record.acknowledged
        XCTAssertGreaterThan(acknowledged.count, 0)
        XCTAssertLessThan(acknowledged.count, submissions.count, "the kill must land during the burst")

        node = try DevNodeProcess(dataDir: dataDir)
        let restarted = LedgerClient(baseURL: try node.waitForAddress(), timeout: 10)

        // lost = acknowledged but missing: must be empty.
        var lost: [String] = []
        for id in acknowledged {
            let (status, _) = try restarted.send("GET", "/v1/transactions/\(id.hexString)")
            if status != 200 { lost.append(id.hexString) }
        }
        XCTAssertEqual(lost, [], "acknowledged transactions lost after kill -9")

        // unexpected = present but never submitted, or present twice: must be empty.
        let health = try restarted.getJSON("/v1/health")
        let height = (health["height"] as! NSNumber).uint64Value
        var seen = Set<Hash>()
        var unexpected = 0
        for h in stride(from: UInt64(1), through: height, by: 1) {
            let block = try restarted.getJSON("/v1/blocks/\(h)")
            for idText in block["transactions"] as! [String] {
                let id = [UInt8](hex: idText)!
                if !submitted.contains(id) || !seen.insert(id).inserted { unexpected += 1 }
            }
        }
        XCTAssertEqual(unexpected, 0)
        XCTAssertGreaterThanOrEqual(seen.count, acknowledged.count)

        // The log after restart extends the last checkpoint seen before the kill.
        let (old, _) = try Checkpoint.verify(signedNote: checkpointBeforeKill, genesis: genesis)
        let (new, _) = try Checkpoint.verify(signedNote: try restarted.checkpoint(), genesis: genesis)
        XCTAssertGreaterThanOrEqual(new.size, old.size)
        let proof = try restarted.getJSON("/v1/proofs/consistency?old=\(old.size)&new=\(new.size)")
        XCTAssertTrue(Merkle.verifyConsistency(oldSize: old.size, newSize: new.size, oldRoot: old.rootHash, newRoot: new.rootHash,
                                               proof: (proof["hashes"] as! [String]).map { [UInt8](base64: $0)! }))

        // And it keeps working: unacknowledged transactions can be resubmitted; committed ones are replays.
        let unacknowledged = submissions.filter { !seen.contains($0.transaction.id) }.prefix(50)
        if !unacknowledged.isEmpty { XCTAssertEqual(try restarted.submit(batch: Array(unacknowledged)).count, unacknowledged.count) }
        let replay = submissions.first { acknowledged.first == $0.transaction.id }!
        XCTAssertThrowsError(try restarted.submit(replay)) { error in
            XCTAssertEqual((error as? LedgerClient.HTTPFailure)?.status, 409)
            XCTAssertEqual((error as? LedgerClient.HTTPFailure)?.committed?.id, replay.transaction.id.hexString, "\(error)")
        }
        let stoppedAt = try restarted.getJSON("/v1/health")["height"] as? Int
        node.terminate()
        if node.process.terminationStatus != 0 {
            let log = (try? String(contentsOfFile: node.log, encoding: .utf8)) ?? "(no log)"
            XCTFail("SIGTERM did not shut down gracefully: \(node.process.terminationReason == .uncaughtSignal ? "signal" : "exit status") \(node.process.terminationStatus); log:\n\(log.suffix(4000))")
        }
        // A clean stop moved every block into table files: the write-ahead logs hold nothing, so
        // one lost or cut short after the stop costs no block (it cost every block since the
        // last flush, and the node came back lower without a word).
        let ledger = dataDir + "/ledger"
        let logs = try FileManager.default.contentsOfDirectory(atPath: ledger).filter { $0.hasSuffix(".log") }
        XCTAssertFalse(logs.isEmpty)
        for name in logs {
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: ledger + "/" + name)[.size] as? Int)
            XCTAssertEqual(size, 0, "\(name) still holds \(size) bytes after a clean stop")
            try FileManager.default.removeItem(atPath: ledger + "/" + name)
        }
        node = try DevNodeProcess(dataDir: dataDir)
        XCTAssertEqual(try LedgerClient(baseURL: try node.waitForAddress(), timeout: 10).getJSON("/v1/health")["height"] as? Int, stoppedAt)
    }
}
