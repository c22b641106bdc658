import Foundation
import LedgerCrypto

// What transaction validation needs from the scoring engine and from ledger state to check
// score updates and model installs (docs/SCORING.md §7). LedgerCore defines the shape; the
// Scoring module implements `ScoreRules`, the stores implement the state queries.

/// A committed transaction and its position in the log.
public struct LoggedTransaction: Sendable, Hashable {
    public let logIndex: UInt64
    public let transaction: Transaction
    public init(logIndex: UInt64, transaction: Transaction) {
        self.logIndex = logIndex
        self.transaction = transaction
    }
}

/// A document installed on the ledger by name and version — a scoring model or a query
/// policy — listed in genesis or installed by a committed governance transaction.
public protocol InstalledDocument: Sendable, Hashable {
    var name: String { get }
    var version: UInt32 { get }
    var document: [UInt8] { get }
    /// SHA-256 of `document`: the document's identity.
    var hash: Hash { get }
    /// Log index of the installing governance transaction; nil when listed in genesis.
    var logIndex: UInt64? { get }
    init(name: String, version: UInt32, document: [UInt8], logIndex: UInt64?)
}

/// An installed document of one kind. The kind is a type parameter only, so a policy can never
/// be passed where a model is expected. Its hash is SHA-256 of the document's bytes.
public struct Installed<Kind>: InstalledDocument {
    public let name: String
    public let version: UInt32
    public let document: [UInt8]
    public let hash: Hash
    /// Log index of the installing governance transaction; nil for one listed in genesis.
    public let logIndex: UInt64?

    public init(name: String, version: UInt32, document: [UInt8], logIndex: UInt64?) {
        self.name = name
        self.version = version
        self.document = document
        self.hash = SHA256.hash(document)
        self.logIndex = logIndex
    }
}

/// The kind of `InstalledModel`: a scoring model (`install_model`).
public enum ScoringModelDocument {}
/// A scoring model installed on the ledger: listed in genesis, or installed by a committed
/// `install_model` governance transaction.
public typealias InstalledModel = Installed<ScoringModelDocument>

extension ScoreUpdateBody {
    /// Whether this update (under `model`) is fresher than `other` (under `otherModel`): made as
    /// of a later log size, or as of the same and under a later model version. The update served
    /// for a subject is the freshest, not the last committed: one made from an older state can
    /// commit later. Credit-grade answers and the statistics' grade cells both order by this.
    public func isFresher(than other: ScoreUpdateBody, model: InstalledModel, otherModel: InstalledModel) -> Bool {
        (asOfLogSize, model.version) > (other.asOfLogSize, otherModel.version)
    }
}

/// The scoring engine as validation sees it. Implemented by `Scoring.ScoringRules`.
public protocol ScoreRules: Sendable {
    /// Parses and checks a model document; returns the name and version it declares.
    /// Throws naming the problem when the document is not a valid model.
    func modelIdentity(_ document: [UInt8]) throws -> (name: String, version: UInt32)
    /// The kind a model document declares (`scorecard`, `risk_warning`), or nil when unknown.
    func modelKind(_ document: [UInt8]) -> String?
    /// Recomputes `update` from `inputs` (the subject's records before `as_of_log_size`, in log
    /// order) under `model` as of `asOfDate`; throws if points, grade or dimensions differ.
    func verify(_ update: ScoreUpdateBody, model: InstalledModel, inputs: [LoggedTransaction], asOfDate: LedgerDate) throws
}

