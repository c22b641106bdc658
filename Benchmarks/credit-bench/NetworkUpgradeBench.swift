import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode

/// A model upgrade on the consortium (docs/SCORING.md §8.1): four validators as real processes,
/// N subjects' records committed and live-scored, then individual-business v2 and enterprise v2
/// installed by governance while new attestations keep arriving. Times the install until both
/// bureaus report both re-score jobs finished (every subject's endorsed update committed).
struct NetworkUpgradeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network-upgrade",
        abstract: "Four validators on loopback: commit N subjects' records, install two new model versions, time the bureaus' background re-score while ingestion continues.")
    @Option(help: "Subjects.") var subjects: Int = 10_000
    @Option(help: "Records per subject (on average).") var recordsPerSubject: Int = 4
    @Option(help: "Attestations per second offered during the re-score (batches of 50).") var ingestRate: Int = 500
    @Option(help: "credit-node binary (default: next to this one).") var node: String?
    @Option(help: "Directory of the shipped models.") var models: String = shippedModelsDirectory

    func run() throws {
        let binary = node ?? BuiltTools.path("credit-node") ?? "credit-node"
        let files = shippedModelNames.map { "\(models)/\($0).json" }
        let net = try LocalConsortium(name: "bench-upgrade", tool: binary, logLevel: "info", models: files)
        defer { net.stopAll(); try? FileManager.default.removeItem(atPath: net.root) }
        try net.startAll(LocalConsortium.validators)
        let samr = try MemberSecretKeys.load(from: net.keyPath("samr-330106"))
        let data = try MemberSecretKeys.load(from: net.keyPath("data-330106"))
        let clock = ContinuousClock()

        // 1. The subjects' records, committed (8 connections, batches of 1,000), and live-scored.
        print("preparing \(subjects * recordsPerSubject) records of \(subjects) subjects and the ingestion load…")
        var nonce: UInt64 = 0
        let records = try DemoRecords.requests(count: subjects * recordsPerSubject, subjects: subjects, seed: 31).map { r -> Submission in
            nonce += 1
            return try r.build(genesis: net.genesis, keys: samr, nonce: nonce, issuedAtMillis: 1)
        }
        let load = try DemoRecords.requests(count: ingestRate * 120, subjects: ingestRate * 40, seed: 32).map { r -> Submission in
            nonce += 1
            return try r.build(genesis: net.genesis, keys: data, nonce: nonce, issuedAtMillis: 1)
        }
        let addresses = try LocalConsortium.validators.map { URL(string: try net.address($0))! }
        let requests = stride(from: 0, to: records.count, by: 1000).map { JSONView.data(["transactions": records[$0..<min(records.count, $0 + 1000)].map(LedgerClient.wire)]) }
        let t0 = clock.now
        let failures = postBatches(requests, to: addresses)
        guard failures.isEmpty else { throw ValidationError("\(failures.count) batches failed, first: \(failures[0])") }
        try waitForEmptyMempools(net, LocalConsortium.validators)
        let size0 = try net.client("bank-b").getJSON("/v1/status")["log_size"] as? Int ?? 0
        print(String(format: "records committed and live-scored in %.1f s: log size %d", seconds(clock.now - t0), size0))

        // 2. Ingestion of new subjects at `ingestRate` in batches of 50, open loop: 8 connections to
        // the two banks' nodes take turns on a fixed schedule, each waiting for its batch to commit.
        final class Flag: @unchecked Sendable { let lock = NSLock(); var stop = false; var committed = 0; var failures = 0; var latencies: [Double] = [] }
        let flag = Flag()
        let rate = ingestRate
        let ingestion = DispatchGroup()
        let start = ContinuousClock.now + .milliseconds(200)
        for k in 0..<8 {
            let url = addresses[2 + k % 2]
            DispatchQueue.global().async(group: ingestion) {
                guard rate > 0, let c = try? RawHTTPClient(host: url.host!, port: UInt16(url.port!)) else { return }
                var i = k * 50
                while !flag.lock.withLock({ flag.stop }), i + 50 <= load.count {
                    let due = start + .milliseconds(Int64(i) * 1000 / Int64(rate))
                    if ContinuousClock.now < due { Thread.sleep(forTimeInterval: seconds(due - ContinuousClock.now)) }
                    let body = JSONView.data(["transactions": load[i..<i + 50].map(LedgerClient.wire)])
                    let sent = ContinuousClock.now
                    let ok = ((try? c.post("/v1/transactions/batch", body: body))?.0 ?? 0) == 200
                    let latency = seconds(ContinuousClock.now - sent)
                    flag.lock.withLock { if ok { flag.committed += 50; flag.latencies.append(latency) } else { flag.failures += 1 } }
                    i += 8 * 50
                }
            }
        }
        Thread.sleep(forTimeInterval: 1.2)
        // 3. Install both v2 models (approved by both custodians) and wait for both bureaus' jobs.
        var installs: [Submission] = []
        for name in ["individual-business", "enterprise"] {
            let text = try String(contentsOfFile: "\(models)/\(name).json", encoding: .utf8).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            var g = GovernanceBody(action: .installModel, name: name, version: 2, document: Array(text.utf8))
            for k in [samr, data] {
                let m = net.genesis.member(k.memberID)!
                g.approvals.append(MemberSignature(member: m.id, keyID: m.keyID, signature: k.signing.signature(for: g.approvalMessage(chainID: net.genesis.chainID))))
            }
            let m = net.genesis.member("samr-330106")!
            nonce += 1
            installs.append(Submission(transaction: Transaction.sign(header: TransactionHeader(chainID: net.genesis.chainID, signer: m.id, keyID: m.keyID, nonce: nonce, issuedAtMillis: 1),
                                                                     body: .governance(g), key: samr.signing), envelope: nil))
        }
        let (committedAtInstall, latenciesAtInstall) = flag.lock.withLock { (flag.committed, flag.latencies.count) }
        let t1 = clock.now
        _ = try net.client("samr-330106").submit(batch: installs)
        var lastLine = clock.now
        var finished: [String: [[String: Any]]] = [:]
        while finished.count < 2 {
            for m in ["samr-330106", "data-330106"] where finished[m] == nil {
                guard let r = try net.client(m).getJSON("/v1/status")["rescore"] as? [String: Any] else { continue }
                let jobs = (r["previous"] as? [[String: Any]] ?? []) + [r]
                if r["model"] as? String == "enterprise v2", let state = r["state"] as? String, !["listing", "running"].contains(state) { finished[m] = jobs }
                if clock.now - lastLine > .seconds(3) {
                    lastLine = clock.now
                    print("  … \(m): \(r["model"] ?? "-") \(r["done"] ?? 0)/\(r["total"] ?? 0), \(r["in_flight"] ?? 0) in flight")
                }
            }
            guard seconds(clock.now - t1) < 900 else { throw ValidationError("re-score did not finish in 900 s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let elapsed = seconds(clock.now - t1)
        let during = flag.lock.withLock { flag.committed } - committedAtInstall
        let latencies = flag.lock.withLock { flag.latencies[latenciesAtInstall...].sorted() }
        flag.lock.withLock { flag.stop = true }
        ingestion.wait()
        var total = 0
        for (m, jobs) in finished.sorted(by: { $0.key < $1.key }) {
            for j in jobs where (j["model"] as? String)?.hasSuffix("v2") == true {
                total += j["done"] as? Int ?? 0
                print("  \(m): \(j["model"] ?? "-") \(j["state"] ?? "-") \(j["done"] ?? 0)/\(j["total"] ?? 0), \(j["failed"] ?? 0) failed, pass \(j["pass"] ?? 0)")
            }
        }
        print(String(format: "network model upgrade: %d subjects re-scored, endorsed and committed under v2 %.2f s after the installs were submitted = %.0f subjects/s, while %d attestations committed (%.0f/s, offered %d/s; batch of 50 submit → committed p50 %.2f s, p99 %.2f s; %d failed batches)",
                     total, elapsed, Double(total) / elapsed, during, Double(during) / elapsed, ingestRate,
                     percentile(latencies, 0.5), percentile(latencies, 0.99), flag.failures))
        print(machineAfterRun())
    }
}
