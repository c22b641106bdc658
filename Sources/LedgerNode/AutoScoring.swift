import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStore
import Logging
import Scoring

/// Live scoring on a consortium node that is a scorer (the bureaus). After each block, every
/// subject with new records is scored under the latest installed scorecard for its kind by one
/// designated scorer — scorers sorted by id, the one at SHA-256(USCC) mod count — which asks
/// other scorers to recompute and endorse it over P2P, then submits the endorsed score update.
/// Every validator recomputes it again before it commits (docs/SCORING.md).
final class AutoScorer: RescoreHost, @unchecked Sendable {
    struct Pending {
        var body: ScoreUpdateBody
        let carrier: Transaction
        let started: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        /// Made by the model-upgrade re-scorer, which is told when it is no longer pending.
        var rescore = false
    }

    let node: ConsensusNode
    let engine: ScoreEngine
    let scorers: [String]
    let queue = DispatchQueue(label: "creditledger.scoring")
    var pending: [Hash: Pending] = [:]          // by carrier transaction id; touched on `queue`
    var waitingEndorse: [(from: String, tx: Transaction, since: ContinuousClock.Instant)] = []
    /// The ids in `waitingEndorse`, so a request (resent every second) is looked up, not searched for.
    var waitingEndorseIDs = Set<HashKey>()
    /// Requests and their bytes in `waitingEndorse`, by scorer: each holds at most its share of
    /// `maxPending` and `maxWaitingBytesPerScorer`. One scorer could take every place (and, with
    /// transactions up to the genesis limit, gigabytes) with requests that never come due, and
    /// the other's requests were then dropped (found in review, 2026-12-08).
    var waitingByScorer: [String: (count: Int, bytes: Int)] = [:]
    static let maxWaitingBytesPerScorer = 32 << 20
    /// How far past this node's log a request may be to wait: a few blocks. One further ahead is
    /// not kept (its scorer resends it every second, and it is answered once this node is there).
    var maxWaitAhead: UInt64 { 4 * UInt64(node.genesis.limits.maxBlockTransactions) }
    /// Endorsements this node gave, by carrier id (bounded, oldest forgotten first): a request
    /// resent while the answer was on its way is answered again without recomputing.
    var answered: [Hash: MemberSignature] = [:]
    var answeredOrder: [Hash] = []
    var answeredNext = 0
    static let maxAnswered = 8_192
    static let maxPending = 4_096
    /// Subjects this node has warned it cannot score (touched on `queue`): said once each, then at
    /// debug level. It was said again for every new record of such a subject, 271 times in four
    /// minutes for one over the input limit (found by black-box testing, 2026-12-07). Emptied when
    /// full, so a subject is warned of again after `maxWarned` others.
    var warnedUnscorable = Set<String>()
    static let maxWarned = 4_096

    /// Logs that `subject` cannot be scored: a warning the first time, debug after.
    func warnUnscorable(_ subject: USCC, _ why: String) {
        if warnedUnscorable.count >= Self.maxWarned { warnedUnscorable.removeAll() }
        if warnedUnscorable.insert(subject.code).inserted {
            logger.warning("cannot score \(subject): \(why) (said once per subject; later attempts are logged at debug level)")
        } else {
            logger.debug("cannot score \(subject): \(why)")
        }
    }
    /// How long a score update waits for endorsements, and a request to endorse waits for its block.
    static let endorsementWait: Duration = .seconds(30)
    static let maxSubjectsPerBlock = 2_000
    /// Re-scores every subject after a model upgrade (docs/SCORING.md §8.1).
    private(set) var upgrade: UpgradeRescorer!

    let stateDirectory: String

    init(node: ConsensusNode, stateDirectory: String) {
        self.node = node
        self.stateDirectory = stateDirectory
        engine = ScoreEngine(genesis: node.genesis)
        // Only validators run the auto-scorer: a scorer that is not one would be designated
        // subjects it never scores, and asked for endorsements it never gives.
        scorers = node.genesis.members.filter { $0.has(.scorer) && $0.has(.validator) }.map(\.id).sorted()
        upgrade = UpgradeRescorer(host: self, stateDirectory: stateDirectory)
        loadWatermark()
    }