/// The state queries score validation needs. Every store implements them; the defaults throw,
/// so a state reader that does not know them refuses score updates instead of passing them.
public extension LedgerStateReader {
    func committedLogSize() throws -> UInt64 {
        throw LedgerError(.notFound, "this ledger state does not report its log size; it cannot check score updates")
    }
    func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        throw LedgerError(.notFound, "this ledger state has no subject index; it cannot check score updates")
    }
    func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64? {
        throw LedgerError(.notFound, "this ledger state has no block timestamps; it cannot check score updates")
    }
    func installedModel(hash: Hash) throws -> InstalledModel? {
        throw LedgerError(.notFound, "this ledger state has no model registry; it cannot check score updates")
    }
    func installedModels() throws -> [InstalledModel] {
        throw LedgerError(.notFound, "this ledger state has no model registry; it cannot check model installs")
    }
    func installedPolicy(hash: Hash) throws -> InstalledPolicy? {
        throw LedgerError(.notFound, "this ledger state has no policy registry; it cannot check query records")
    }
    func installedPolicies() throws -> [InstalledPolicy] {
        throw LedgerError(.notFound, "this ledger state has no policy registry; it cannot check policy installs")
    }
    /// Readers without a query index (score cases) do not check that a request is recorded
    /// once; validators, whose store has the index, and the offline verifier's state do.
    func queryNonceUsed(requester: String, nonce: UInt64) throws -> Bool { false }
    func committedLogSize(atHeight height: UInt64) throws -> UInt64? {
        throw LedgerError(.notFound, "this ledger state has no block index; it cannot check query records")
    }
    func consents(of subject: USCC, grantee: String, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        throw LedgerError(.notFound, "this ledger state has no consent index; it cannot check query records")
    }
    func payloadCommitmentHolder(_ commitment: Hash) throws -> Hash? {
        throw LedgerError(.notFound, "this ledger state has no payload commitment index; it cannot check records")
    }
    func corrections(of record: Hash, limit: Int) throws -> [Hash] {
        throw LedgerError(.notFound, "this ledger state has no correction index; it cannot check erasures")
    }
    func erasure(of record: Hash) throws -> Hash? {
        throw LedgerError(.notFound, "this ledger state has no erasure index; it cannot check erasures")
    }
    func blockTimestamp(holding id: Hash, at logIndex: UInt64) throws -> UInt64? {
        try blockTimestamp(coveringLogSize: logIndex + 1)
    }
    func blockTimestamp(atHeight height: UInt64) throws -> UInt64? {
        guard height > 0, let logSize = try committedLogSize(atHeight: height) else { return nil }
        return try blockTimestamp(coveringLogSize: logSize)
    }
    func amendmentLinks(of subject: USCC, before logSize: UInt64, limit: Int) throws -> [AmendmentLink] {
        try subjectRecords(subject, before: logSize, limit: limit).compactMap { l in
            guard case .amendment(let a) = l.transaction.body else { return nil }
            return AmendmentLink(id: l.transaction.id, target: a.target, revokes: a.action == .revocation)
        }
    }
}

