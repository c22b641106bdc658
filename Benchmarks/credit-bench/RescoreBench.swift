import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import Scoring

final class ResultBox<T>: @unchecked Sendable { var result: Result<T, any Error>? }

/// Runs an async body from synchronous benchmark code.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Re-scoring throughput (docs/BENCHMARKS.md): the evaluator alone, the rescorer reading a
/// RocksDB store, a model upgrade re-scoring every subject while the node engine keeps
/// ingesting, and committing the resulting endorsed score updates through full validation.
struct RescoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescore",
        abstract: "Write N demo subjects into a store, then time re-scoring them (one core) and a model upgrade beside ingestion.")
    @Option(help: "Subjects.") var subjects: Int = 100_000
    @Option(help: "Demo data seed.") var seed: UInt64 = 7
    @Option(help: "Attestations submitted per second by the ingestion load during the upgrade re-score (0: none).")
    var ingestRate: Int = 3_000
    @Option(help: "Score updates to endorse and commit through the ledger engine after the upgrade (0: none; default all).")
    var commit: Int = -1
    @Option(help: "Keep the store here (default: a temporary directory, removed).") var keep: String?
    @Flag(help: "End to end: a chain needing no score endorsements, whose ledger engine re-scores every subject by itself after the installs (as the dev node does); times install to the last update committed.")
    var auto = false
    @Option(help: "Directory of the shipped models.") var models: String = shippedModelsDirectory

    static let asOf = try! LedgerDate(iso: "2026-11-21")
    static let asOfMillis = UInt64(asOf.dayNumber) * 86_400_000 + 4 * 3_600_000

    func run() throws {
        let dir = keep ?? FileManager.default.temporaryDirectory.appendingPathComponent("bench-rescore-\(UUID())").path
        defer { if keep == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let clock = ContinuousClock()
        let targets = Targets()
        let small = subjects < 100_000 ? "fewer than 100,000 subjects" : nil
        let upgradeCondition = small ?? (ingestRate < 3_000 ? "ingestion offered under 3,000/s" : nil)
        let modelDir = models
        func document(_ name: String) throws -> [UInt8] {
            guard let d = FileManager.default.contents(atPath: "\(modelDir)/\(name).json") else { throw ValidationError("cannot read \(modelDir)/\(name).json") }
            return Array(d)
        }
        // One validator holding every writing role (as the dev ledger), plus a second scorer to endorse.
        let node = MemberSecretKeys(memberID: "bench", signing: try Ed25519PrivateKey(seed: SHA256.hash(Array("bench".utf8))),
                                    encryption: try X25519PrivateKey(rawRepresentation: SHA256.hash(Array("bench-x".utf8))))
        let second = MemberSecretKeys(memberID: "bench-scorer", signing: try Ed25519PrivateKey(seed: SHA256.hash(Array("scorer".utf8))),
                                      encryption: try X25519PrivateKey(rawRepresentation: SHA256.hash(Array("scorer-x".utf8))))
        let members = [Member(id: "bench", name: "bench", roles: [.validator, .custodian, .governmentIssuer, .bank, .scorer],
                              signingKey: node.signing.publicKey, encryptionKey: node.encryption.publicKey),
                       Member(id: "bench-scorer", name: "second scorer", roles: [.scorer],
                              signingKey: second.signing.publicKey, encryptionKey: second.encryption.publicKey)]
        let shipped = try shippedModelNames.map { name -> InstalledModel in
            let m = try ScoringModel(document: try document(name))
            return InstalledModel(name: m.name, version: m.version, document: m.document, logIndex: nil)
        }
        var limits = Limits()
        limits.maxMempoolTransactions = 1_000_000
        let genesis = try Genesis(bytes: Genesis.render(chainID: "creditledger.bench/rescore", genesisTime: "2026-11-21T00:00:00Z",
                                                        members: members, limits: limits, scoreEndorsementsRequired: auto ? 0 : 1, models: shipped))
        let store = try ChainStore.create(path: dir, genesis: genesis)
        let member = genesis.member("bench")!

        // 1. Demo data into the store (not timed as re-scoring).
        let t0 = clock.now
        let demo = DemoSubjects(count: subjects, seed: seed, asOf: Self.asOf)
        var nonce: UInt64 = 0
        var pending: [AttestationBody] = []
        func flush() throws {
            let bodies = pending
            pending = []
            let base = nonce
            nonce += UInt64(bodies.count)
            nonisolated(unsafe) var out = [Submission?](repeating: nil, count: bodies.count)
            out.withUnsafeMutableBufferPointer { buffer in
                nonisolated(unsafe) let b = buffer
                DispatchQueue.concurrentPerform(iterations: 8) { part in
                    for i in stride(from: part, to: bodies.count, by: 8) {
                        let header = TransactionHeader(chainID: genesis.chainID, signer: "bench", keyID: member.keyID,
                                                       nonce: base + UInt64(i) + 1, issuedAtMillis: Self.asOfMillis)
                        b[i] = Submission(transaction: Transaction.sign(header: header, body: .attestation(bodies[i]), key: node.signing), envelope: nil)
                    }
                }
            }
            try store.appendBlock(out.map { $0! }, timestampMillis: Self.asOfMillis, proposer: "bench", signers: [(member, node.signing)])
        }
        for records in demo.records {
            for r in records { pending.append(try r.body(payloadCommitment: SHA256.hash(Array(r.payload["record_no", default: ""].utf8)))) }
            if pending.count >= 5_000 { try flush() }
        }
        if !pending.isEmpty { try flush() }
        let kinds = Dictionary(grouping: demo.subjects, by: \.subject_kind).mapValues(\.count)
        print(String(format: "store: %d subjects (%d individual businesses, %d enterprises), %d records in %d blocks, written in %.1f s",
                     subjects, kinds["individual_business"] ?? 0, kinds["enterprise"] ?? 0, store.head.logSize, store.head.height, seconds(clock.now - t0)))

        let engine = ScoreEngine(genesis: genesis)
        let individual = try engine.model(shipped[0]), enterprise = try engine.model(shipped[1]), risk = try engine.model(shipped[2])
        let asOf = ScoreAsOf(logSize: store.head.logSize, date: Self.asOf)

        // 2. The evaluator alone, one core: inputs decoded in chunks, only scoring is timed.
        var evaluated = 0
        var evalSeconds = 0.0
        var chunk: [(USCC, [Transaction])] = []
        func evaluateChunk() throws {
            let t = clock.now
            for (subject, inputs) in chunk {
                let model = subject.subjectKind == .enterprise ? enterprise : individual
                _ = try engine.score(subject: subject, inputs: inputs, model: model, asOf: asOf)
                _ = try engine.score(subject: subject, inputs: inputs, model: risk, asOf: asOf)
            }
            evalSeconds += seconds(clock.now - t)
            evaluated += chunk.count
            chunk.removeAll(keepingCapacity: true)
        }
        try store.forEachSubject(recordsBefore: asOf.logSize) { subject, indexes in
            chunk.append((subject, try indexes.map { try store.transaction(at: $0)! }))
            if chunk.count >= 10_000 { try evaluateChunk() }
            return true
        }
        try evaluateChunk()
        print(String(format: "evaluator, one core: %d subjects × 2 models (scorecard + risk) in %.2f s = %.0f subjects/s (%.0f evaluations/s)",
                     evaluated, evalSeconds, Double(evaluated) / evalSeconds, Double(2 * evaluated) / evalSeconds))
        targets.atLeast("evaluator, one core", Double(evaluated) / evalSeconds, 20_000, unit: "subjects/s", unlessBecause: small)

        // 3. The rescorer over the store, one core: read index, read and decode inputs, score.
        var rescored = 0
        let t3 = clock.now
        for model in [individual, enterprise] {
            let s = try Rescorer(store: store, engine: engine, model: model, batchSize: 1000).run { batch, _ in rescored += batch.count }
            guard s.progress.failed == 0 else { throw ValidationError("rescore failed: \(s.failures)") }
        }
        let rescoreSeconds = seconds(clock.now - t3)
        print(String(format: "rescorer from RocksDB, one core: %d subjects (both scorecards) in %.2f s = %.0f subjects/s",
                     rescored, rescoreSeconds, Double(rescored) / rescoreSeconds))
        targets.atLeast("rescorer from RocksDB, one core", Double(rescored) / rescoreSeconds, 20_000, unit: "subjects/s", unlessBecause: small)

        // 3b. Where the rescorer's time goes: the subject index with its scoring entries (what the
        // rescorer reads), against reading and decoding the transactions (what it did before).
        var parsed = 0
        var t = clock.now
        try store.forEachSubjectScoreRecords(before: asOf.logSize) { _, records in parsed += records.count; return true }
        let parseSeconds = seconds(clock.now - t)
        print(String(format: "  subject index with scoring entries: %d records of %d subjects in %.2f s (%.2f µs per record), no transaction reads",
                     parsed, subjects, parseSeconds, parseSeconds / Double(max(parsed, 1)) * 1e6))
        var scanned = 0, read = 0
        t = clock.now
        try store.forEachSubject(recordsBefore: asOf.logSize) { _, indexes in scanned += indexes.count; return true }
        let scanSeconds = seconds(clock.now - t)
        t = clock.now
        var raws: [[UInt8]] = []
        try store.forEachSubject(recordsBefore: asOf.logSize) { _, indexes in
            for i in indexes { if let r = try store.rawTransaction(at: i) { read += r.count; if raws.count < 200_000 { raws.append(r) } } }
            return true
        }
        let readSeconds = seconds(clock.now - t)
        t = clock.now
        for r in raws { _ = try Transaction.decode(r, maxBytes: Int.max) }
        let decodeMicros = seconds(clock.now - t) / Double(raws.count) * 1e6
        print(String(format: "  instead reading transactions: subject index scan %.2f s; + %d point reads (%.0f MB) %.2f s; decode %.1f µs per record (×%d = %.2f s)",
                     scanSeconds, scanned, Double(read) / 1e6, readSeconds, decodeMicros, scanned, decodeMicros * Double(scanned) / 1e6))

        // 4. Model upgrade beside ingestion, through the node's ledger engine (validation, blocks, synced writes).
        let stateDir = dir + "-state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let ledger = try Ledger(store: store, validatorKeys: node, clock: { Self.asOfMillis }, blockInterval: .milliseconds(200),
                                rescoreStateDirectory: auto ? stateDir : nil)
        let producer = Task { await ledger.runBlockProducer() }
        defer { producer.cancel() }
        func sign(_ body: TransactionBody) -> Submission {
            nonce += 1
            let header = TransactionHeader(chainID: genesis.chainID, signer: "bench", keyID: member.keyID, nonce: nonce, issuedAtMillis: Self.asOfMillis)
            return Submission(transaction: Transaction.sign(header: header, body: body, key: node.signing), envelope: nil)
        }
        // Ingestion load: pre-built attestations with sealed payloads, submitted in batches of 200 at `ingestRate`.
        let load = DemoSubjects(count: max(1, ingestRate * 30 / 8), seed: seed &+ 1, asOf: Self.asOf)
        var loadSubmissions: [Submission] = []
        for r in load.records.joined() {
            let request = r.request
            loadSubmissions.append(try request.build(genesis: genesis, keys: node, nonce: 10_000_000 + UInt64(loadSubmissions.count), issuedAtMillis: Self.asOfMillis))
        }
        let ingest = loadSubmissions
        final class Flag: @unchecked Sendable { let lock = NSLock(); var stop = false; var committed = 0; var error: String? }
        let flag = Flag()
        let rate = ingestRate
        let ingestTask = Task.detached {
            guard rate > 0 else { return }
            // Batches of 200 at `rate`, each submitted without waiting for the previous to commit
            // (as several clients would), at most 16 in flight.
            let perBatch = 200
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                var i = 0, inFlight = 0
                while !flag.stop, i + perBatch <= ingest.count {
                    let due = started + .milliseconds(Int64(i) * 1000 / Int64(rate))
                    if ContinuousClock.now < due { try? await Task.sleep(until: due, clock: .continuous) }
                    if inFlight >= 16 { await group.next(); inFlight -= 1 }
                    let batch = Array(ingest[i..<i + perBatch])
                    group.addTask {
                        do { let n = try await ledger.submit(batch).count; flag.lock.withLock { flag.committed += n } }
                        catch { flag.lock.withLock { flag.error = "\(error)" } }
                    }
                    inFlight += 1
                    i += perBatch
                }
            }
        }
        // Ingestion runs for a second, then both new versions are installed.
        Thread.sleep(forTimeInterval: 1)
        let committedBeforeInstall = flag.lock.withLock { flag.committed }
        let sizeBeforeInstall = store.head.logSize
        let t4 = clock.now
        var upgraded: [ScoringModel] = []
        for (name, v1) in [("individual-business", individual), ("enterprise", enterprise)] {
            let text = String(decoding: v1.document, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            var g = GovernanceBody(action: .installModel, name: name, version: 2, document: Array(text.utf8))
            g.approvals = [MemberSignature(member: "bench", keyID: member.keyID, signature: node.signing.signature(for: g.approvalMessage(chainID: genesis.chainID)))]
            let install = sign(.governance(g))
            _ = try blocking { try await ledger.submit([install]) }
            upgraded.append(try engine.model(store.model(hash: SHA256.hash(Array(text.utf8)))!))
        }
        let installSeconds = seconds(clock.now - t4)
        print(String(format: "installed individual-business v2 and enterprise v2 by governance (%.2f s)", installSeconds))
        let startSize = store.head.logSize
        if auto {
            // The ledger engine re-scores by itself (UpgradeRescorer): wait for both jobs to finish.
            var lastLine = clock.now
            var status: [String: any Sendable] = [:]
            while true {
                status = ledger.rescoreStatus ?? [:]
                if status["model"] as? String == "enterprise v2", let state = status["state"] as? String, state != "running", state != "listing" { break }
                if clock.now - lastLine > .seconds(2) {
                    lastLine = clock.now
                    print("  … \(status["model"] ?? "-"): \(status["done"] ?? 0)/\(status["total"] ?? 0) committed, \(status["in_flight"] ?? 0) in flight")
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
            let total = seconds(clock.now - t4)
            let committedDuring = flag.lock.withLock { flag.committed } - committedBeforeInstall
            let sizeAtEnd = store.head.logSize
            flag.stop = true
            _ = try blocking { await ingestTask.value }
            if let e = flag.error { throw ValidationError("ingestion failed: \(e)") }
            // Everything committed meanwhile is the two installs, attestations and the score updates.
            let updates = Int(sizeAtEnd - sizeBeforeInstall) - 2 - committedDuring
            print(String(format: "automatic re-score: %d score updates under v2 committed (each validated: recomputed) %.2f s after the first install was submitted = %.0f subjects/s, while the ledger engine committed %d attestations (%.0f/s, target %d/s)",
                         updates, total, Double(updates) / total, committedDuring, Double(committedDuring) / total, ingestRate))
            print("  last job: \(status["model"] ?? "-") \(status["state"] ?? "-"), \(status["done"] ?? 0)/\(status["total"] ?? 0), \(status["failed"] ?? 0) failed")
            print(machineAfterRun())
            let finished = status["state"] as? String == "finished" && (status["failed"] as? Int ?? 0) == 0
            targets.holds("automatic re-score finished", finished,
                          "last job \(status["state"] ?? "-"), \(status["failed"] ?? 0) failed", unlessBecause: upgradeCondition)
            targets.atMost("model upgrade end to end", total, 30, unit: "s", strictly: true,
                           unlessBecause: upgradeCondition ?? (finished ? nil : "the re-score did not finish"))
            try targets.finish()
            return
        }
        let t4b = clock.now
        var upgradeUpdates: [ScoreUpdateBody] = []
        var lastLine = clock.now
        for model in upgraded {
            let s = try Rescorer(store: store, engine: engine, model: model, batchSize: 1000).run(asOfLogSize: startSize, progress: { p in
                if clock.now - lastLine > .seconds(2) {
                    lastLine = clock.now
                    print(String(format: "  … %@ v2: %d/%d subjects, %.0f/s", model.name, p.subjectsDone, p.subjectsTotal, p.subjectsPerSecond))
                }
            }) { batch, _ in upgradeUpdates += batch }
            guard s.progress.failed == 0 else { throw ValidationError("upgrade rescore failed: \(s.failures)") }
        }
        let upgradeSeconds = seconds(clock.now - t4b)
        let committedDuring = flag.lock.withLock { flag.committed } - committedBeforeInstall
        flag.stop = true
        _ = try blocking { await ingestTask.value }
        if let e = flag.error { throw ValidationError("ingestion failed: \(e)") }
        _ = t4
        print(String(format: "model upgrade: %d subjects re-scored under v2 in %.2f s (%.0f subjects/s) while the ledger engine committed %d attestations (%.0f/s, target %d/s)",
                     upgradeUpdates.count, upgradeSeconds, Double(upgradeUpdates.count) / upgradeSeconds, committedDuring,
                     Double(committedDuring) / upgradeSeconds, ingestRate))
        targets.atMost("model upgrade, scores computed", upgradeSeconds, 30, unit: "s", strictly: true, unlessBecause: upgradeCondition)

        // 5. Endorse (the second scorer recomputes) and commit the updates through full validation.
        let n = commit < 0 ? upgradeUpdates.count : min(commit, upgradeUpdates.count)
        guard n > 0 else { try targets.finish(); return }
        let t5 = clock.now
        var committed = 0
        var endorseSeconds = 0.0
        let scorerEngine = ScoreEngine(genesis: genesis)
        for start in stride(from: 0, to: n, by: 2_000) {
            let te = clock.now
            var batch: [Submission] = []
            for u in upgradeUpdates[start..<min(n, start + 2_000)] {
                let inputs = try store.subjectRecords(u.subject, before: u.asOfLogSize, limit: FieldLimits.scoreInputs).map(\.transaction)
                let model = try scorerEngine.model(store.model(hash: u.modelHash)!)
                var e = u
                e.endorsements = [try scorerEngine.endorse(update: u, recomputedFrom: inputs, model: model,
                                                           asOf: ScoreAsOf(logSize: u.asOfLogSize, date: Self.asOf), keys: second)]
                batch.append(sign(.scoreUpdate(e)))
            }
            endorseSeconds += seconds(clock.now - te)
            let b = batch
            committed += try blocking { try await ledger.submit(b) }.count
        }
        let commitSeconds = seconds(clock.now - t5)
        print(String(format: "score updates: %d endorsed (second scorer recomputes) in %.2f s and committed through full validation (recomputed again) in %.2f s total = %.0f updates/s end to end",
                     committed, endorseSeconds, commitSeconds, Double(committed) / commitSeconds))
        print(machineAfterRun())
        try targets.finish()
    }
}
