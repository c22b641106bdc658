import Foundation
import LedgerCore
import LedgerCrypto

/// Where a score is computed: the log size its inputs are read below, and the as-of date
/// (the China Standard Time date of the block holding entry `logSize − 1`, docs/SCORING.md §3.1).
public struct ScoreAsOf: Sendable, Hashable {
    public let logSize: UInt64
    public let date: LedgerDate
    public init(logSize: UInt64, date: LedgerDate) {
        self.logSize = logSize
        self.date = date
    }
}

/// Compiled models by content hash, shared by threads. Models are immutable, so a compiled
/// model never goes stale; the cache holds at most `capacity` of them.
public final class ModelCache: @unchecked Sendable {
    private let lock = NSLock()
    private var models: [Hash: ScoringModel] = [:]
    private let capacity: Int

    public init(capacity: Int = 64) { self.capacity = capacity }

    public func model(_ installed: InstalledModel) throws -> ScoringModel {
        if let m = lock.withLock({ models[installed.hash] }) { return m }
        let m = try ScoringModel(document: installed.document)
        guard m.name == installed.name, m.version == installed.version else {
            throw LedgerError(.invalidValue,
                "model installed as \(installed.name) v\(installed.version) declares \(m.name) v\(m.version)")
        }
        lock.withLock {
            if models.count >= capacity { models.removeAll() }
            models[installed.hash] = m
        }
        return m
    }
}

/// The scoring API for custodian nodes and tools: computes scores, builds score updates,
/// endorses others' updates after recomputing them, and checks updates (docs/SCORING.md §7).
/// Pure and thread-safe; the caller supplies the inputs and the as-of point.
public final class ScoreEngine: Sendable {
    public let genesis: Genesis
    public let cache: ModelCache

    public init(genesis: Genesis, cache: ModelCache = ModelCache()) {
        self.genesis = genesis
        self.cache = cache
    }

    /// The compiled form of an installed model (cached).
    public func model(_ installed: InstalledModel) throws -> ScoringModel { try cache.model(installed) }

    /// The scorecard that scores subjects of `kind`: of the latest version of each installed
    /// model, the first by name that is a scorecard and applies to the kind.
    public func scorecard(for kind: SubjectKind, among installed: [InstalledModel]) -> ScoringModel? {
        var latest: [String: InstalledModel] = [:]
        for m in installed where (latest[m.name]?.version ?? 0) < m.version { latest[m.name] = m }
        for name in latest.keys.sorted() {
            if let m = try? model(latest[name]!), m.kind == .scorecard, m.applies(to: kind) { return m }
        }
        return nil
    }

    /// Scores `subject` from its records (oldest first) under `model` as of `asOf`.
    public func score(subject: USCC, inputs: [Transaction], model: ScoringModel, asOf: ScoreAsOf,
                      explain: Bool = false) throws -> ScoreResult {
        try Evaluator.evaluate(model, try SubjectFacts(subject: subject, inputs: inputs, asOfDate: asOf.date), explain: explain)
    }

    /// The same from the records' scoring metadata (`ChainStore.scoreRecords`): no transaction decoding.
    public func score(subject: USCC, records: [ScoreRecord], model: ScoringModel, asOf: ScoreAsOf,
                      explain: Bool = false) throws -> ScoreResult {
        try Evaluator.evaluate(model, try SubjectFacts(subject: subject, records: records, asOfDate: asOf.date), explain: explain)
    }

    /// A score update for `subject` from its records' scoring metadata, without endorsements.
    public func makeScoreUpdate(subject: USCC, records: [ScoreRecord], model: ScoringModel, asOf: ScoreAsOf) throws -> ScoreUpdateBody {
        let result = try score(subject: subject, records: records, model: model, asOf: asOf)
        return Self.update(for: result, inputIDs: records.map(\.id), asOf: asOf)
    }

    /// A score update for `subject`, without endorsements: sign it into a transaction after
    /// collecting `genesis.scoreEndorsementsRequired` endorsements from other scorers.
    public func makeScoreUpdate(subject: USCC, inputs: [Transaction], model: ScoringModel, asOf: ScoreAsOf) throws -> ScoreUpdateBody {
        let result = try score(subject: subject, inputs: inputs, model: model, asOf: asOf)
        return Self.update(for: result, inputs: inputs, asOf: asOf)
    }

    /// The update that carries `result`.
    public static func update(for result: ScoreResult, inputs: [Transaction], asOf: ScoreAsOf) -> ScoreUpdateBody {
        update(for: result, inputIDs: inputs.map(\.id), asOf: asOf)
    }

    /// The update that carries `result`, computed from the inputs with these ids (log order).
    public static func update(for result: ScoreResult, inputIDs: [Hash], asOf: ScoreAsOf) -> ScoreUpdateBody {
        ScoreUpdateBody(subject: result.subject, modelHash: result.modelHash, points: result.points, grade: result.grade,
                        dimensions: result.dimensions, inputs: inputIDs, asOfLogSize: asOf.logSize)
    }

    /// Throws unless `update` is exactly what `inputs` give under `model` as of `asOf`:
    /// subject, model, input ids, log size, dimensions, points and grade.
    public func check(update: ScoreUpdateBody, inputs: [Transaction], model: ScoringModel, asOf: ScoreAsOf) throws {
        try Self.compare(update, with: try score(subject: update.subject, inputs: inputs, model: model, asOf: asOf),
                         inputs: inputs, asOf: asOf, model: model)
    }

