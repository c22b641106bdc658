import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore

/// The shipped scoring models (Genesis/models), by file name without `.json`.
let shippedModelNames = ["individual-business", "enterprise", "risk-warning"]
/// Genesis/models of this checkout.
let shippedModelsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Genesis/models").path

/// Live scoring runs behind the load: waits until the mempool of every one of `members` has
/// been empty for a second.
func waitForEmptyMempools(_ net: LocalConsortium, _ members: [String]) throws {
    var quiet = 0
    while quiet < 4 {
        let busy = try members.contains { (try net.client($0).getJSON("/v1/status")["mempool"] as? Int ?? 0) > 0 }
        quiet = busy ? 0 : quiet + 1
        Thread.sleep(forTimeInterval: 0.25)
    }
}

/// Benchmarks for the figures in docs/BENCHMARKS.md. Build with `-c release`.
@main
struct CreditBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credit-bench",
        abstract: "CreditLedger benchmarks (run the release build).",
        discussion: """
        Examples:
          swift build -c release && .build/release/credit-bench ingest --count 60000
          .build/release/credit-bench proofs --entries 1000000 --samples 20000
          .build/release/credit-bench signatures
          .build/release/credit-bench verify --transactions 1000000
          .build/release/credit-bench network --rate 1000 --seconds 15
          .build/release/credit-bench rescore --subjects 100000
          .build/release/credit-bench rescore --subjects 100000 --auto
          .build/release/credit-bench network-upgrade --subjects 10000
          .build/release/credit-bench query --subjects 100000 --attestations 1000000 --rate 1000 --seconds 30
        """,
        subcommands: [Ingest.self, NetworkBench.self, Proofs.self, Signatures.self, VerifyChain.self, RescoreBench.self, NetworkUpgradeBench.self,
                      QueryBench.self])
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Runs `body(0..<count)` on `count` dedicated threads and waits for all of them. Client loops
/// that block on sockets need this: `DispatchQueue.concurrentPerform` runs only as many
/// iterations at once as there are cores, so 16 "connections" on 2 cores would be 2.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for k in 0..<count {
        group.enter()
        let t = Thread { body(k); group.leave() }
        t.stackSize = 1 << 20
        t.start()
    }
    group.wait()
}

/// Sends every body to `POST /v1/transactions/batch` as fast as they are answered, over
/// `connections` keep-alive connections on their own threads, connection k to
/// `addresses[k % addresses.count]`. Returns what failed (empty when all were accepted).
func postBatches(_ requests: [Data], to addresses: [URL], connections: Int = 8) -> [String] {
    let lock = NSLock()
    nonisolated(unsafe) var next = 0
    nonisolated(unsafe) var failures: [String] = []
    onThreads(connections) { k in
        let url = addresses[k % addresses.count]
        // A connection that cannot connect leaves its share to the others.
        guard let c = try? RawHTTPClient(host: url.host!, port: UInt16(url.port!)) else { return }
        while true {
            let i: Int = lock.withLock { defer { next += 1 }; return next }
            guard i < requests.count else { return }
            do {
                let (status, body) = try c.post("/v1/transactions/batch", body: requests[i])
                if status != 200 { lock.withLock { failures.append("HTTP \(status) \(String(decoding: body.prefix(200), as: UTF8.self))") } }
            } catch { lock.withLock { failures.append("\(error)") } }
        }
    }
    return failures
}

func machine() -> String {
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
        .split(separator: "\n").first { $0.hasPrefix("model name") }?
        .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
    return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)"
}

