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
    /// Endorsements this node gave, by carrier id (bounded, oldest forgotten first): a request
    /// resent while the answer was on its way is answered again without recomputing.
    var answered: [Hash: MemberSignature] = [:]
    var answeredOrder: [Hash] = []
    var answeredNext = 0
    static let maxAnswered = 8_192
    static let maxPending = 4_096
    /// How long a score update waits for endorsements, and a request to endorse waits for its block.
    static let endorsementWait: Duration = .seconds(30)
    static let maxSubjectsPerBlock = 2_000
    /// Re-scores every subject after a model upgrade (docs/SCORING.md §8.1).
    private(set) var upgrade: UpgradeRescorer!

    init(node: ConsensusNode, stateDirectory: String) {
        self.node = node
        engine = ScoreEngine(genesis: node.genesis)
        scorers = node.genesis.members.filter { $0.has(.scorer) }.map(\.id).sorted()
        upgrade = UpgradeRescorer(host: self, stateDirectory: stateDirectory)
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
            // Nothing to score with no model installed; otherwise the block's own transactions
            // name the subjects (no need to read them back from the store).
            guard !store.allModels().isEmpty, let subjects = try? store.subjectsWithNewRecords(in: block.submissions) else { return }
            let asOfSize = store.head.logSize
            guard let millis = try? store.blockTimestamp(coveringLogSize: asOfSize), let date = try? LedgerDate(chinaStandardTimeMillis: millis) else { return }
            let asOf = ScoreAsOf(logSize: asOfSize, date: date)
            let picked = Self.toScore(subjects, mine: { designated($0) == node.member.id }, max: Self.maxSubjectsPerBlock)
            var skipped = picked.skipped
            for subject in picked.chosen {
                guard pending.count < Self.maxPending else { skipped += 1; continue }
                guard let kind = subject.subjectKind, let model = scorecard(for: kind) else { continue }
                do {
                    // From the subject index's scoring entries, which give the same facts as the
                    // transactions without reading and decoding them (docs/SCORING.md §8.3).
                    // One more than a score may take, so that a subject over the limit is refused, not truncated.
                    let records = try store.scoreRecords(subject, before: asOfSize, limit: FieldLimits.scoreInputs + 1)
                    guard !records.isEmpty else { continue }
                    let body = try engine.makeScoreUpdate(subject: subject, records: records, model: model, asOf: asOf)
                    if node.genesis.scoreEndorsementsRequired == 0 { submit(body); continue }
                    let carrier = node.signOwn(.scoreUpdate(body))
                    pending[carrier.id] = Pending(body: body, carrier: carrier, started: .now, lastSent: .now)
                    requestEndorsements(pending[carrier.id]!)
                } catch {
                    logger.warning("could not score \(subject): \(error)")
                }
            }
            if skipped > 0 {
                logger.warning("\(skipped) subjects with new records in block \(block.header.height) were not scored now (at most \(Self.maxSubjectsPerBlock) a block and \(Self.maxPending) awaiting endorsement); each is scored with its next record, or by a re-score")
            }
        }
    }

    @discardableResult
    func submit(_ body: ScoreUpdateBody) -> Bool {
        do {
            try node.submitOwn(.scoreUpdate(body))
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
            requestEndorsements(pending[carrier.id]!)
        }
    }

    /// Another scorer asks for an endorsement: recompute from this node's own store, sign if equal.
    /// Only scorers ask (another member's request is ignored). A request for a block this node
    /// has not committed waits, once per update, and expires as a pending update does.
    func endorseRequested(_ tx: Transaction, from peer: String, since: ContinuousClock.Instant = .now) {
        queue.async { [self] in
            guard scorers.contains(peer), case .scoreUpdate(let body) = tx.body, tx.header.signer == peer else { return }
            if let signature = answered[tx.id] {
                node.p2p.send(NetMessage.endorsement(carrier: tx.id, signature: signature).encoded, to: peer)
                return
            }
            if store.head.logSize < body.asOfLogSize {
                // This node has not committed the block yet: answer once it has.
                if ContinuousClock.now - since < Self.endorsementWait, waitingEndorse.count < Self.maxPending,
                   !waitingEndorse.contains(where: { $0.tx.id == tx.id }) {
                    waitingEndorse.append((peer, tx, since))
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
    }

    func endorsed(carrier: Hash, signature: MemberSignature, from peer: String) {
        queue.async { [self] in
            guard var p = pending[carrier], signature.member == peer,
                  !p.body.endorsements.contains(where: { $0.member == peer }) else { return }
            p.body.endorsements.append(signature)
            if p.body.endorsements.count >= node.genesis.scoreEndorsementsRequired {
                pending[carrier] = nil
                // The validator checks every endorsement.
                if !submit(p.body) && p.rescore { upgrade.released(p.body.subject) }
            } else {
                pending[carrier] = p
            }
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
            for p in expired.values where p.rescore { upgrade.released(p.body.subject) }
            pending = pending.filter { now - $0.value.started < Self.endorsementWait }
            for (id, p) in pending where now - p.lastSent >= .seconds(1) {
                requestEndorsements(p)
                pending[id]!.lastSent = now
            }
        }
    }

    private func retryEndorsements() {
        let waiting = waitingEndorse
        waitingEndorse = []
        for (peer, tx, since) in waiting { endorseRequested(tx, from: peer, since: since) }
    }
}
