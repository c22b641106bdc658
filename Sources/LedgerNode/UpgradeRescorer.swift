import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import Logging
import Scoring

/// Re-scoring after a model upgrade on a scorer node (docs/SCORING.md §8.1). When a block commits
/// an `install_model` governance transaction, every scorer re-scores, on its own thread, the
/// subjects it is the designated scorer for and that the new model covers, as of the log size of
/// the block holding the install (the same as-of point on every node, so endorsers and validators
/// recompute the same thing). Updates go through the live-scoring endorsement flow of
/// `AutoScorer`; at most `maxInFlight` are pending endorsement or commit at a time, and none is
/// made while the mempool is more than half full, so ingestion keeps its room.
///
/// A subject counts as done once a score update under the new model, signed by this node, with
/// log index at or after the install, is committed (a later live score under the model counts
/// too). Unconfirmed subjects (an endorsement that expired, a refused submission) are tried again
/// in further passes. A job that ends with subjects still unconfirmed (`incomplete`, say while
/// too few endorsers are up) runs again later, after 1 minute, then 2, 4 … up to 30 minutes
/// between attempts, until it finishes or a newer version supersedes it. On restart the node looks at every model installed by governance that is
/// the latest version of its name and is not listed in `rescore-done` (in the consensus
/// directory): it starts that job again and skips subjects already done, so an interrupted
/// re-score resumes where its committed updates end. Old score updates are never touched.
///
/// It runs in a consortium scorer (`AutoScorer`) and in the dev ledger (`Ledger`, when no
/// endorsement is required), which provide a `RescoreHost`.
final class UpgradeRescorer: @unchecked Sendable {
    struct Job: Sendable {
        let installed: InstalledModel
        let model: ScoringModel
        /// The log size of the block that committed the install: the as-of point of every update.
        let asOfLogSize: UInt64
        /// 1 for the first run; one more for each run after an incomplete one.
        var attempt = 1
        /// An attempt after an incomplete one waits until then.
        var notBefore: ContinuousClock.Instant?
    }

    /// What GET /v1/status shows.
    struct Snapshot: Sendable {
        var model: String
        var hash: Hash
        var asOfLogSize: UInt64
        var state: String   // "listing", "running", "finished", "superseded", "incomplete", "failed"
        var attempt = 1
        /// When the next attempt of an incomplete job starts.
        var retryAt: ContinuousClock.Instant?
        var done = 0
        var total = 0
        var failed = 0
        var pass = 1
        var inFlight = 0
        var seconds = 0.0
        var rate: Int { seconds > 0 ? Int(Double(done) / seconds) : 0 }

        var json: [String: any Sendable] {
            var j: [String: any Sendable] = ["model": model, "model_hash": hash.hexString, "as_of_log_size": asOfLogSize, "state": state,
                                             "attempt": attempt, "done": done, "total": total, "failed": failed, "pass": pass,
                                             "in_flight": inFlight, "subjects_per_second": rate]
            if let retryAt { j["next_attempt_in_seconds"] = max(0, Int((retryAt - ContinuousClock.now).inSeconds.rounded(.up))) }
            return j
        }
    }

    /// Score updates pending endorsement or commit, at most.
    static let maxInFlight = 2_000
    /// An update not committed within this long is given up and retried in the next pass.
    static let inFlightTimeout: Duration = .seconds(40)
    static let maxPasses = 5
    /// The wait before attempt `n + 1` of a job whose attempt `n` ended incomplete: 1 minute,
    /// doubling, at most 30.
    static func retryDelay(afterAttempt n: Int) -> Duration { .seconds(min(60 << min(max(n, 1) - 1, 5), 1_800)) }
    static let maxQueuedJobs = 16
    static let progressInterval: Duration = .seconds(3)

    unowned let host: any RescoreHost
    let stateFile: String
    let retryDelay: @Sendable (Int) -> Duration
    private let lock = NSLock()
    private let wake = NSCondition()
    // Guarded by `lock`.
    /// Queued jobs, the running one included (until it ends), and incomplete ones waiting for their next attempt.
    private var jobs: [Job] = []
    private var runningJob: Job?
    private var snapshot: Snapshot?
    /// The last jobs that ended (at most 8), oldest first.
    private var ended: [Snapshot] = []
    /// `snapshot` is a job still running (else it is also the last of `ended`).
    private var running = false
    private var inFlight: [USCC: ContinuousClock.Instant] = [:]
    /// Subjects of the current job: index into `confirmed`.
    private var position: [USCC: Int] = [:]
    private var confirmed: [Bool] = []
    private var currentHash: Hash?
    private var supersede = false
    private var lastExpiry = ContinuousClock.now
    private var stopped = false
    private var thread: Thread?