    var store: ChainStore { node.store }
    var logger: Logger { node.logger }
    var memberID: String { node.member.id }
    func isDesignated(_ subject: USCC) -> Bool { designated(subject) == node.member.id }
    var hasRoomForRescore: Bool { node.mempool.count <= node.mempool.capacity / 2 }

    func designated(_ subject: USCC) -> String {
        let h = SHA256.hash(Array(subject.code.utf8))
        let n = (UInt64(h[0]) << 24 | UInt64(h[1]) << 16 | UInt64(h[2]) << 8 | UInt64(h[3])) % UInt64(scorers.count)
        return scorers[Int(n)]
    }

    /// The latest version of each installed scorecard for `kind`; of several scorecards, the first by name.
    func scorecard(for kind: SubjectKind) -> ScoringModel? { engine.scorecard(for: kind, among: store.allModels()) }

    /// The subjects this scorer scores after a block, at most `max`, and how many of its own it
    /// leaves. Its own subjects are picked first and bounded after: a bound taken before the
    /// filter left the subjects past it unscored by every scorer.
    static func toScore(_ subjects: [USCC], mine: (USCC) -> Bool, max: Int) -> (chosen: [USCC], skipped: Int) {
        let own = subjects.filter(mine)
        return (Array(own.prefix(max)), Swift.max(0, own.count - max))
    }

    /// After `block` committed (called on the consensus queue).
    func committed(_ block: CandidateBlock) {
        queue.async { [self] in
            upgrade.committed(block.submissions, firstLogIndex: block.header.firstLogIndex, logSize: block.header.logSize)
            retryEndorsements()
            defer { processedLogSize = max(processedLogSize, block.header.logSize) }
            // Nothing to score with no model installed; otherwise the block's own transactions
            // name the subjects (no need to read them back from the store).
            guard !store.allModels().isEmpty else { return }
            settle(block.submissions)
            let subjects: [USCC]
            do {
                subjects = try store.subjectsWithNewRecords(in: block.submissions)
            } catch {
                // Read again from the log, as the backlog's overflow is.
                logger.warning("scoring: cannot list the subjects of block \(block.header.height): \(error)")
                overflowFrom = min(overflowFrom ?? block.header.firstLogIndex, block.header.firstLogIndex)
                return
            }
            // Every subject of its own is owed a score until one as of this block commits; those
            // not scored now are tried at the next tick.
            let now = ContinuousClock.now
            for subject in subjects where isDesignated(subject) {
                owe(subject, from: block.header.firstLogIndex, need: block.header.logSize, lastTry: now - Self.retryAfter)
            }
            guard let asOf = currentAsOf() else { return }
            let picked = Self.toScore(subjects, mine: isDesignated, max: Self.maxSubjectsPerBlock)
            var skipped = picked.skipped
            for subject in picked.chosen {
                switch score(subject, asOf: asOf) {
                case .done: owed[subject] = nil
                case .sent, .failed: owed[subject]?.lastTry = now
                case .later: skipped += 1
                }
            }
            publishBacklog()
            if skipped > 0 {
                logger.warning("\(skipped) subjects with new records in block \(block.header.height) were not scored now (at most \(Self.maxSubjectsPerBlock) a block and \(Self.maxPending) awaiting endorsement); they are tried again within seconds")
            }
        }
    }

    enum Attempt { case sent, done, later, failed }