/// Signed attestations committed per second on a real `credit-node dev` process over HTTP.
struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a dev node, submit pre-signed attestations over HTTP, report committed per second.")
    @Option(help: "Attestations to submit.") var count: Int = 60_000
    @Option(help: "Concurrent client connections.") var clients: Int = 8
    @Option(help: "Attestations per batch request.") var batch: Int = 1000
    @Option(help: "Block interval of the node, milliseconds.") var blockIntervalMs: Int = 200
    @Option(help: "credit-node binary (default: next to this one).") var node: String?

    func run() throws {
        let binary = node ?? BuiltTools.path("credit-node") ?? "credit-node"
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-ingest-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--block-interval-ms", "\(blockIntervalMs)", "--log-level", "warning"]
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        var address = ""
        for _ in 0..<600 {
            if let a = try? String(contentsOfFile: dataDir + "/http.addr", encoding: .utf8), a.hasSuffix("\n") { address = a.trimmingCharacters(in: .whitespacesAndNewlines); break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        guard !address.isEmpty else { throw ValidationError("node did not start") }
        let client = LedgerClient(baseURL: address, timeout: 120)
        let genesis = try client.genesis()
        let keys = try MemberSecretKeys.load(from: dataDir + "/keys/dev.key")

        print("preparing \(count) signed, encrypted attestations…")
        let requests = DemoRecords.requests(count: count, subjects: max(1, count / 10), seed: 7)
        var bodies: [Data] = []
        var nonce: UInt64 = 0
        for start in stride(from: 0, to: count, by: batch) {
            let subs = try requests[start..<min(count, start + batch)].map { r -> Submission in
                nonce += 1
                return try r.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
            }
            bodies.append(JSONView.data(["transactions": subs.map(LedgerClient.wire)]))
        }
        let requestBodies = bodies
        print("submitting with \(clients) clients, \(batch) per request, block interval \(blockIntervalMs) ms…")
        let lock = NSLock()
        nonisolated(unsafe) var next = 0
        nonisolated(unsafe) var latencies: [Double] = []
        nonisolated(unsafe) var failures: [String] = []
        let clock = ContinuousClock()
        let started = clock.now
        let url = URL(string: address)!
        let host = url.host ?? "127.0.0.1", port = UInt16(url.port ?? 8480)
        onThreads(clients) { _ in
            guard let connection = try? RawHTTPClient(host: host, port: port) else {
                lock.withLock { failures.append("cannot connect to \(host):\(port)") }
                return
            }
            while true {
                let i: Int = lock.withLock { defer { next += 1 }; return next }
                guard i < requestBodies.count else { return }
                let t0 = clock.now
                do {
                    let (status, data) = try connection.post("/v1/transactions/batch", body: requestBodies[i])
                    if status != 200 { lock.withLock { failures.append("HTTP \(status) \(String(decoding: data.prefix(200), as: UTF8.self))") } }
                } catch { lock.withLock { failures.append("\(error)") } }
                let dt = seconds(clock.now - t0)
                lock.withLock { latencies.append(dt) }
            }
        }
        let elapsed = seconds(clock.now - started)
        guard failures.isEmpty else { throw ValidationError("\(failures.count) batches failed, first: \(failures[0])") }
        let health = try client.getJSON("/v1/health")
        let committed = (health["log_size"] as? NSNumber)?.intValue ?? 0
        guard committed == count else { throw ValidationError("node reports \(committed) committed, expected \(count)") }
        latencies.sort()
        print(String(format: "ingest: %d attestations committed in %.2f s = %.0f per second (%@)", count, elapsed, Double(count) / elapsed, machine()))
        print(String(format: "batch of %d, submit → committed: p50 %.0f ms, p99 %.0f ms; %d blocks",
                     batch, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, (health["height"] as? NSNumber)?.intValue ?? 0))
        print(machineAfterRun())
        let targets = Targets()
        targets.atLeast("dev-node ingest", Double(count) / elapsed, 8_000, unit: "attestations/s",
                        unlessBecause: count < 60_000 ? "fewer than 60,000 attestations" : nil)
        try targets.finish()
    }
}

/// Inclusion proofs from a RocksDB log of N entries.
struct Proofs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Build an N-entry log in RocksDB, time inclusion proofs for random entries.")
    @Option(help: "Log entries.") var entries: Int = 1_000_000
    @Option(help: "Proofs to time.") var samples: Int = 20_000

    func run() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-proofs-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try Database(path: dir, columnFamilies: ["tree"])
        let tree = MerkleNodeStore(database: db)
        var frontier = MerkleFrontier()
        let clock = ContinuousClock()
        let buildStart = clock.now
        var leaves: [Hash] = []
        leaves.reserveCapacity(entries)
        var batch = WriteBatch(for: db)
        for i in 0..<entries {
            var w = ByteWriter(capacity: 16)
            w.u64(UInt64(i)); w.u64(0xC0FFEE)
            let leaf = Merkle.leafHash(w.bytes)
            leaves.append(leaf)
            try tree.put(frontier.append(leafHash: leaf), into: batch)
            if batch.count >= 100_000 { try db.write(batch, sync: false); batch = WriteBatch(for: db) }
        }
        try db.write(batch, sync: true)
        let root = frontier.root
        print(String(format: "built a %d-entry log in %.1f s", entries, seconds(clock.now - buildStart)))

        var rng = DemoRecords.Generator(seed: 1)
        var times: [Double] = []
        times.reserveCapacity(samples)
        let size = UInt64(entries)
        for s in 0..<samples {
            let index = rng.next() % size
            let t0 = clock.now
            let proof = try Merkle.inclusionProof(tree, index: index, size: size)
            times.append(seconds(clock.now - t0))
            if s % 100 == 0 {
                guard Merkle.verifyInclusion(leafHash: leaves[Int(index)], index: index, size: size, proof: proof, root: root) else {
                    throw ValidationError("proof for \(index) does not verify")
                }
            }
        }
        times.sort()
        print(String(format: "inclusion proof, %d-entry log, %d random entries: p50 %.1f µs, p99 %.1f µs, max %.1f µs (%@)",
                     entries, samples, percentile(times, 0.5) * 1e6, percentile(times, 0.99) * 1e6, (times.last ?? 0) * 1e6, machine()))
        let targets = Targets()
        targets.atMost("inclusion proof p99", percentile(times, 0.99) * 1e6, 1_000, unit: "µs", strictly: true,
                       unlessBecause: entries < 1_000_000 ? "a log of fewer than 1,000,000 entries" : nil)
        try targets.finish()
    }
}