    init(host: any RescoreHost, stateDirectory: String,
         retryDelay: @escaping @Sendable (Int) -> Duration = UpgradeRescorer.retryDelay(afterAttempt:)) {
        self.host = host
        self.stateFile = stateDirectory + "/rescore-done"
        self.retryDelay = retryDelay
    }

    var store: ChainStore { host.store }
    var logger: Logger { host.logger }

    /// The current (or last) job, and the jobs that ended before it under `previous`.
    var status: [String: any Sendable]? {
        lock.withLock {
            guard var s = snapshot?.json else { return nil }
            s["in_flight"] = running ? inFlight.count : 0
            s["previous"] = (running ? ended[...] : ended.dropLast()).map(\.json)
            return s
        }
    }

    // MARK: Jobs

    /// Hashes (hex) of models whose re-score this node finished.
    func finishedModels() -> Set<String> {
        guard let text = try? String(contentsOfFile: stateFile, encoding: .utf8) else { return [] }
        return Set(text.split(separator: "\n").map(String.init))
    }

    func markFinished(_ hash: Hash) {
        var done = finishedModels()
        done.insert(hash.hexString)
        let text = done.sorted().joined(separator: "\n") + "\n"
        do {
            try ConsensusWAL.writeDurably(Array(text.utf8), to: stateFile, directory: (stateFile as NSString).deletingLastPathComponent)
        } catch {
            logger.warning("cannot record the finished re-score in \(stateFile): \(error); it will be checked again at the next start")
        }
    }

    /// At start: governance-installed models, the latest version of their name, not finished yet.
    func resume() {
        let finished = finishedModels()
        let all = store.allModels()   // genesis models too: a newer version there supersedes
        let installed = all.filter { $0.logIndex != nil }
        for m in installed where !finished.contains(m.hash.hexString) {
            guard !all.contains(where: { $0.name == m.name && $0.version > m.version }) else { continue }
            guard let size = installBlockLogSize(m) else { continue }
            enqueue(m, asOfLogSize: size, resuming: true)
        }
    }

    func installBlockLogSize(_ m: InstalledModel) -> UInt64? {
        guard let index = m.logIndex, let height = try? store.height(coveringLogSize: index + 1),
              let header = try? store.blockHeader(height: height) else { return nil }
        return header.logSize
    }

    /// A block committed (its transactions, first log index and log size): new installs start
    /// jobs; this node's committed updates confirm subjects.
    func committed(_ submissions: [Submission], firstLogIndex: UInt64, logSize: UInt64) {
        let me = host.memberID
        var installs: [InstalledModel] = []
        lock.withLock {
            for (offset, s) in submissions.enumerated() {
                let tx = s.transaction
                switch tx.body {
                case .scoreUpdate(let u) where tx.header.signer == me && u.modelHash == currentHash:
                    inFlight[u.subject] = nil
                    if let i = position[u.subject], !confirmed[i] {
                        confirmed[i] = true
                        snapshot?.done += 1
                    }
                case .governance(let g) where g.action == .installModel:
                    installs.append(InstalledModel(name: g.name, version: g.version, document: g.document,
                                                   logIndex: firstLogIndex + UInt64(offset)))
                default:
                    break
                }
            }
        }
        // An install of a lower version than one already installed (genesis included) re-scores
        // nothing: its updates, as of a later log size, would count as fresher than the newer
        // version's and be served instead of them.
        let all = store.allModels()
        for m in installs where !all.contains(where: { $0.name == m.name && $0.version > m.version }) {
            enqueue(m, asOfLogSize: logSize, resuming: false)
        }
        wake.broadcast()
    }

    /// An update of the current job could not be submitted or expired unendorsed: free its slot.
    func released(_ subject: USCC) {
        lock.withLock { _ = inFlight.removeValue(forKey: subject) }
        wake.broadcast()
    }