    /// Scores one subject as of `asOf` and sends the update for endorsement (or submits it):
    /// `.sent`; `.done` when there is nothing this node can score (no kind, no scorecard, no
    /// record, or the scorer refuses it, as for a subject over the input limit); `.later` when
    /// no more updates may wait for endorsement now; `.failed` when reading the store failed
    /// (tried again after `retryAfter`).
    func score(_ subject: USCC, asOf: ScoreAsOf) -> Attempt {
        guard let kind = subject.subjectKind, let model = scorecard(for: kind) else {
            warnUnscorable(subject, "no scorecard is installed for its kind")
            return .done
        }
        guard pending.count < Self.maxPending else { return .later }
        do {
            // From the subject index's scoring entries, which give the same facts as the
            // transactions without reading and decoding them (docs/SCORING.md §8.3).
            // One more than a score may take, so that a subject over the limit is refused, not truncated.
            let records = try store.scoreRecords(subject, before: asOf.logSize, limit: FieldLimits.scoreInputs + 1)
            guard !records.isEmpty else { return .done }
            let body = try engine.makeScoreUpdate(subject: subject, records: records, model: model, asOf: asOf)
            if node.genesis.scoreEndorsementsRequired == 0 { submit(body); return .sent }
            let carrier = node.signOwn(.scoreUpdate(body))
            pending[carrier.id] = Pending(body: body, carrier: carrier, started: .now, lastSent: .now)
            pendingSubjects[subject, default: 0] += 1
            requestEndorsements(pending[carrier.id]!)
            return .sent
        } catch let error as LedgerError {
            warnUnscorable(subject, "\(error)")
            return .done
        } catch {
            logger.warning("could not score \(subject) now, trying again later: \(error)")
            return .failed
        }
    }

    /// The committed head as a scoring as-of point.
    func currentAsOf() -> ScoreAsOf? {
        let size = store.head.logSize
        guard let millis = try? store.blockTimestamp(coveringLogSize: size), let date = try? LedgerDate(chinaStandardTimeMillis: millis) else { return nil }
        return ScoreAsOf(logSize: size, date: date)
    }

    // MARK: The backlog of owed scores (docs/SCORING.md §7.1, "Nothing is left unscored")

    /// A subject of this scorer with records no committed score update covers yet.
    struct Owed {
        /// The first log index not known to be covered: a restart re-reads the log from here.
        var from: UInt64
        /// A score as of this log size or later covers every record seen.
        var need: UInt64
        var lastTry: ContinuousClock.Instant
        /// The last update submitted for it: while the mempool holds it, it is not tried again.
        var submitted: Hash? = nil
    }
    var owed: [USCC: Owed] = [:]
    /// Subjects with an update waiting for endorsement (count of such updates).
    var pendingSubjects: [USCC: Int] = [:]
    /// The log size of the last block handed to `committed`.
    var processedLogSize: UInt64 = 0
    /// Log indexes still to be read for owed subjects: after a restart (from the saved
    /// watermark), or after the backlog was full.
    var rescan: (next: UInt64, end: UInt64)? = nil
    /// The first log index of a block whose subjects did not fit in the backlog.
    var overflowFrom: UInt64? = nil
    var savedWatermark: UInt64? = nil
    var progressFile: String { stateDirectory + "/scoring-watermark" }
    static let maxOwed = 100_000
    /// How long after an attempt an owed subject is checked and tried again: past the wait
    /// for endorsements, so a request that expired is not still pending.
    static let retryAfter: Duration = endorsementWait + .seconds(5)
    static let rescanPerTick = 5_000
    static let checksPerTick = 4_000

    /// Everything below this log index is covered by committed score updates, or was found
    /// unscorable: the point a restart reads the log from.
    var watermark: UInt64 {
        var w = rescan?.next ?? processedLogSize
        if let o = overflowFrom { w = min(w, o) }
        for o in owed.values where o.from < w { w = o.from }
        return w
    }

    /// For `GET /v1/status`: subjects owed a score, updates waiting for endorsement, the
    /// watermark; as of the last block or tick (a snapshot, so the HTTP thread never waits for
    /// the scoring queue).
    var backlogStatus: [String: any Sendable] { statusLock.withLock { backlogSnapshot } }
    private let statusLock = NSLock()
    private var backlogSnapshot: [String: any Sendable] = [:]

