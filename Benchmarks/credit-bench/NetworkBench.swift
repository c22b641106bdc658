import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode

/// Four validators (and the auditor follower) as real processes on loopback: latency from
/// submission to committed on every validator at an offered rate, sustained throughput, and
/// latency with one validator down.
struct NetworkBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Start a 4-validator network on loopback; measure commit latency at an offered rate, throughput, and latency with one validator down.")
    @Option(help: "Offered rate for the latency phases, attestations per second.") var rate: Int = 1000
    @Option(name: .customLong("seconds"), help: "Seconds per latency phase.") var phaseSeconds: Int = 15
    @Option(help: "Attestations for the throughput phase.") var throughputCount: Int = 60_000
    @Option(help: "Attestations per request in the throughput phase.") var batch: Int = 500
    @Option(help: "credit-node binary (default: next to this one).") var node: String?
    @Flag(help: "Also run the auditor follower (a fifth process that checks every block on the same 2 cores).") var withAuditor = false
    @Flag(help: "Install the shipped scorecards in genesis, so the bureaus live-score every subject with new records while the load runs (each score update designated, endorsed over P2P and recomputed by every validator).") var withScoring = false
    @Option(help: "Directory of the shipped models (for --with-scoring).") var models: String = shippedModelsDirectory

    final class Heights: @unchecked Sendable {
        let lock = NSLock()
        var firstSeen: [String: [UInt64: ContinuousClock.Instant]] = [:]
        func saw(_ m: String, _ h: UInt64, at t: ContinuousClock.Instant) {
            lock.withLock { if firstSeen[m]?[h] == nil { firstSeen[m, default: [:]][h] = t } }
        }
        /// When `height` was first seen on `member` (any later height counts too).
        func time(_ m: String, atLeast height: UInt64) -> ContinuousClock.Instant? {
            lock.withLock { firstSeen[m]?.filter { $0.key >= height }.map(\.value).min() }
        }
    }

    func run() throws {
        let binary = node ?? BuiltTools.path("credit-node") ?? "credit-node"
        let files = withScoring ? shippedModelNames.map { "\(models)/\($0).json" } : []
        let net = try LocalConsortium(name: "bench-network", tool: binary, logLevel: "warning", models: files)
        defer { net.stopAll(); try? FileManager.default.removeItem(atPath: net.root) }
        try net.startAll(withAuditor ? LocalConsortium.members : LocalConsortium.validators)
        print("nodes: \(withAuditor ? "4 validators + auditor follower" : "4 validators")\(withScoring ? ", scorecards installed: live scoring on" : ", no scorecard installed: no live scoring")")
        let keys = try MemberSecretKeys.load(from: net.keyPath("samr-330106"))
        let total = rate * phaseSeconds * 2 + throughputCount
        print("preparing \(total) signed, encrypted attestations…")
        var nonce: UInt64 = 0
        let all = try DemoRecords.requests(count: total, subjects: max(1, total / 10), seed: 11).map { r -> Submission in
            nonce += 1
            return try r.build(genesis: net.genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
        var cursor = 0
        func take(_ n: Int) -> ArraySlice<Submission> { defer { cursor += n }; return all[cursor..<cursor + n] }

        let validators = LocalConsortium.validators
        let p1 = try latency(net, members: validators, submissions: take(rate * phaseSeconds))
        print(String(format: "offered %d/s for %d s on 4 validators: submit → committed on all four p50 %.0f ms, p99 %.0f ms, max %.0f ms",
                     rate, phaseSeconds, p1.p50 * 1000, p1.p99 * 1000, p1.max * 1000))

        let t = try throughput(net, members: validators, submissions: take(throughputCount))
        print(String(format: "throughput: %d attestations committed on all four validators in %.2f s = %.0f per second (%d per request, 8 connections)",
                     throughputCount, t, Double(throughputCount) / t, batch))

        net.kill9("bank-b")
        let live = validators.filter { $0 != "bank-b" }
        let p3 = try latency(net, members: live, submissions: take(rate * phaseSeconds))
        print(String(format: "one validator down, offered %d/s for %d s: submit → committed on the three live validators p50 %.0f ms, p99 %.0f ms, max %.0f ms",
                     rate, phaseSeconds, p3.p50 * 1000, p3.p99 * 1000, p3.max * 1000))
        print(machineAfterRun())
        let targets = Targets()
        let slow = rate < 1_000 ? "offered under 1,000/s" : nil
        targets.atMost("submit → committed on all four at 1,000/s, p99", p1.p99 * 1000, 1_000, unit: "ms", unlessBecause: slow)
        targets.atLeast("committed throughput on all four", Double(throughputCount) / t, 4_000, unit: "attestations/s",
                        unlessBecause: withScoring ? "live scoring on (the target is set without scorecards)"
                            : withAuditor ? "the auditor follower shares the cores" : throughputCount < 60_000 ? "fewer than 60,000 attestations" : nil)
        targets.atMost("one validator down, p99", p3.p99 * 1000, 2_000, unit: "ms", unlessBecause: slow)
        try targets.finish()
    }

    func bodies(_ subs: ArraySlice<Submission>, per: Int) -> [Data] {
        stride(from: subs.startIndex, to: subs.endIndex, by: per).map { start in
            JSONView.data(["transactions": subs[start..<min(subs.endIndex, start + per)].map(LedgerClient.wire)])
        }
    }

    /// Offers `submissions` at `rate` in batches of 10 every 10 ms, round-robin over `members`; a watcher
    /// per node polls its height every 2 ms. Latency of a batch = when its block height is first seen
    /// on the last of `members`, minus when the batch was sent.
    func latency(_ net: LocalConsortium, members: [String], submissions: ArraySlice<Submission>) throws -> (p50: Double, p99: Double, max: Double) {
        let per = 10
        let requests = bodies(submissions, per: per)
        let interval = Double(per) / Double(rate)
        let heights = Heights()
        let clock = ContinuousClock()
        let stop = NSLock()
        nonisolated(unsafe) var stopped = false
        let watchers = DispatchGroup()
        for m in members {
            let url = URL(string: try net.address(m))!
            DispatchQueue.global().async(group: watchers) {
                guard let c = try? RawHTTPClient(host: url.host!, port: UInt16(url.port!)) else { return }
                while !stop.withLock({ stopped }) {
                    if let (status, body) = try? c.get("/v1/health"), status == 200,
                       let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                       let h = (json["height"] as? NSNumber)?.uint64Value {
                        heights.saw(m, h, at: clock.now)
                    }
                    Thread.sleep(forTimeInterval: 0.002)
                }
            }
        }
        let lock = NSLock()
        nonisolated(unsafe) var sent: [(ContinuousClock.Instant, UInt64)] = []
        nonisolated(unsafe) var failures = 0
        let senders = DispatchGroup()
        let start = clock.now
        // One sender per member, each offering its share of the rate.
        for (k, m) in members.enumerated() {
            let url = URL(string: try net.address(m))!
            DispatchQueue.global().async(group: senders) {
                guard let c = try? RawHTTPClient(host: url.host!, port: UInt16(url.port!)) else { return }
                var i = k
                while i < requests.count {
                    let due = start + .seconds(Double(i) * interval)
                    if clock.now < due { Thread.sleep(forTimeInterval: seconds(due - clock.now)) }
                    let t0 = clock.now
                    if let (status, body) = try? c.post("/v1/transactions/batch", body: requests[i]), status == 200,
                       let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                       let results = json["results"] as? [[String: Any]],
                       let h = results.compactMap({ ($0["height"] as? NSNumber)?.uint64Value }).max() {
                        lock.withLock { sent.append((t0, h)) }
                    } else {
                        lock.withLock { failures += 1 }
                    }
                    i += members.count
                }
            }
        }
        senders.wait()
        Thread.sleep(forTimeInterval: 2)
        stop.withLock { stopped = true }
        watchers.wait()
        guard failures == 0 else { throw ValidationError("\(failures) batches failed") }
        var latencies: [Double] = []
        for (t0, h) in sent {
            let times = members.compactMap { heights.time($0, atLeast: h) }
            guard times.count == members.count, let last = times.max() else { throw ValidationError("height \(h) never seen on every node") }
            latencies.append(max(0, seconds(last - t0)))
        }
        latencies.sort()
        return (percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.last ?? 0)
    }

    /// 8 connections send `batch`-sized requests as fast as they are answered; time until every
    /// validator's log holds them all.
    func throughput(_ net: LocalConsortium, members: [String], submissions: ArraySlice<Submission>) throws -> Double {
        let requests = bodies(submissions, per: batch)
        let health = try LedgerClient(baseURL: net.address(members[0])).getJSON("/v1/health")
        let target = ((health["log_size"] as? NSNumber)?.intValue ?? 0) + submissions.count
        let startHeight = (health["height"] as? NSNumber)?.intValue ?? 0
        let clock = ContinuousClock()
        let pids = members.compactMap { net.processes[$0]?.processIdentifier }
        let cpu = CPUAccount.sample(pids)
        let start = clock.now
        let failures = postBatches(requests, to: try members.map { URL(string: try net.address($0))! })
        guard failures.isEmpty else { throw ValidationError("\(failures.count) batches failed, first: \(failures[0])") }
        for m in members {
            let c = LedgerClient(baseURL: try net.address(m))
            while ((try? c.getJSON("/v1/health"))?["log_size"] as? NSNumber)?.intValue ?? 0 < target { Thread.sleep(forTimeInterval: 0.005) }
        }
        let elapsed = seconds(clock.now - start)
        print(CPUAccount.sample(pids).summary(since: cpu, items: submissions.count))
        let end = try LedgerClient(baseURL: net.address(members[0])).getJSON("/v1/health")
        let endHeight = (end["height"] as? NSNumber)?.intValue ?? 0
        let others = ((end["log_size"] as? NSNumber)?.intValue ?? 0) - target
        print("  \(endHeight - startHeight) blocks, \(submissions.count / max(1, endHeight - startHeight)) attestations per block on average; \(others) other transactions (score updates) committed meanwhile")
        if withScoring {
            try waitForEmptyMempools(net, members)
            let size = (try net.client(members[0]).getJSON("/v1/health")["log_size"] as? NSNumber)?.intValue ?? 0
            print(String(format: "  live scoring caught up %.1f s after the start of the phase (mempools empty for 1 s): %d score updates committed in all",
                         seconds(clock.now - start) - 1, size - target))
        }
        return elapsed
    }
}