    /// The same from the records' scoring metadata (`ChainStore.scoreRecords`), which gives the
    /// same facts as the transactions (docs/SCORING.md §8.3) without decoding them.
    public func check(update: ScoreUpdateBody, records: [ScoreRecord], model: ScoringModel, asOf: ScoreAsOf) throws {
        try Self.compare(update, with: try score(subject: update.subject, records: records, model: model, asOf: asOf),
                         inputIDs: records.map(\.id), asOf: asOf, model: model)
    }

    static func compare(_ u: ScoreUpdateBody, with r: ScoreResult, inputs: [Transaction], asOf: ScoreAsOf, model: ScoringModel) throws {
        try compare(u, with: r, inputIDs: inputs.map(\.id), asOf: asOf, model: model)
    }

    static func compare(_ u: ScoreUpdateBody, with r: ScoreResult, inputIDs: [Hash], asOf: ScoreAsOf, model: ScoringModel) throws {
        func differs(_ what: String, _ claimed: String, _ computed: String) -> LedgerError {
            LedgerError(.invalidValue,
                "score update for \(u.subject) claims \(what) \(claimed), recomputation under \(model.name) v\(model.version) gives \(computed)")
        }
        guard u.modelHash == model.hash else { throw differs("model", u.modelHash.hexString, model.hash.hexString) }
        guard u.asOfLogSize == asOf.logSize else { throw differs("as_of_log_size", "\(u.asOfLogSize)", "\(asOf.logSize)") }
        guard u.inputs == inputIDs else { throw differs("inputs", "\(u.inputs.count) ids", "\(inputIDs.count) other ids") }
        guard u.points == r.points else { throw differs("points", "\(u.points)", "\(r.points)") }
        guard u.grade == r.grade else { throw differs("grade", u.grade.name, r.grade.name) }
        guard u.dimensions == r.dimensions else {
            let show = { (d: [ScoreUpdateBody.Dimension]) in d.map { "\($0.code) \($0.points)" }.joined(separator: ", ") }
            throw differs("dimensions", "[\(show(u.dimensions))]", "[\(show(r.dimensions))]")
        }
    }

    /// Recomputes `update` from `inputs` and, only if it matches exactly, signs the endorsement
    /// message as the scorer holding `keys`. Refuses for a member that is not a scorer.
    public func endorse(update: ScoreUpdateBody, recomputedFrom inputs: [Transaction], model: ScoringModel, asOf: ScoreAsOf,
                        keys: MemberSecretKeys) throws -> MemberSignature {
        try endorse(update: update, keys: keys) { try check(update: update, inputs: inputs, model: model, asOf: asOf) }
    }

    /// The same, recomputing from the records' scoring metadata (`ChainStore.scoreRecords`).
    public func endorse(update: ScoreUpdateBody, recomputedFromRecords records: [ScoreRecord], model: ScoringModel, asOf: ScoreAsOf,
                        keys: MemberSecretKeys) throws -> MemberSignature {
        try endorse(update: update, keys: keys) { try check(update: update, records: records, model: model, asOf: asOf) }
    }

    private func endorse(update: ScoreUpdateBody, keys: MemberSecretKeys, recompute: () throws -> Void) throws -> MemberSignature {
        guard let member = genesis.member(keys.memberID), member.has(.scorer) else {
            throw LedgerError(.notAuthorized, "\(keys.memberID) is not a scorer of \(genesis.chainID); it cannot endorse score updates")
        }
        guard member.signingKey == keys.signing.publicKey else {
            throw LedgerError(.unknownKey, "the key of \(keys.memberID) is not its genesis key")
        }
        guard update.endorsements.isEmpty || !update.endorsements.contains(where: { $0.member == member.id }) else {
            throw LedgerError(.invalidValue, "\(member.id) has already endorsed this update")
        }
        try recompute()
        return MemberSignature(member: member.id, keyID: member.keyID,
                               signature: keys.signing.signature(for: update.endorsementMessage(chainID: genesis.chainID)))
    }
}

/// `ScoreRules` for `TransactionValidator`: parses model documents and recomputes updates.
public final class ScoringRules: ScoreRules, @unchecked Sendable {
    public let cache: ModelCache

    public init(cache: ModelCache = ModelCache()) { self.cache = cache }

    public func modelIdentity(_ document: [UInt8]) throws -> (name: String, version: UInt32) {
        let m = try ScoringModel(document: document)
        return (m.name, m.version)
    }

    public func modelKind(_ document: [UInt8]) -> String? { (try? ScoringModel(document: document))?.kind.rawValue }

    public func verify(_ update: ScoreUpdateBody, model installed: InstalledModel, inputs: [LoggedTransaction], asOfDate: LedgerDate) throws {
        let model: ScoringModel
        do { model = try cache.model(installed) } catch {
            throw LedgerError(.invalidValue, "model \(installed.name) v\(installed.version) does not compile: \(error)")
        }
        let txs = inputs.map(\.transaction)
        let asOf = ScoreAsOf(logSize: update.asOfLogSize, date: asOfDate)
        let result = try Evaluator.evaluate(model, try SubjectFacts(subject: update.subject, inputs: txs, asOfDate: asOfDate))
        try ScoreEngine.compare(update, with: result, inputs: txs, asOf: asOf, model: model)
    }
}

extension TransactionValidator {
    /// A validator that checks score updates and model installs with the scoring engine.
    public static func withScoring(genesis: Genesis, cache: ModelCache = ModelCache()) -> TransactionValidator {
        TransactionValidator(genesis: genesis, scoreRules: ScoringRules(cache: cache))
    }
}