extension LedgerDate {
    /// The calendar date in China Standard Time (UTC+8, no daylight saving) of a Unix time in
    /// milliseconds: the as-of date of a score (docs/SCORING.md §3).
    public init(chinaStandardTimeMillis millis: UInt64) throws {
        let days = Int64((millis / 1000 + 8 * 3600) / 86_400)
        let (y, m, d) = CivilCalendar.civil(fromDays: days)
        // A timestamp past what a date holds (a block only a dishonest quorum could certify) is
        // an error, not a trap.
        guard let value = UInt32(exactly: y * 10000 + m * 100 + d) else {
            throw LedgerError(.invalidValue, "time \(millis) ms is past the dates a ledger holds")
        }
        try self.init(value)
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar.
    public var dayNumber: Int64 {
        CivilCalendar.days(year: Int64(value / 10000), month: Int64(value / 100 % 100), day: Int64(value % 100))
    }
}

/// Day numbers and dates (H. Hinnant's algorithms, exact integer arithmetic).
public enum CivilCalendar {
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public static func civil(fromDays z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Transactions whose check against committed state has passed on this node, so it is not
/// repeated for every path the transaction takes (admission, the proposer's block building,
/// each block check): score updates (`TransactionValidator.scoreChecks`) and the consents
/// answers rely on (`consentChecks`, whose soundness is argued at `checkConsent`).
///
/// For score updates, sound because that check, once passed, passes on every later state of the
/// same chain: it reads only the subject's records below `as_of_log_size` (committed, so fixed;
/// erasure removes payload envelopes, not the clear metadata scoring reads), the block timestamp
/// there (fixed), and the model, which is never uninstalled; and `as_of_log_size` stays within
/// the committed log as the log grows. The key is the transaction id, which covers the whole
/// body. The replay guard is not part of it and runs every time. Bounded: the oldest are
/// forgotten first, and a forgotten one is simply checked again.
public final class CheckMemo: @unchecked Sendable {
    private let lock = NSLock()
    private var passed = Set<Hash>()
    private var order: [Hash] = []
    private var head = 0
    private var counts = (checked: 0, reused: 0)
    public let capacity: Int

    public init(capacity: Int = 65_536) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Checks that ran and passed, and checks answered from the memo, since start.
    public var statistics: (checked: Int, reused: Int) { lock.withLock { counts } }

    func reuse(_ id: Hash) -> Bool {
        lock.withLock {
            guard passed.contains(id) else { return false }
            counts.reused += 1
            return true
        }
    }

    func remember(_ id: Hash) {
        lock.withLock {
            counts.checked += 1
            guard passed.insert(id).inserted else { return }
            order.append(id)
            if passed.count > capacity {
                passed.remove(order[head]); head += 1
                if head > capacity / 2 { order.removeFirst(head); head = 0 }
            }
        }
    }
}

extension TransactionValidator {
    /// Score updates (docs/SCORING.md §7): the model is installed; `as_of_log_size` is within the
    /// committed log; the inputs are exactly the subject's records before it, in log order; and
    /// the recomputation from their clear metadata gives the same dimensions, points and grade.
    /// Public for auditors re-checking a committed update against a store (`credit-verify recompute`).
    public func checkScoreUpdate(_ s: ScoreUpdateBody, state: some LedgerStateReader) throws {
        guard let rules = scoreRules else {
            throw LedgerError(.notAuthorized, "this validator has no scoring engine, so it cannot check score updates")
        }
        guard let model = try genesis.model(hash: s.modelHash) ?? state.installedModel(hash: s.modelHash) else {
            throw LedgerError(.unknownReference, "score update names model \(s.modelHash.hexString), which is not installed")
        }
        let committed = try state.committedLogSize()
        guard s.asOfLogSize >= 1, s.asOfLogSize <= committed else {
            throw LedgerError(.invalidValue,
                "score update as_of_log_size \(s.asOfLogSize) must be 1…\(committed), the log committed before it")
        }
        let records = try state.subjectRecords(s.subject, before: s.asOfLogSize, limit: FieldLimits.scoreInputs + 1)
        guard records.count <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "subject \(s.subject) has more than \(FieldLimits.scoreInputs) records before log size \(s.asOfLogSize); format v1 cannot score it")
        }
        if records.count != s.inputs.count || zip(records, s.inputs).contains(where: { $0.transaction.id != $1 }) {
            try explainInputMismatch(s, records: records, state: state)
        }
        guard let timestamp = try state.blockTimestamp(coveringLogSize: s.asOfLogSize) else {
            throw LedgerError(.notFound, "no committed block holds log entry \(s.asOfLogSize - 1)")
        }
        try rules.verify(s, model: model, inputs: records, asOfDate: try LedgerDate(chinaStandardTimeMillis: timestamp))
    }

    /// A score update is under the latest installed version of its model. An update under a
    /// version a newer one supersedes, made as of a later log size, counts as fresher than the
    /// newer version's and is served instead, so banks would see grades of the old scorecard
    /// again (found by black-box testing; rule added 2026-12-07, not applied to certified
    /// blocks, as the other dated rules).
    public func checkModelIsCurrent(_ s: ScoreUpdateBody, state: some LedgerStateReader) throws {
        guard let model = try genesis.model(hash: s.modelHash) ?? state.installedModel(hash: s.modelHash) else { return }
        let newer = (genesis.models + (try state.installedModels()))
            .filter { $0.name == model.name && $0.version > model.version }
            .max { $0.version < $1.version }
        if let newer {
            throw LedgerError(.conflict, "score update is under \(model.name) v\(model.version), which v\(newer.version) supersedes "
                + "(installed \(newer.logIndex.map { "at log index \($0)" } ?? "in genesis")); score the subject under v\(newer.version)")
        }
    }