    func enqueue(_ installed: InstalledModel, asOfLogSize: UInt64, resuming: Bool) {
        let model: ScoringModel
        do { model = try host.engine.model(installed) } catch {
            logger.warning("model \(installed.name) v\(installed.version) does not compile; nothing re-scored: \(error)")
            return
        }
        let job = Job(installed: installed, model: model, asOfLogSize: asOfLogSize)
        let started: Bool = lock.withLock {
            guard !stopped, jobs.count < Self.maxQueuedJobs else { return false }
            // Found both at start and in a block caught up meanwhile: one job.
            if jobs.contains(where: { $0.installed.hash == installed.hash }) { return true }
            // A newer version of a model makes re-scoring under the older one pointless: the job
            // running stops (`supersede`), queued and waiting ones are dropped.
            let older = { (j: Job) in j.installed.name == installed.name && j.installed.version < installed.version }
            if let current = runningJob, older(current) { supersede = true }
            for j in jobs where older(j) && j.installed.hash != runningJob?.installed.hash {
                // A waiting attempt that will not run: its entry stops counting down to it.
                for i in ended.indices where ended[i].hash == j.installed.hash { ended[i].state = "superseded"; ended[i].retryAt = nil }
                if snapshot?.hash == j.installed.hash, !running { snapshot?.state = "superseded"; snapshot?.retryAt = nil }
            }
            jobs.removeAll { older($0) && $0.installed.hash != runningJob?.installed.hash }
            jobs.append(job)
            if thread == nil {
                let t = Thread { [self] in runJobs() }
                t.name = "creditledger.rescore"
                t.qualityOfService = .utility
                thread = t
                t.start()
            }
            return true
        }
        if started {
            logger.info("\(resuming ? "resuming" : "starting") re-score under \(installed.name) v\(installed.version) (\(installed.hash.hexString.prefix(16))) as of log size \(asOfLogSize)")
        } else {
            logger.warning("re-score under \(installed.name) v\(installed.version) not queued (\(Self.maxQueuedJobs) jobs waiting or node stopping)")
        }
    }