    func publishBacklog() {
        var s: [String: any Sendable] = ["owed": owed.count, "awaiting_endorsement": pending.count, "watermark": watermark]
        if let r = rescan { s["rescan_left"] = r.end - r.next }
        statusLock.withLock { backlogSnapshot = s }
    }

    func owe(_ subject: USCC, from: UInt64, need: UInt64, lastTry: ContinuousClock.Instant) {
        if var o = owed[subject] {
            o.from = min(o.from, from); o.need = max(o.need, need)
            owed[subject] = o
        } else if owed.count < Self.maxOwed {
            owed[subject] = Owed(from: from, need: need, lastTry: lastTry)
        } else {
            if overflowFrom == nil {
                logger.warning("scoring backlog full (\(Self.maxOwed) subjects): subjects from log index \(from) on are read again from the log once it drains")
            }
            overflowFrom = min(overflowFrom ?? from, from)
        }
    }

    /// Score updates in a committed block settle the owed subjects they cover.
    func settle(_ submissions: [Submission]) {
        for s in submissions {
            guard case .scoreUpdate(let u) = s.transaction.body, let o = owed[u.subject], u.asOfLogSize >= o.need,
                  let kind = u.subject.subjectKind, scorecard(for: kind)?.hash == u.modelHash else { continue }
            owed[u.subject] = nil
        }
    }