/// libsodium Ed25519 verification rate on one core: the bound on ingest.
struct Signatures: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ed25519 verifications per second on one core (libsodium).")
    @Option var count: Int = 50_000
    func run() throws {
        print(String(format: "ed25519 verify: %.0f per second on one core (%@)", try Self.rate(count: count), machine()))
    }

    /// Verifications per second on one core. The other benchmarks print it too: on a shared VM
    /// it says how fast the machine was at the time of a run.
    static func rate(count: Int) throws -> Double {
        let key = Ed25519PrivateKey()
        let messages = (0..<1000).map { Array("attestation \($0) with some bytes of body".utf8) }
        let signatures = messages.map { key.signature(for: $0) }
        let clock = ContinuousClock()
        let t0 = clock.now
        var ok = 0
        for i in 0..<count where key.publicKey.isValidSignature(signatures[i % 1000], for: messages[i % 1000]) { ok += 1 }
        let dt = seconds(clock.now - t0)
        guard ok == count else { throw ValidationError("verification failed") }
        return Double(count) / dt
    }
}

/// The machine line of a benchmark's output, with the machine's speed at the end of the run.
func machineAfterRun() -> String {
    let rate = (try? Signatures.rate(count: 20_000)).map { String(format: "; Ed25519 verify %.0f/s on one core after the run", $0) } ?? ""
    return "machine: \(machine())\(rate)"
}

