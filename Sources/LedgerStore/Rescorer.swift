import Foundation
import LedgerCore
import Scoring

/// Re-scores every subject of a store under one model (docs/SCORING.md §8): after a model
/// upgrade, or to list the risk model's red subjects. It reads the subject index, which holds
/// each record's scoring metadata (no transaction reads or decoding), through one iterator (a
/// consistent view as of its start) while the node keeps appending blocks, so it
/// runs on a background thread beside ingestion. Scores are computed as of one log size for
/// all subjects; each batch of at most `batchSize` updates (without endorsements) goes to
/// `emit`, which the node turns into endorsed score-update transactions.
public final class Rescorer {
    public struct Progress: Sendable {
        public let subjectsDone: Int
        /// Subjects in the index when the run started.
        public let subjectsTotal: Int
        public let updates: Int
        /// Subjects of a kind the model does not score.
        public let skipped: Int
        public let failed: Int
        public let seconds: Double
        public var subjectsPerSecond: Double { Double(subjectsDone) / max(seconds, 1e-9) }
    }

    public struct Summary: Sendable {
        public let progress: Progress
        public let asOf: ScoreAsOf
        /// Subjects per grade, S first.
        public let grades: [Int]
        /// The first few failures, "USCC: reason".
        public let failures: [String]
        public let stopped: Bool
    }

    public let store: ChainStore
    public let engine: ScoreEngine
    public let model: ScoringModel
    public let batchSize: Int

    public init(store: ChainStore, engine: ScoreEngine, model: ScoringModel, batchSize: Int = 500) {
        self.store = store
        self.engine = engine
        self.model = model
        self.batchSize = max(1, min(batchSize, 10_000))
    }

    /// Runs to the end or until `shouldStop()` returns true (checked between subjects).
    /// `progress` is called after every batch; `emit` receives each batch's updates and results.
    public func run(asOfLogSize: UInt64? = nil, shouldStop: () -> Bool = { false },
                    progress: (Progress) -> Void = { _ in },
                    emit: ([ScoreUpdateBody], [ScoreResult]) throws -> Void) throws -> Summary {
        let clock = ContinuousClock()
        let started = clock.now
        let size = asOfLogSize ?? store.head.logSize
        guard size >= 1, size <= store.head.logSize, let millis = try store.blockTimestamp(coveringLogSize: size) else {
            throw LedgerError(.invalidValue, "as-of log size \(size) must be 1…\(store.head.logSize), the committed log")
        }
        let asOf = ScoreAsOf(logSize: size, date: try LedgerDate(chinaStandardTimeMillis: millis))
        let total = try store.subjectCount()
        var done = 0, updates = 0, skipped = 0, failed = 0
        var grades = [Int](repeating: 0, count: Grade.allCases.count)
        var failures: [String] = []
        var batch: [ScoreUpdateBody] = []
        var results: [ScoreResult] = []
        batch.reserveCapacity(batchSize)
        var stopped = false
        func report() -> Progress {
            return Progress(subjectsDone: done, subjectsTotal: total, updates: updates, skipped: skipped, failed: failed,
                            seconds: (clock.now - started).inSeconds)
        }
        func flush() throws {
            guard !batch.isEmpty else { return }
            try emit(batch, results)
            updates += batch.count
            batch.removeAll(keepingCapacity: true)
            results.removeAll(keepingCapacity: true)
            progress(report())
        }
        let model = model
        try store.forEachSubjectScoreRecords(before: size, include: { s in s.subjectKind.map { model.applies(to: $0) } ?? false }) { subject, records in
            if shouldStop() { stopped = true; return false }
            done += 1
            guard let kind = subject.subjectKind, model.applies(to: kind) else { skipped += 1; return true }
            do {
                guard records.count <= FieldLimits.scoreInputs else {
                    throw LedgerError(.fieldTooLarge, "more than \(FieldLimits.scoreInputs) records")
                }
                let result = try engine.score(subject: subject, records: records, model: model, asOf: asOf)
                grades[Int(result.grade.rawValue)] += 1
                batch.append(ScoreEngine.update(for: result, inputIDs: records.map(\.id), asOf: asOf))
                results.append(result)
            } catch {
                failed += 1
                if failures.count < 10 { failures.append("\(subject): \(error)") }
            }
            if batch.count >= batchSize { try flush() }
            return true
        }
        try flush()
        let final = report()
        progress(final)
        return Summary(progress: final, asOf: asOf, grades: grades, failures: failures, stopped: stopped)
    }
}