    /// Names the first way the update's input list differs from the subject's records.
    private func explainInputMismatch(_ s: ScoreUpdateBody, records: [LoggedTransaction], state: some LedgerStateReader) throws -> Never {
        let expected = Set(records.map(\.transaction.id))
        var seen = Set<Hash>()
        for input in s.inputs {
            guard seen.insert(input).inserted else {
                throw LedgerError(.invalidValue, "score input \(input.hexString) is listed twice")
            }
            if expected.contains(input) { continue }
            guard let t = try state.committedTransaction(id: input) else {
                throw LedgerError(.unknownReference, "score input \(input.hexString) is not a committed transaction")
            }
            guard t.kind == .attestation || t.kind == .amendment else {
                throw LedgerError(.invalidValue, "score input \(input.hexString) is \(t.kind.withArticle), not a record about \(s.subject)")
            }
            throw LedgerError(.invalidValue,
                "score input \(input.hexString) is not a record about \(s.subject) committed before log size \(s.asOfLogSize)")
        }
        if let missing = records.first(where: { !seen.contains($0.transaction.id) }) {
            throw LedgerError(.invalidValue,
                "score inputs omit \(missing.transaction.id.hexString) (log index \(missing.logIndex)), a record about \(s.subject) before log size \(s.asOfLogSize); inputs must be all of the subject's records")
        }
        throw LedgerError(.invalidValue, "score inputs are not in log order")
    }

    /// `install_model`: the document is a valid model declaring the transaction's name and
    /// version, and no model of that name and version (or that hash) is installed yet.
    func checkModelInstall(_ g: GovernanceBody, state: some LedgerStateReader, certified: Bool) throws {
        guard let rules = scoreRules else {
            throw LedgerError(.notAuthorized, "this validator has no scoring engine, so it cannot check install_model")
        }
        let identity: (name: String, version: UInt32)
        do { identity = try rules.modelIdentity(g.document) } catch {
            throw LedgerError(.invalidValue, "install_model document is not a valid model: \(error)")
        }
        guard identity.name == g.name, identity.version == g.version else {
            throw LedgerError(.invalidValue,
                "install_model \(g.name) version \(g.version) carries a document declaring \(identity.name) version \(identity.version)")
        }
        let installed = genesis.models + (try state.installedModels())
        if let existing = installed.first(where: { ($0.name == g.name && $0.version == g.version) || $0.hash == g.documentHash }) {
            throw LedgerError(.conflict, "model \(existing.name) version \(existing.version) (\(existing.hash.hexString.prefix(16))…) is already installed")
        }
        // Rule added 2026-12-07, for what is not yet certified, as the other dated rules.
        if !certified, let kind = rules.modelKind(g.document),
           let problem = Self.modelKindChange(name: g.name, version: g.version, kind: kind,
                                              installed: installed.filter { $0.name == g.name }.map { ($0.name, $0.version, rules.modelKind($0.document)) }) {
            throw LedgerError(.invalidValue, problem)
        }
    }

    /// Why installing model `name` `version` of `kind` is refused, given the installed models
    /// (a kind nil where unknown), or nil. A new version keeps its name's kind: queries and
    /// scoring take a name's latest version, so a risk warning installed as `enterprise` v3
    /// stopped every grade query about enterprises (found by black-box testing). Validators
    /// apply it, and the tools before anyone approves.
    public static func modelKindChange(name: String, version: UInt32, kind: String,
                                       installed: [(name: String, version: UInt32, kind: String?)]) -> String? {
        guard let latest = installed.filter({ $0.name == name }).max(by: { $0.version < $1.version }),
              let was = latest.kind, was != kind else { return nil }
        return "install_model \(name) version \(version) is a \(kind) model, but \(name) version \(latest.version) is a \(was): "
            + "a new version keeps its name's kind; install it under another name"
    }
}