/// `credit-verify chain` on an N-transaction chain: time and peak memory of the verifier process.
struct VerifyChain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Write an N-transaction chain (4 validators), then time `credit-verify chain` on it and read its peak memory.")
    @Option(help: "Transactions in the chain.") var transactions: Int = 1_000_000
    @Option(help: "Transactions per block.") var perBlock: Int = 5_000
    @Option(help: "credit-verify binary (default: next to this one).") var verifier: String?
    @Option(help: "Write the chain here and keep it (default: a temporary directory, removed).") var keep: String?

    func run() throws {
        let binary = verifier ?? BuiltTools.path("credit-verify") ?? "credit-verify"
        let dir = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("bench-verify-\(UUID())").path
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let ids = ["samr", "data", "bank-a", "bank-b"]
        let keys = ids.map { MemberSecretKeys(memberID: $0) }
        let roles: [Set<Role>] = [[.validator, .custodian, .governmentIssuer, .scorer], [.validator, .custodian, .governmentIssuer, .scorer],
                                  [.validator, .bank], [.validator, .bank]]
        let members = zip(keys, roles).map { Member(id: $0.memberID, name: $0.memberID, roles: $1, signingKey: $0.signing.publicKey,
                                                     encryptionKey: $0.encryption.publicKey) }
        let genesis = try Genesis(bytes: Genesis.render(chainID: "creditledger.bench/verify", genesisTime: "2026-11-21T00:00:00Z", members: members))
        let store = try ChainStore.create(path: dir, genesis: genesis)
        let signers = (0..<3).map { (member: members[$0], key: keys[$0].signing) }
        let clock = ContinuousClock()
        let t0 = clock.now
        var written = 0
        let subject = try USCC("91350100M000100Y43")
        while written < transactions {
            let n = min(perBlock, transactions - written)
            let base = written
            nonisolated(unsafe) var block = [Submission?](repeating: nil, count: n)
            block.withUnsafeMutableBufferPointer { buffer in
                nonisolated(unsafe) let out = buffer
                DispatchQueue.concurrentPerform(iterations: 8) { part in
                    for i in stride(from: part, to: n, by: 8) {
                        let bank = 2 + (base + i) % 2
                        let body = ConsentBody(action: .grant, subject: subject, grantee: members[bank].id, purpose: .loanApplication,
                                               expiresAt: 1_800_000_000, evidence: SHA256.hash(Array("form \(base + i)".utf8)))
                        // Signed within ten years of the expiry, the longest a grant may run.
                        let header = TransactionHeader(chainID: genesis.chainID, signer: members[bank].id, keyID: members[bank].keyID,
                                                       nonce: UInt64(base + i), issuedAtMillis: 1_795_000_000_000)
                        out[i] = Submission(transaction: Transaction.sign(header: header, body: .consent(body), key: keys[bank].signing), envelope: nil)
                    }
                }
            }
            try store.appendBlock(block.map { $0! }, timestampMillis: UInt64(written), proposer: "samr", signers: signers)
            written += n
        }
        print(String(format: "wrote %d transactions in %d blocks in %.1f s", transactions, store.head.height, seconds(clock.now - t0)))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["chain", "--data-dir", dir, "--json"]
        let pipe = Pipe()
        process.standardOutput = pipe
        let t1 = clock.now
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let elapsed = seconds(clock.now - t1)
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        guard process.terminationStatus == 0 else {
            throw ValidationError("credit-verify failed: \(String(decoding: output, as: UTF8.self))")
        }
        print(String(format: "credit-verify chain: %d transactions in %.1f s = %.0f tx/s (%.0f per core), peak RSS %.0f MB (%@)",
                     transactions, elapsed, Double(transactions) / elapsed,
                     Double(transactions) / elapsed / Double(ProcessInfo.processInfo.activeProcessorCount),
                     Double(usage.ru_maxrss) / 1024, machine()))
        let targets = Targets()
        let small = transactions < 1_000_000 ? "a chain of fewer than 1,000,000 transactions" : nil
        let perCore = Double(transactions) / elapsed / Double(ProcessInfo.processInfo.activeProcessorCount)
        targets.atMost("credit-verify chain time", elapsed, 90, unit: "s", strictly: true, unlessBecause: small)
        targets.atLeast("credit-verify chain per core", perCore, 8_000, unit: "tx/s", unlessBecause: small)
        targets.atMost("credit-verify chain peak memory", Double(usage.ru_maxrss) / 1024, 200, unit: "MB", strictly: true, unlessBecause: small)
        try targets.finish()
    }
}

/// CPU time spent by the nodes, by this process and by the machine between two points, from
/// /proc (Linux): where a throughput figure's time went.
struct CPUAccount {
    let nodeTicks: [Int32: Int]
    let ownTicks: Int
    let machineBusy: Int
    let machineTotal: Int

    static func sample(_ pids: [Int32]) -> CPUAccount {
        var ticks: [Int32: Int] = [:]
        for pid in pids {
            // After the parenthesised command name, utime and stime are the 12th and 13th fields.
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = text.lastIndex(of: ")") else { continue }
            let f = text[text.index(after: close)...].split(separator: " ")
            if f.count > 12, let u = Int(f[11]), let s = Int(f[12]) { ticks[pid] = u + s }
        }
        var t = tms()
        _ = times(&t)
        var busy = 0, total = 0
        if let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) {
            let v = line.split(separator: " ").dropFirst().prefix(8).compactMap { Int($0) }
            total = v.reduce(0, +)
            busy = total - (v.count > 4 ? v[3] + v[4] : 0)   // less idle and iowait
        }
        return CPUAccount(nodeTicks: ticks, ownTicks: Int(t.tms_utime + t.tms_stime), machineBusy: busy, machineTotal: total)
    }

    /// One line: the nodes' CPU seconds (and per item: attestation, query), the load generator's,
    /// and how much of the machine stayed idle.
    func summary(since start: CPUAccount, items: Int, per unit: String = "attestation") -> String {
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let nodes = Double(nodeTicks.reduce(0) { $0 + $1.value - (start.nodeTicks[$1.key] ?? $1.value) }) / hz
        let total = machineTotal - start.machineTotal
        let idle = total > 0 ? 100 * Double(total - (machineBusy - start.machineBusy)) / Double(total) : 0
        return String(format: "  CPU: nodes %.1f s (%.0f µs per %@), load generator %.1f s, machine idle %.0f %%",
                      nodes, nodes * 1e6 / Double(max(1, items)), unit, Double(ownTicks - start.ownTicks) / hz, idle)
    }
}