    /// Stops re-scoring and waits (at most `timeout`) for the re-score thread to finish the
    /// subject in hand and leave: after this nothing touches the host, which may be shutting down.
    func stop(timeout: Duration = .seconds(30)) {
        lock.withLock { stopped = true }
        wake.broadcast()
        let deadline = ContinuousClock.now + timeout
        while lock.withLock({ thread != nil }) {
            guard ContinuousClock.now < deadline else {
                logger.warning("re-score thread still busy \(timeout) after the stop")
                return
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    // MARK: The re-score thread

    /// Runs the queued jobs in turn, and incomplete ones again when their wait is over; leaves
    /// when none is left or the node stops.
    private func runJobs() {
        while true {
            var waitUntil: ContinuousClock.Instant?
            let next: Job? = lock.withLock {
                guard !stopped, !jobs.isEmpty else { thread = nil; return nil }
                let now = ContinuousClock.now
                if let job = jobs.first(where: { ($0.notBefore ?? now) <= now }) {
                    runningJob = job
                    // The attempt it waited for starts: the last one's entry stops counting down.
                    for i in ended.indices where ended[i].hash == job.installed.hash { ended[i].retryAt = nil }
                    return job
                }
                waitUntil = jobs.compactMap(\.notBefore).min()
                return nil
            }
            guard let job = next else {
                guard let waitUntil else { return }
                // Only incomplete jobs are left, waiting: sleep until the first is due (a new job
                // or a stop wakes the thread sooner).
                let seconds = min(1, max(0.001, (waitUntil - ContinuousClock.now).inSeconds))
                wake.lock()
                _ = wake.wait(until: Date().addingTimeInterval(seconds))
                wake.unlock()
                continue
            }
            let state = run(job)
            let retry: Job? = lock.withLock {
                jobs.removeAll { $0.installed.hash == job.installed.hash }
                runningJob = nil
                supersede = false
                currentHash = nil
                position = [:]
                confirmed = []
                inFlight = [:]
                guard state == "incomplete", !stopped else { return nil }
                var again = job
                again.attempt += 1
                again.notBefore = ContinuousClock.now + retryDelay(job.attempt)
                jobs.append(again)
                snapshot?.retryAt = again.notBefore
                if let last = ended.indices.last { ended[last].retryAt = again.notBefore }
                return again
            }
            if let retry {
                logger.notice("re-score under \(job.installed.name) v\(job.installed.version) incomplete; attempt \(retry.attempt) in \(retryDelay(job.attempt))")
            }
        }
    }

    /// One attempt of a job; returns how it ended (the `state` it leaves in the status).
    @discardableResult
    private func run(_ job: Job) -> String {
        let clock = ContinuousClock()
        let started = clock.now
        let name = "\(job.installed.name) v\(job.installed.version)"
        lock.withLock {
            snapshot = Snapshot(model: name, hash: job.installed.hash, asOfLogSize: job.asOfLogSize, state: "listing", attempt: job.attempt)
            running = true
        }
        // 1. This node's subjects: designated to it, of a kind the model scores, with records before the as-of size.
        var subjects: [USCC] = []
        do {
            try store.forEachSubject(recordsBefore: job.asOfLogSize) { subject, _ in
                if let kind = subject.subjectKind, job.model.applies(to: kind), host.isDesignated(subject) { subjects.append(subject) }
                return !isStopped
            }
        } catch {
            logger.error("re-score under \(name): cannot list subjects: \(error)")
            return finish(job, name, state: "failed", started: started)
        }
        let asOf: ScoreAsOf
        do {
            guard let millis = try store.blockTimestamp(coveringLogSize: job.asOfLogSize) else {
                throw LedgerError(.notFound, "no block covers log size \(job.asOfLogSize)")
            }
            asOf = ScoreAsOf(logSize: job.asOfLogSize, date: try LedgerDate(chinaStandardTimeMillis: millis))
        } catch {
            logger.error("re-score under \(name): \(error)")
            return finish(job, name, state: "failed", started: started)
        }
        lock.withLock {
            currentHash = job.installed.hash
            position = Dictionary(subjects.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            confirmed = [Bool](repeating: false, count: subjects.count)
            snapshot?.total = subjects.count
            snapshot?.state = "running"
        }
        var lastLog = clock.now
        func progress(force: Bool = false) {
            guard force || clock.now - lastLog >= Self.progressInterval else { return }
            lastLog = clock.now
            let s: Snapshot? = lock.withLock {
                snapshot?.seconds = (clock.now - started).inSeconds
                snapshot?.inFlight = inFlight.count
                return snapshot
            }
            if let s {
                logger.info("re-score under \(name): \(s.done)/\(s.total) subjects (pass \(s.pass), \(s.inFlight) in flight, \(s.failed) failed), \(s.rate)/s")
            }
        }

        // 2. Passes: score what is not confirmed yet, then wait for the in-flight updates.
        var failedSubjects = Set<Int>()
        for pass in 1...Self.maxPasses {
            lock.withLock { snapshot?.pass = pass }
            for (i, subject) in subjects.enumerated() {
                if lock.withLock({ confirmed[i] }) || failedSubjects.contains(i) { continue }
                // Flow control: bounded in-flight updates, and room left in the mempool for ingestion.
                while true {
                    if isStopped || lock.withLock({ supersede }) { return finish(job, name, state: isStopped ? "stopped" : "superseded", started: started) }
                    expireInFlight()
                    let busy = lock.withLock { inFlight.count >= Self.maxInFlight }
                    if !busy && host.hasRoomForRescore { break }
                    progress()
                    wake.lock()
                    _ = wake.wait(until: Date().addingTimeInterval(0.05))
                    wake.unlock()
                }
                do {
                    if try alreadyScored(subject, job: job) {
                        lock.withLock {
                            if !confirmed[i] { confirmed[i] = true; snapshot?.done += 1 }
                        }
                        continue
                    }
                    let records = try store.scoreRecords(subject, before: job.asOfLogSize, limit: FieldLimits.scoreInputs + 1)
                    guard records.count <= FieldLimits.scoreInputs else {
                        throw LedgerError(.fieldTooLarge, "more than \(FieldLimits.scoreInputs) records; format v1 cannot score it")
                    }
                    let body = try host.engine.makeScoreUpdate(subject: subject, records: records, model: job.model, asOf: asOf)
                    lock.withLock { inFlight[subject] = clock.now }
                    host.submitRescored(body)
                } catch let e as StorageError {
                    // Reading the store failed (an I/O error): not the subject's fault; the next
                    // pass tries it again, and the job is not marked finished without it.
                    logger.warning("re-score under \(name): cannot read \(subject) now, trying again next pass: \(e)")
                } catch {
                    failedSubjects.insert(i)
                    lock.withLock { snapshot?.failed += 1 }
                    logger.warning("re-score under \(name): cannot score \(subject): \(error)")
                }
                progress()
            }
            // Wait for what is in flight to commit or expire.
            while lock.withLock({ !inFlight.isEmpty }) {
                if isStopped || lock.withLock({ supersede }) { return finish(job, name, state: isStopped ? "stopped" : "superseded", started: started) }
                expireInFlight()
                progress()
                wake.lock()
                _ = wake.wait(until: Date().addingTimeInterval(0.1))
                wake.unlock()
            }
            let remaining = lock.withLock { confirmed.indices.filter { !confirmed[$0] && !failedSubjects.contains($0) }.count }
            if remaining == 0 { break }
            logger.info("re-score under \(name): pass \(pass) left \(remaining) subjects unconfirmed; trying them again")
        }
        progress(force: true)
        // A failed subject that a live update confirmed meanwhile is counted once, as confirmed.
        let remaining = lock.withLock { confirmed.indices.filter { !confirmed[$0] && !failedSubjects.contains($0) }.count }
        if remaining == 0 {
            // Subjects that could not be scored (over 1,024 records) fail the same way on every
            // try: the job is done, and a restart does not list every subject again. They are
            // counted in the status and logged; each is scored with its next record if it can be.
            markFinished(job.installed.hash)
            return finish(job, name, state: "finished", started: started)
        } else {
            return finish(job, name, state: "incomplete", started: started)
        }
    }

    @discardableResult
    private func finish(_ job: Job, _ name: String, state: String, started: ContinuousClock.Instant) -> String {
        let s: Snapshot? = lock.withLock {
            snapshot?.state = state
            running = false
            snapshot?.seconds = (ContinuousClock.now - started).inSeconds
            if let s = snapshot {
                // One entry per job: a later attempt replaces the earlier one's.
                ended.removeAll { $0.hash == s.hash }
                if ended.count >= 8 { ended.removeFirst() }
                ended.append(s)
            }
            return snapshot
        }
        if let s {
            logger.info("re-score under \(name) \(state): \(s.done)/\(s.total) subjects confirmed, \(s.failed) failed, in \(String(format: "%.1f", s.seconds)) s")
        }
        return state
    }

    /// Drops in-flight updates older than `inFlightTimeout` (looked at once a second at most).
    private func expireInFlight() {
        let now = ContinuousClock.now
        lock.withLock {
            guard now - lastExpiry >= .seconds(1) else { return }
            lastExpiry = now
            inFlight = inFlight.filter { now - $0.value < Self.inFlightTimeout }
        }
    }

    /// True when a score update of `subject` under the job's model, signed by this node, is
    /// committed after the install (usually none or one to decode).
    func alreadyScored(_ subject: USCC, job: Job) throws -> Bool {
        guard let installIndex = job.installed.logIndex else { return false }
        for entry in try store.subjectHistory(subject, after: installIndex, limit: 256) where entry.kind == TransactionKind.scoreUpdate.rawValue {
            if let tx = try store.transaction(at: entry.logIndex), case .scoreUpdate(let u) = tx.body,
               u.modelHash == job.installed.hash, tx.header.signer == host.memberID { return true }
        }
        return false
    }
}

/// What the upgrade re-scorer needs from the node it runs in.
protocol RescoreHost: AnyObject, Sendable {
    var store: ChainStore { get }
    var engine: ScoreEngine { get }
    var logger: Logger { get }
    /// The member whose key signs the updates.
    var memberID: String { get }
    /// Whether this node scores `subject` (the designated scorer, docs/SCORING.md §7.1).
    func isDesignated(_ subject: USCC) -> Bool
    /// False while the mempool has no room to spare beside ingestion.
    var hasRoomForRescore: Bool { get }
    /// Endorses (when required), signs and submits `body`; on failure tells the re-scorer (`released`).
    func submitRescored(_ body: ScoreUpdateBody)
}