    /// At start: the watermark saved before, if any. Subjects with records from there to the
    /// head are read again from the log, and scored if no committed update covers them.
    func loadWatermark() {
        let head = store.head.logSize
        processedLogSize = head
        guard let text = try? String(contentsOfFile: progressFile, encoding: .utf8) else { return }
        guard let w = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)), w <= head else {
            logger.warning("ignoring \(progressFile): not a log size at most the head's \(head)")
            return
        }
        savedWatermark = w
        if w < head {
            rescan = (w, head)
            logger.info("scoring: reading log indexes \(w)..<\(head) again for subjects left unscored before the restart")
        }
    }

    /// Each tick: read part of the rescan, check owed subjects whose last try is old enough
    /// (covered ones leave; the rest are scored again), save the watermark when it moved.
    /// A tick checks at most `checksPerTick` subjects and scores at most `maxSubjectsPerBlock`.
    func serviceBacklog() {
        defer { publishBacklog() }
        guard !store.allModels().isEmpty else { return }
        if rescan == nil, let o = overflowFrom, owed.count < Self.maxOwed / 2 {
            rescan = (o, processedLogSize); overflowFrom = nil
        }
        if let r = rescan, owed.count < Self.maxOwed { readForRescan(r) }
        let now = ContinuousClock.now
        // With no room to wait for endorsements, nothing could be sent: no pass this tick.
        if pending.count < Self.maxPending, let asOf = currentAsOf() {
            let due = owed.filter { now - $0.value.lastTry >= Self.retryAfter && pendingSubjects[$0.key] == nil }
            var checked = 0, tried = 0
            for (subject, o) in due.sorted(by: { $0.value.from < $1.value.from }) {
                guard checked < Self.checksPerTick, tried < Self.maxSubjectsPerBlock else { break }
                // An update still waiting in the mempool (a busy network) is not made again.
                if let id = o.submitted, node.mempool.contains(id) { owed[subject]?.lastTry = now; continue }
                checked += 1
                guard let kind = subject.subjectKind, let model = scorecard(for: kind) else {
                    warnUnscorable(subject, "no scorecard is installed for its kind")
                    owed[subject] = nil
                    continue
                }
                let covered = (try? store.scoreCoversNewestRecord(subject, modelHash: model.hash, recordsBefore: o.need,
                                                                  before: asOf.logSize)) ?? false
                if covered { owed[subject] = nil; continue }
                tried += 1
                switch score(subject, asOf: asOf) {
                case .done: owed[subject] = nil
                case .sent, .failed: owed[subject]?.lastTry = now
                case .later: tried = Self.maxSubjectsPerBlock
                }
            }
            if tried > 0 { logger.info("scoring: \(tried) owed subjects scored again (no committed update covered their records)") }
        }
        let w = watermark
        if w != savedWatermark {
            do {
                try ConsensusWAL.writeDurably(Array("\(w)\n".utf8), to: progressFile, directory: stateDirectory)
                savedWatermark = w
            } catch {
                logger.warning("cannot save the scoring watermark in \(progressFile): \(error)")
            }
        }
    }

    private func readForRescan(_ r: (next: UInt64, end: UInt64)) {
        let end = min(r.end, r.next + UInt64(Self.rescanPerTick))
        var submissions: [Submission] = []
        do {
            for i in r.next..<end {
                guard let tx = try store.transaction(at: i) else { throw LedgerError(.notFound, "log index \(i) holds no transaction") }
                submissions.append(Submission(transaction: tx, envelope: nil))
            }
            for subject in try store.subjectsWithNewRecords(in: submissions) where isDesignated(subject) {
                guard owed.count < Self.maxOwed || owed[subject] != nil else { return }   // read on once the backlog drains
                owe(subject, from: r.next, need: end, lastTry: .now - Self.retryAfter)
            }
        } catch {
            logger.warning("scoring: cannot read log indexes \(r.next)..<\(end) again: \(error)")
            return
        }
        rescan = end < r.end ? (end, r.end) : nil
    }

    @discardableResult
    func submit(_ body: ScoreUpdateBody) -> Bool {
        do {
            let id = try node.submitOwn(.scoreUpdate(body))
            owed[body.subject]?.submitted = id
            logger.debug("score update for \(body.subject): \(body.points) points, grade \(body.grade.name)")
            return true
        } catch {
            logger.warning("score update for \(body.subject) refused: \(error)")
            return false
        }
    }

    /// A score update made by the upgrade re-scorer: endorsed and submitted like a live one.
    /// The re-scorer bounds how many it hands over; it is told of each that fails.
    func submitRescored(_ body: ScoreUpdateBody) {
        queue.async { [self] in
            if node.genesis.scoreEndorsementsRequired == 0 {
                if !submit(body) { upgrade.released(body.subject) }
                return
            }
            let carrier = node.signOwn(.scoreUpdate(body))
            pending[carrier.id] = Pending(body: body, carrier: carrier, started: .now, lastSent: .now, rescore: true)
            pendingSubjects[body.subject, default: 0] += 1
            requestEndorsements(pending[carrier.id]!)
        }
    }

    /// Another scorer asks for an endorsement: recompute from this node's own store, sign if equal.
    /// Only scorers ask (another member's request is ignored). A request for a block this node
    /// has not committed waits, once per update, and expires as a pending update does.
    /// On `queue`. The node calls it within the peer's share of its inbound backlog, so a scorer
    /// sending requests faster than this node recomputes scores cannot fill its memory.
    func endorseRequested(_ tx: Transaction, from peer: String, since: ContinuousClock.Instant = .now) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard scorers.contains(peer), case .scoreUpdate(let body) = tx.body, tx.header.signer == peer else { return }
        if let signature = answered[tx.id] {
            node.p2p.send(NetMessage.endorsement(carrier: tx.id, signature: signature).encoded, to: peer)
            return
        }
        if store.head.logSize < body.asOfLogSize {
            // This node has not committed the block yet: answer once it has.
            let held = waitingByScorer[peer] ?? (0, 0)
            let share = Self.maxPending / max(1, scorers.count - 1)
            guard body.asOfLogSize - store.head.logSize <= maxWaitAhead, held.count < share,
                  held.bytes + tx.encoded.count <= Self.maxWaitingBytesPerScorer else {
                node.logger.debug("endorsement request \(tx.id.hexString.prefix(16)) from \(peer) not kept: as of log size \(body.asOfLogSize), this node at \(store.head.logSize); \(held.count) of its requests (\(held.bytes) bytes) wait already")
                return
            }
            if ContinuousClock.now - since < Self.endorsementWait, waitingEndorse.count < Self.maxPending,
               waitingEndorseIDs.insert(HashKey(tx.id)).inserted {
                waitingEndorse.append((peer, tx, since))
                waitingByScorer[peer] = (held.count + 1, held.bytes + tx.encoded.count)
            }
            return
        }
        do {
            guard let installed = store.model(hash: body.modelHash) else {
                throw LedgerError(.unknownReference, "model \(body.modelHash.hexString.prefix(16)) is not installed")
            }
            let model = try engine.model(installed)
            let records = try store.scoreRecords(body.subject, before: body.asOfLogSize, limit: FieldLimits.scoreInputs + 1)
            guard let millis = try store.blockTimestamp(coveringLogSize: body.asOfLogSize) else { return }
            let asOf = ScoreAsOf(logSize: body.asOfLogSize, date: try LedgerDate(chinaStandardTimeMillis: millis))
            let signature = try engine.endorse(update: body, recomputedFromRecords: records, model: model, asOf: asOf, keys: node.keys)
            if answeredOrder.count < Self.maxAnswered {
                answeredOrder.append(tx.id)
            } else {   // a ring: overwrite the oldest
                answered[answeredOrder[answeredNext]] = nil
                answeredOrder[answeredNext] = tx.id
                answeredNext = (answeredNext + 1) % Self.maxAnswered
            }
            answered[tx.id] = signature
            node.p2p.send(NetMessage.endorsement(carrier: tx.id, signature: signature).encoded, to: peer)
        } catch {
            logger.warning("refused to endorse \(peer)'s score of \(body.subject): \(error)")
        }
    }

    /// On `queue`, within the peer's share of the node's inbound backlog (as above).
    func endorsed(carrier: Hash, signature: MemberSignature, from peer: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard var p = pending[carrier], signature.member == peer,
              !p.body.endorsements.contains(where: { $0.member == peer }) else { return }
        // Checked here, as validators will: a bad signature taken as one of the endorsements
        // would get the update refused and the honest endorsements arriving after it ignored.
        do {
            try node.validator.checkEndorsement(signature, message: p.body.endorsementMessage(chainID: node.genesis.chainID))
        } catch {
            logger.warning("endorsement from \(peer) of the score of \(p.body.subject) ignored: \(error)")
            return
        }
        p.body.endorsements.append(signature)
        if p.body.endorsements.count >= node.genesis.scoreEndorsementsRequired {
            dropPending(carrier)
            // The validator checks every endorsement.
            if !submit(p.body) && p.rescore { upgrade.released(p.body.subject) }
        } else {
            pending[carrier] = p
        }
    }

    func requestEndorsements(_ p: Pending) {
        for other in scorers where other != node.member.id && !p.body.endorsements.contains(where: { $0.member == other }) {
            node.p2p.send(NetMessage.endorseRequest(p.carrier).encoded, to: other)
        }
    }

    /// Every second (from the node's status timer): requests lost to a dropped connection are
    /// sent again, endorsements that waited for a block are retried, and stale requests expire.
    func tick() {
        queue.async { [self] in
            retryEndorsements()
            let now = ContinuousClock.now
            let expired = pending.filter { now - $0.value.started >= Self.endorsementWait }
            for (id, p) in expired {
                if p.rescore { upgrade.released(p.body.subject) }
                dropPending(id)
            }
            for (id, p) in pending where now - p.lastSent >= .seconds(1) {
                requestEndorsements(p)
                pending[id]!.lastSent = now
            }
            serviceBacklog()
        }
    }

    /// Forgets a pending update (endorsed, or expired).
    func dropPending(_ id: Hash) {
        guard let p = pending.removeValue(forKey: id) else { return }
        let n = (pendingSubjects[p.body.subject] ?? 1) - 1
        pendingSubjects[p.body.subject] = n > 0 ? n : nil
    }

    private func retryEndorsements() {
        let waiting = waitingEndorse
        waitingEndorse = []
        waitingEndorseIDs = []
        waitingByScorer = [:]
        for (peer, tx, since) in waiting { endorseRequested(tx, from: peer, since: since) }
    }
}
