import Foundation
import LedgerCore
import LedgerCrypto
import Scoring

/// What policy evaluation reads, fixed at one ledger height: every method returns state as of
/// log size `logSize` only, so the same height gives the same answer on every node.
public protocol PolicyFacts {
    var height: UInt64 { get }
    var logSize: UInt64 { get }
    /// The date (China Standard Time) of the block at `height`: "now" for time windows.
    var asOfDate: LedgerDate { get }
    /// Models installed at `height` (genesis and governance).
    func models() -> [InstalledModel]
    /// Policies installed at `height`, for naming them in query logs.
    func policy(hash: Hash) -> InstalledPolicy?
    /// The subject's attestations and amendments, oldest first, at most `limit`: their clear
    /// metadata from the subject index, without reading the transactions.
    func records(of subject: USCC, limit: Int) throws -> [LoggedScoreRecord]
    /// The transaction at a log index below `logSize` (one `records` named).
    func transaction(at logIndex: UInt64) throws -> LoggedTransaction
    /// The subject's newest score update for which `matches` is true, looking at no more than
    /// `limit` of its score updates, newest first; each is read only when reached.
    func newestScoreUpdate(of subject: USCC, limit: Int, where matches: (LoggedTransaction) throws -> Bool) throws -> LoggedTransaction?
    /// The newest `limit` consent grants and revocations about the subject naming `grantee`,
    /// oldest first. The newest, so that a revocation (always later than its grant) is never cut
    /// off by older ones; by grantee, so that other members' consents cannot crowd them out.
    func consents(of subject: USCC, grantee: String, limit: Int) throws -> [LoggedTransaction]
    /// The timestamp (ms) of the block holding `transaction` (below `logSize`): when a consent
    /// grant was recorded, from which its term runs (`ConsentStanding.endMillis`).
    func blockTimestamp(holding transaction: LoggedTransaction) throws -> UInt64
    /// Whether this node can decrypt payloads (it holds a custodian's key). A policy with an
    /// output that reads them is refused `not_custodian_node` on any other node, for every subject.
    var readsPayloads: Bool { get }
    /// The decrypted raw payload of a record; nil when shredded. Throws `PolicyRefusal(.notCustodianNode)`
    /// on a node that holds no custodian key, and `PayloadUnreadable` when the envelope does not
    /// open to the committed payload (validators cannot decrypt, so an issuer can commit such a record)
    /// or has not reached this node yet (a catch-up block whose server stripped it).
    func payload(of record: LoggedTransaction) throws -> [UInt8]?
    /// Latest grade, industry and division of every subject scored under scorecard `model` (any version), at most `limit` + 1.
    func gradeCells(model: String, limit: Int) throws -> [GradeCell]
    /// Query records about the subject below log index `before` (nil: the whole log at this
    /// height), newest first, at most `limit`.
    func queryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction]
    /// The newest `limit` query records about `subject` below log index `before` (nil: the
    /// whole log) that show their requester asking (those that use up their request's nonce),
    /// newest first.
    func confirmedQueryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction]
    /// The masked name read from the registration record at `logIndex`: `compute()`, or what an
    /// earlier call computed while that record's payload was still readable.
    func maskedName(registrationAt logIndex: UInt64, compute: () throws -> String) throws -> String
}

public extension PolicyFacts {
    func maskedName(registrationAt logIndex: UInt64, compute: () throws -> String) throws -> String { try compute() }
}

public struct GradeCell: Sendable, Equatable {
    public let subject: USCC
    public let industry: String
    public let grade: Grade
    public init(subject: USCC, industry: String, grade: Grade) {
        self.subject = subject; self.industry = industry; self.grade = grade
    }
}

/// The finest cell an aggregate counts: a subject's industry and its district (USCC
/// characters 3–8). A subject with no industry on record is in the cell of industry "".
struct FineCell: Hashable {
    let industry: String
    let district: String
    init(_ c: GradeCell) { industry = c.industry; district = c.subject.divisionCode }
}

/// A refusal: a stable code (docs/PRIVACY.md §6) and a sentence for people.
public struct PolicyRefusal: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, CaseIterable {
        case badSignature = "bad_signature"
        case unknownRequester = "unknown_requester"
        case wrongChain = "wrong_chain"
        case replayedRequest = "replayed_request"
        case outsideTimeWindow = "outside_time_window"
        case unknownPolicy = "unknown_policy"
        case wrongRole = "wrong_role"
        case purposeNotAllowed = "purpose_not_allowed"
        case noConsent = "no_consent"
        case consentExpired = "consent_expired"
        case consentRevoked = "consent_revoked"
        case invalidParameters = "invalid_parameters"
        case parametersTooLarge = "parameters_too_large"
        case invalidUSCC = "invalid_uscc"
        case unknownSubject = "unknown_subject"
        case noScore = "no_score"
        case cellUnderK = "cell_under_k"
        case costLimit = "cost_limit"
        case notCustodianNode = "not_custodian_node"
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "\(code.rawValue): \(message)" }
}

/// A query as the engine sees it, after the node checked the signature and replay guard.
public struct PolicyQuery: Sendable {
    public let requester: Member
    public let subject: USCC?
    public let purpose: QueryPurpose
    public let parameters: [(name: String, value: String)]
    public let requestedAtMillis: UInt64
    /// The answering node's clock (injected), when later than the request's signed time: a
    /// consent must also stand then. A request may be signed up to 300 s before it arrives, and
    /// a consent that expired meanwhile does not answer it. Validators check the audit record
    /// against the signed time alone, which this only makes stricter.
    public let answeredAtMillis: UInt64?
    public init(requester: Member, subject: USCC?, purpose: QueryPurpose, parameters: [(name: String, value: String)], requestedAtMillis: UInt64,
                answeredAtMillis: UInt64? = nil) {
        self.requester = requester; self.subject = subject; self.purpose = purpose
        self.parameters = parameters; self.requestedAtMillis = requestedAtMillis; self.answeredAtMillis = answeredAtMillis
    }
}

/// An answer: the canonical result text (its salted hash goes on the ledger,
/// `AnswerReceipt.resultHash`) and the ledger facts it used.
public struct PolicyAnswer: Sendable {
    public let result: String
    /// The consent grant relied on, if any.
    public let consent: LoggedTransaction?
    /// The score update used, if any.
    public let score: LoggedTransaction?
    /// Records that set a flag or a refusal reason (at most 16), for inclusion proofs.
    public let records: [LoggedTransaction]
}

/// Evaluates policies. Pure: the same policy, query and facts give the same answer.
public struct PolicyEngine: Sendable {
    public static let maxParameterBytes = 64
    let scoring: ScoreEngine

    public init(genesis: Genesis) { scoring = ScoreEngine(genesis: genesis) }

    /// Checks the caller, purpose, parameters and consent, then computes the outputs.
    /// Throws `PolicyRefusal` with the reason when the query may not be answered.
    public func evaluate(_ policy: PolicyDocument, _ query: PolicyQuery, facts: some PolicyFacts) throws -> PolicyAnswer {
        guard policy.allows(query.requester) else {
            let roles = query.requester.roles.map(\.rawValue).sorted().joined(separator: ", ")
            throw PolicyRefusal(.wrongRole, "\(query.requester.id) (roles: \(roles)) may not call \(policy.name); it is for \(describeCallers(policy))")
        }
        guard policy.purposes.contains(query.purpose) else {
            throw PolicyRefusal(.purposeNotAllowed, "\(policy.name) answers for \(policy.purposes.map(\.name).joined(separator: ", ")), not \(query.purpose.name)")
        }
        let params = try checkParameters(policy, query.parameters)
        var out = CanonicalJSON.Object()
        out["policy"] = .string(policy.name)
        out["version"] = .int(Int64(policy.version))
        out["as_of_height"] = .int(Int64(facts.height))
        out["purpose"] = .string(query.purpose.name)
        switch policy.scope {
        case .subject:
            guard let subject = query.subject else { throw PolicyRefusal(.invalidParameters, "\(policy.name) needs a subject (USCC)") }
            out["subject"] = .string(subject.code)
            return try evaluateSubject(policy, query, subject: subject, params: params, facts: facts, into: out)
        case .aggregate:
            var fields = CanonicalJSON.Object()
            try evaluateAggregate(policy, params: params, facts: facts, into: &fields)
            out["fields"] = .object(fields)
            return PolicyAnswer(result: CanonicalJSON.render(.object(out)), consent: nil, score: nil, records: [])
        case .subjectQueries:
            guard let subject = query.subject else { throw PolicyRefusal(.invalidParameters, "\(policy.name) needs a subject (USCC)") }
            out["subject"] = .string(subject.code)
            var fields = CanonicalJSON.Object()
            for (name, output) in policy.outputs {
                switch output {
                case .queryLog(let limit, let pageParameter):
                    // Checked as an integer parameter (checkParameters) before evaluation.
                    let before = pageParameter.flatMap { params[$0] }.flatMap { UInt64($0) }
                    let (rows, notListed) = try queryLog(subject, limit: limit, before: before, paged: pageParameter != nil, facts: facts)
                    fields[name] = rows
                    fields[PolicyDocument.Output.notListed(name)] = notListed
                case .asOfHeight: fields[name] = .int(Int64(facts.height))
                default: break
                }
            }
            out["fields"] = .object(fields)
            return PolicyAnswer(result: CanonicalJSON.render(.object(out)), consent: nil, score: nil, records: [])
        }
    }

    func describeCallers(_ p: PolicyDocument) -> String {
        let parts = p.callerRoles.map { "role \($0.rawValue)" }.sorted() + p.callerMembers.sorted().map { "member \($0)" }
        return parts.joined(separator: ", ")
    }

    func checkParameters(_ policy: PolicyDocument, _ given: [(name: String, value: String)]) throws -> [String: String] {
        try PolicyDocument.checkParameters(given, against: policy.parameters, policy: policy.name)
    }

    // MARK: Subject policies

    func evaluateSubject(_ policy: PolicyDocument, _ query: PolicyQuery, subject: USCC, params: [String: String],
                         facts: some PolicyFacts, into base: CanonicalJSON.Object) throws -> PolicyAnswer {
        // A node that cannot decrypt payloads refuses a policy that reads them whatever the
        // subject: refusing only where a registration record is there to read, and answering an
        // empty masked name elsewhere, told the caller which subjects are registered (found in
        // review, 2026-12-06).
        if !facts.readsPayloads, policy.outputs.contains(where: { $0.output.readsPayloads }) {
            throw PolicyRefusal(.notCustodianNode, "\(policy.name) reads payloads, and this node holds no custodian key to decrypt them; ask a custodian's node")
        }
        // Consent first: a caller without it learns nothing about the subject, not even whether
        // anything about it is on the ledger or how much.
        var consent: LoggedTransaction? = nil
        if policy.consentRequired {
            consent = try findConsent(subject: subject, query: query, facts: facts)
        }
        let all = try facts.records(of: subject, limit: policy.maxRecords + 1)
        guard all.count <= policy.maxRecords else {
            throw PolicyRefusal(.costLimit, "\(subject) has more than \(policy.maxRecords) records, the most \(policy.name) reads")
        }
        guard try !all.isEmpty || facts.newestScoreUpdate(of: subject, limit: 1, where: { _ in true }) != nil else {
            throw PolicyRefusal(.unknownSubject, "no record about \(subject) is on the ledger at height \(facts.height)")
        }
        let active = activeRecords(all)
        var score: (LoggedTransaction, ScoreUpdateBody, InstalledModel)? = nil
        if policy.outputs.contains(where: { $0.output.needsScore }) {
            do {
                // A score update covers at most FieldLimits.scoreInputs records (format v1). Past
                // that, the newest score leaves later records out, whoever wrote them (a member
                // flooding a subject with records could otherwise freeze its grade before a penalty):
                // no grade is better than one that hides records.
                guard all.count <= FieldLimits.scoreInputs else {
                    throw PolicyRefusal(.noScore, "\(subject) holds more than \(FieldLimits.scoreInputs) records, more than a score update covers, "
                                        + "so no score reflects all of them; the records are on the ledger for the bureaus to review (full-profile)")
                }
                score = try latestScore(subject: subject, modelName: params["model"], facts: facts)
            } catch let refusal as PolicyRefusal where refusal.code == .noScore && policy.returnsRaw {
                // A custodian's review (a policy that returns the records themselves) still answers,
                // with null score outputs: the subjects no score covers (flooded, or not yet scored)
                // are the ones it most needs to read.
                score = nil
            }
        }
        var used: [UInt64] = []
        var fields = CanonicalJSON.Object()
        for (name, output) in policy.outputs {
            switch output {
            case .maskedName:
                fields[name] = .string(try maskedName(active, facts: facts))
            case let o where o.needsScore && score == nil:
                fields[name] = .null
            case .grade, .scoreBand, .creditLine:
                fields[name] = Self.scoreOutput(output, score!.1)!
            case .model:
                fields[name] = .object(["name": .string(score!.2.name), "version": .int(Int64(score!.2.version)),
                                        "sha256": .string(score!.2.hash.hexString)])
            case .asOfHeight:
                fields[name] = .int(Int64(facts.height))
            case .eligibility(let rule):
                var reasons: [String] = []
                let s = score!.1
                if s.grade > rule.minGrade { reasons.append(Self.gradeBelowCode(rule.minGrade)) }
                for c in rule.denyCategories {
                    // Read as flags and counts read records (`matching`: dated on or before the
                    // as-of date): a listing dated in the future refused the loan while risk-flags
                    // said "false" and the score had no veto (found by black-box testing, 2026-12-07).
                    let hits = matching(active, [c], window: nil, minSeverity: .none, facts: facts)
                    if !hits.isEmpty { reasons.append("listed_\(c.name)"); used.append(contentsOf: hits.map(\.logIndex)) }
                }
                var line: Int64? = nil
                if let l = rule.line {
                    line = reasons.isEmpty ? Self.creditLine(l, points: Int64(s.points), grade: s.grade) : 0
                }
                if let requested = params["amount_yuan"].flatMap(Int64.init), let line, reasons.isEmpty, requested > line {
                    reasons.append("amount_above_line")
                }
                var o: CanonicalJSON.Object = ["eligible": .bool(reasons.isEmpty), "reason_codes": .array(reasons.map { .string($0) })]
                if let line { o["credit_line_yuan"] = .int(line) }
                fields[name] = .object(o)
            case .flag(let categories, let window, let minSeverity):
                let hits = matching(active, categories, window: window, minSeverity: minSeverity, facts: facts)
                used.append(contentsOf: hits.map(\.logIndex))
                fields[name] = .bool(!hits.isEmpty)
            case .bucketedCount(let categories, let window, let bounds, let minSeverity):
                let n = Int64(matching(active, categories, window: window, minSeverity: minSeverity, facts: facts).count)
                fields[name] = .string(bucket(n, bounds))
            case .records(let limit):
                // Installation admits this output only for custodian callers; checked again here.
                guard query.requester.has(.custodian) else {
                    throw PolicyRefusal(.wrongRole, "raw records are for custodians; \(query.requester.id) is not one")
                }
                var list: [CanonicalJSON.Value] = []
                for r in active.suffix(limit) {
                    let logged = try facts.transaction(at: r.logIndex)
                    var o: CanonicalJSON.Object = [
                        "id": .string(r.id.hexString), "category": .string(r.record.category.name),
                        "severity": .string(r.record.severity.name), "event_date": .string(r.record.eventDate.description),
                        "issuer": .string(logged.transaction.header.signer), "log_index": .int(Int64(r.logIndex)),
                        "versions": .array(r.versions.map { .string($0.hexString) }),
                    ]
                    do {
                        if let payload = try facts.payload(of: logged) {
                            o["payload"] = .string(String(decoding: payload, as: UTF8.self))
                        } else {
                            o["payload"] = .null
                            o["shredded"] = .bool(true)
                        }
                    } catch is PayloadUnreadable {
                        o["payload"] = .null
                        o["unreadable"] = .bool(true)
                    }
                    list.append(.object(o))
                }
                fields[name] = .array(list)
            case .subjectCount, .gradeDistribution, .queryLog:
                break // not available in a subject policy (refused at installation)
            }
        }
        var out = base
        out["fields"] = .object(fields)
        if let consent { out["consent"] = .string(consent.transaction.id.hexString) }
        var seen = Set<UInt64>()
        let records = try used.filter { seen.insert($0).inserted }.prefix(AnswerReceipt.maxRecordFacts).map { try facts.transaction(at: $0) }
        return PolicyAnswer(result: CanonicalJSON.render(.object(out)), consent: consent, score: score?.0, records: records)
    }

    /// The newest unexpired, unrevoked grant to the requester for the query's purpose.
    /// A revocation ends the grant it names and every earlier grant to the same bank for the
    /// same purpose: a subject revoking means "stop", and a second grant (a retry, a renewal)
    /// must not keep answering. A grant recorded after the revocation is a new consent.
    func findConsent(subject: USCC, query: PolicyQuery, facts: some PolicyFacts) throws -> LoggedTransaction {
        guard let purpose = query.purpose.consentPurpose else {
            throw PolicyRefusal(.purposeNotAllowed, "purpose \(query.purpose.name) is not one a subject consents to")
        }
        let list = try facts.consents(of: subject, grantee: query.requester.id, limit: ConsentStanding.window)
        let revokedBefore = ConsentStanding.revokedBefore(list)
        var sawGrant = false, sawExpired = false, sawRevoked = false
        for l in list.reversed() {
            guard case .consent(let c) = l.transaction.body, c.action == .grant, c.grantee == query.requester.id,
                  c.purpose == purpose else { continue }
            sawGrant = true
            // Chosen by the signed time alone, as validators check it: the answer (which names
            // the consent) is then the same on every node and on a re-run at its height. It was
            // chosen at the later of that and the node's clock, so a node that got the request
            // late could name an older grant than the rule gives (found in review, 2026-12-06).
            var recordedAt: UInt64? = nil
            let verdict = try ConsentStanding.verdict(of: c, at: l.logIndex, recordedAtMillis: {
                let millis = try facts.blockTimestamp(holding: l)
                recordedAt = millis
                return millis
            }, revokedBefore: revokedBefore, requestedAtMillis: query.requestedAtMillis)
            switch verdict {
            case .revoked: sawRevoked = true
            case .expired: sawExpired = true
            case .stands:
                // It must stand when the node answers as well.
                if let answeredAt = query.answeredAtMillis, let recordedAt, ConsentStanding.endMillis(of: c, recordedAtMillis: recordedAt) <= answeredAt {
                    throw PolicyRefusal(.consentExpired, "\(subject)'s consent to \(query.requester.id) for \(purpose.name) expired after the request was signed, before this node answered it; a new request is answered only under a consent that stands then (have a new consent recorded first, unless one was since)")
                }
                return l
            }
        }
        if sawRevoked && !sawExpired { throw PolicyRefusal(.consentRevoked, "\(subject) revoked its consent to \(query.requester.id) for \(purpose.name)") }
        if sawExpired { throw PolicyRefusal(.consentExpired, "\(subject)'s consent to \(query.requester.id) for \(purpose.name) has expired") }
        _ = sawGrant
        throw PolicyRefusal(.noConsent, "\(subject) has not consented to \(query.requester.id) querying it for \(purpose.name)")
    }

    struct Active {
        let logIndex: UInt64
        let id: Hash
        let record: ScoreRecord.Metadata
        /// Ids of every version of the record, the original first (what an erasure names).
        var versions: [Hash] = []
    }

    /// The effective version of each record, by scoring's rule (`SubjectFacts`, docs/SCORING.md
    /// §3.2): amendments apply to the record their target is a version of; a correction replaces
    /// it unless it was revoked, and a revocation ends it for good. `all` is oldest first. In log
    /// order of the versions kept. Found in review (2026-12-06): policies counted a correction
    /// made after its record was revoked, both of two corrections of one record, and a correction
    /// whose original was revoked afterwards, where scores count none, one and none.
    func activeRecords(_ all: [LoggedScoreRecord]) -> [Active] {
        var slot: [HashKey: Int] = [:]                          // id of every version → record
        var records: [(version: Active?, revoked: Bool, versions: [Hash])] = []
        for l in all {
            if let target = l.record.target {
                guard let i = slot[HashKey(target)] else { continue }   // not an earlier record about the subject
                slot[HashKey(l.record.id)] = i
                guard !records[i].revoked else { continue }
                if let m = l.record.metadata {
                    records[i].version = Active(logIndex: l.logIndex, id: l.record.id, record: m)
                    records[i].versions.append(l.record.id)
                } else {
                    records[i].version = nil
                    records[i].revoked = true
                }
            } else if let m = l.record.metadata {
                slot[HashKey(l.record.id)] = records.count
                records.append((Active(logIndex: l.logIndex, id: l.record.id, record: m), false, [l.record.id]))
            }
        }
        return records.compactMap { r in r.version.map { var v = $0; v.versions = r.versions; return v } }.sorted { $0.logIndex < $1.logIndex }
    }

    func matching(_ active: [Active], _ categories: [Category], window: Int64?, minSeverity: Severity, facts: some PolicyFacts) -> [Active] {
        let cutoff = window.map { Self.monthsBefore(facts.asOfDate, $0) }
        return active.filter { a in
            categories.contains(a.record.category) && a.record.severity.rawValue >= minSeverity.rawValue
                && (cutoff.map { a.record.eventDate.dayNumber > $0 } ?? true) && a.record.eventDate <= facts.asOfDate
        }
    }

    /// Day number of the date `months` calendar months before `date` (day clamped to the month's length).
    static func monthsBefore(_ date: LedgerDate, _ months: Int64) -> Int64 {
        let y = Int64(date.value / 10000), m = Int64(date.value / 100 % 100), d = Int64(date.value % 100)
        let total = y * 12 + (m - 1) - months
        let ny = total / 12, nm = total % 12 + 1
        let nextFirst = nm == 12 ? CivilCalendar.days(year: ny + 1, month: 1, day: 1) : CivilCalendar.days(year: ny, month: nm + 1, day: 1)
        let length = nextFirst - CivilCalendar.days(year: ny, month: nm, day: 1)
        return CivilCalendar.days(year: ny, month: nm, day: min(d, length))
    }

    func bucket(_ n: Int64, _ bounds: [Int64]) -> String {
        if n < bounds[0] { return n == 0 && bounds[0] == 1 ? "0" : "0-\(bounds[0] - 1)" }
        for (i, b) in bounds.enumerated() {
            let next = i + 1 < bounds.count ? bounds[i + 1] : nil
            if let next, n >= next { continue }
            guard let next else { return "\(b)+" }
            return next - 1 == b ? "\(b)" : "\(b)-\(next - 1)"
        }
        return "\(bounds.last!)+"
    }

    /// What a grade, score-band or credit-line output says of a score update; nil for any other
    /// output. The one rule for the answer and for the receipt check (`PolicyRules.checkScoreOutputs`).
    static func scoreOutput(_ output: PolicyDocument.Output, _ s: ScoreUpdateBody) -> CanonicalJSON.Value? {
        switch output {
        case .grade:
            return .string(s.grade.name)
        case .scoreBand(let width):
            let low = floorDiv(Int64(s.points), width) * width
            return .string("\(low)-\(low + width - 1)")
        case .creditLine(let rule):
            return .int(creditLine(rule, points: Int64(s.points), grade: s.grade))
        default:
            return nil
        }
    }

    static func creditLine(_ rule: PolicyDocument.CreditLine, points: Int64, grade: Grade) -> Int64 {
        guard grade <= rule.minGrade else { return 0 }
        let steps = max(0, floorDiv(points - rule.basePoints, rule.stepPoints))
        let cap = rule.gradeCaps[grade] ?? rule.capYuan
        let (amount, overflow) = steps.multipliedReportingOverflow(by: rule.stepYuan)
        return overflow ? cap : min(cap, amount)
    }

    /// The reason code of an eligibility decision for a grade below `minGrade`.
    static func gradeBelowCode(_ minGrade: Grade) -> String { "grade_below_\(minGrade.name.replacingOccurrences(of: "+", with: "plus"))" }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// The most score updates a subject policy looks through for the newest one under its model
    /// (a subject is scored under several models: a scorecard, its later versions, the risk model).
    public static let scoreUpdatesRead = 64

    /// The latest score update under the named scorecard (any version), or under the latest
    /// scorecard that applies to the subject's kind.
    func latestScore(subject: USCC, modelName: String?, facts: some PolicyFacts) throws -> (LoggedTransaction, ScoreUpdateBody, InstalledModel) {
        let models = facts.models()
        let byHash = Dictionary(models.map { ($0.hash, $0) }, uniquingKeysWith: { a, _ in a })
        var name = modelName
        if let n = name {
            // Grades, bands, credit lines and eligibility read scorecard points: a risk model's
            // points are a probability of default (found in review: a riskier subject got a
            // larger credit line).
            try requireScorecard(named: n, among: models, for: "grades, score bands and credit lines")
        } else if let kind = subject.subjectKind {
            name = scoring.scorecard(for: kind, among: models)?.name
        }
        // No scorecard resolved (none installed for the subject's kind, or its latest version does
        // not parse): no grade, rather than one read from whatever model scored the subject last,
        // a risk model's probability of default among them (found in review, 2026-12-06).
        guard let scorecard = name else {
            throw PolicyRefusal(.noScore, "no scorecard for \(subject)'s kind of business is installed at height \(facts.height)")
        }
        // The freshest (`ScoreUpdateBody.isFresher`), not the last committed: an update made from
        // an older state (delayed, say, while a re-score ran) can commit after one made from a
        // newer state, and must not hide the records the newer one covers; of equally fresh ones,
        // the latest in the log. Updates are visited newest in the log first; one placed before
        // the best's as-of was made from an older state still (an update's as-of never passes its
        // own place in the log), so the search stops there.
        var best: (LoggedTransaction, ScoreUpdateBody, InstalledModel)? = nil
        _ = try facts.newestScoreUpdate(of: subject, limit: Self.scoreUpdatesRead) { l in
            if let b = best, l.logIndex < b.1.asOfLogSize { return true }
            guard case .scoreUpdate(let s) = l.transaction.body, let m = byHash[s.modelHash], m.name == scorecard else { return false }
            if best.map({ s.isFresher(than: $0.1, model: m, otherModel: $0.2) }) ?? true { best = (l, s, m) }
            return false
        }
        if let best { return best }
        throw PolicyRefusal(.noScore, "\(subject) has no score under \(scorecard) at height \(facts.height)")
    }

    func maskedName(_ active: [Active], facts: some PolicyFacts) throws -> String {
        guard let reg = active.last(where: { $0.record.category == .registration }) else { return "" }
        return try facts.maskedName(registrationAt: reg.logIndex) {
            let payload: [UInt8]?
            do { payload = try facts.payload(of: try facts.transaction(at: reg.logIndex)) } catch is PayloadUnreadable { return "" }
            guard let payload, case .object(let pairs)? = try? StrictJSONParser.parse(payload),
                  case .string(let name)? = pairs.first(where: { $0.key == "name" })?.value else { return "" }
            return Self.mask(name)
        }
    }

    /// The payload of a record whose envelope does not open to what it committed to, or has not
    /// reached this node yet (a catch-up block that lacked it): the answer
    /// names nobody (masked name) or marks the record unreadable (records), rather than failing.
    public struct PayloadUnreadable: Error, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { "payload unreadable: \(reason)" }
    }

    /// Keeps the first character and, for names of six or more, the last two; whatever is between
    /// becomes "**" whatever its length, so the mask tells nothing of it. It used to give one '*'
    /// per hidden character, so the length always showed, and a four-character personal name kept
    /// three of its four (欧阳娜娜 → 欧*娜娜; an individual business often bears its owner's
    /// name). A name of one character is "**". White space (ASCII or ideographic) is dropped
    /// first: padding pushed a three-character personal name past six and showed its last
    /// character ("  张三丰 " → " **丰 "; found by black-box testing, 2026-12-07).
    public static func mask(_ name: String) -> String {
        // Invisible format characters (a byte-order mark, zero-width spaces) likewise (found in review).
        let chars = Array(name.filter { c in !c.isWhitespace && !c.unicodeScalars.allSatisfy { $0.properties.generalCategory == .format } })
        switch chars.count {
        case 0: return ""
        case 1: return "**"
        case 2...5: return String(chars[0]) + "**"
        default: return String(chars[0]) + "**" + String(chars[(chars.count - 2)...])
        }
    }

    // MARK: Aggregates and query logs

    /// A model parameter names an installed model whose latest version is a scorecard, or the
    /// query is refused `invalid_parameters`; `use` says what needs a scorecard.
    func requireScorecard(named name: String, among models: [InstalledModel], for use: String) throws {
        guard let latest = models.filter({ $0.name == name }).max(by: { $0.version < $1.version }) else {
            throw PolicyRefusal(.invalidParameters, "no scoring model named \"\(name)\" is installed")
        }
        guard (try? scoring.model(latest))?.kind == .scorecard else {
            throw PolicyRefusal(.invalidParameters, "model \"\(name)\" is not a scorecard; \(use) come from scorecards")
        }
    }

    func evaluateAggregate(_ policy: PolicyDocument, params: [String: String], facts: some PolicyFacts, into fields: inout CanonicalJSON.Object) throws {
        guard let model = params["model"] else { throw PolicyRefusal(.invalidParameters, "\(policy.name) needs parameter \"model\"") }
        // A grade distribution is over scorecard grades; a risk model's subjects have none, and
        // were answered `cell_under_k` as if there were too few of them (found by black-box testing).
        try requireScorecard(named: model, among: facts.models(), for: "grade distributions")
        let cells = try facts.gradeCells(model: model, limit: policy.maxRecords)
        guard cells.count <= policy.maxRecords else {
            throw PolicyRefusal(.costLimit, "more than \(policy.maxRecords) subjects are scored under \(model), the most \(policy.name) reads")
        }
        // Every number is a sum over fine cells (industry × district) of at least k subjects. A
        // smaller fine cell is left out of every answer, so the difference of two answers (a
        // district and that district in one industry, say) is again such a sum and never isolates
        // a small group. Sizes are counted per fine cell first; order does not matter.
        let k = policy.minCellSubjects
        let fine = cells.map(FineCell.init)
        var fineCellSizes: [FineCell: Int] = [:]
        for f in fine { fineCellSizes[f, default: 0] += 1 }
        let industry = params["industry"], district = params["district"]
        let cell = zip(cells, fine).filter { _, f in
            (industry.map { f.industry == $0 } ?? true) && (district.map { f.district == $0 } ?? true) && fineCellSizes[f, default: 0] >= k
        }.map(\.0)
        // The cell is empty or holds at least k, since each fine cell kept does.
        guard cell.count >= k else {
            // Nothing about the cell's size is told, nor how many subjects were left out.
            throw PolicyRefusal(.cellUnderK, "the cell (industry \(industry ?? "any"), district \(district ?? "any")) contains no industry-and-district cell of at least \(k) subjects; smaller ones are left out of every answer")
        }
        for (name, output) in policy.outputs {
            switch output {
            case .subjectCount: fields[name] = .int(Int64(cell.count))
            case .gradeDistribution:
                var d = CanonicalJSON.Object()
                for g in Grade.allCases { d[g.name] = .int(Int64(cell.filter { $0.grade == g }.count)) }
                fields[name] = .object(d)
            case .asOfHeight: fields[name] = .int(Int64(facts.height))
            case .model: fields[name] = .string(model)
            default: break
            }
        }
    }

    /// The subject's query log, newest first: who asked, under which policy, why, when, and
    /// the outcome. Anyone can have a refusal recorded about any subject: by sending a request
    /// that does not verify (refused `bad_signature`, naming whom it claims), or a copy of a
    /// genuine one again, late (`outside_time_window`) or twice (`replayed_request`). The log
    /// listed the newest `limit` records whatever they were, and a flood of such refusals pushed
    /// every real query out of it (found by black-box testing). So the rows are the newest
    /// `limit` records that show their requester asking (answers, and refusals of fresh signed
    /// requests: those that use up the request's nonce, read from their own index), except that
    /// up to a tenth of the rows go to the newest of the other refusals, if any are among the
    /// newest `limit` records; those rows say `"requester_confirmed": false`. Beside the rows,
    /// `<name>/not_listed` says whether older confirmed records exist and how many other
    /// refusals among the newest `limit` records were left out. At most 2 · `limit` + 1 records
    /// are read.
    ///
    /// A policy that pages its log (`paged`, the output's `before` parameter) lists only records
    /// below log index `before`, and `not_listed` then also gives `next_before`: the log index of
    /// the oldest confirmed row listed, to pass as `before` for the next page (null on the last).
    /// A member's own signed requests, refused and recorded, confirm rows; a burst of them about
    /// a subject pushed every earlier answer past the newest `limit` rows, out of the subject's
    /// reach (found in review, 2026-12-07). Paging reaches every record, `limit` at a time.
    func queryLog(_ subject: USCC, limit: Int, before: UInt64?, paged: Bool,
                  facts: some PolicyFacts) throws -> (rows: CanonicalJSON.Value, notListed: CanonicalJSON.Value) {
        func confirmed(_ l: LoggedTransaction) -> Bool {
            if case .queryRecord(let q) = l.transaction.body { return q.spentRequestNonce != nil }
            return false
        }
        let unconfirmed = try facts.queryLog(of: subject, before: before, limit: limit).filter { !confirmed($0) }
        // A tenth of the rows, none below 10 (one row of a log of 1-9 would let one forged
        // refusal push out a real query; found in review).
        var shown = Array(unconfirmed.prefix(limit / 10))
        let asking = try facts.confirmedQueryLog(of: subject, before: before, limit: limit + 1)
        let kept = Array(asking.prefix(limit - shown.count))
        let older = asking.count > kept.count
        // The other refusals this page accounts for, shown or counted.
        var accounted = unconfirmed
        if paged, older, let floor = kept.last?.logIndex {
            // The next page lists what is below `floor`: a refusal shown here from below it would
            // be shown again there (found in review). It waits for that page, and is counted
            // there, not here, so that counts add up over the pages; its row here stays empty.
            shown.removeAll { $0.logIndex < floor }
            accounted.removeAll { $0.logIndex < floor }
        }
        var list: [CanonicalJSON.Value] = []
        for l in (kept + shown).sorted(by: { $0.logIndex > $1.logIndex }) {
            guard case .queryRecord(let q) = l.transaction.body else { continue }
            let policy = facts.policy(hash: q.policy)
            var o: CanonicalJSON.Object = [
                "requester": .string(q.requester), "purpose": .string(q.purpose.name),
                "policy": .string(policy.map { "\($0.name)@\($0.version)" } ?? "unknown"),
                "requested_at_ms": .int(Int64(clamping: q.requestedAtMillis)),   // at most 9999-12-31 on a valid chain
                "outcome": .string(q.outcome == .answered ? "answered" : "refused"),
                "answered_by": .string(l.transaction.header.signer), "audit_record": .string(l.transaction.id.hexString),
                "requester_confirmed": .bool(q.spentRequestNonce != nil),
            ]
            if !q.reason.isEmpty { o["reason"] = .string(q.reason) }
            list.append(.object(o))
        }
        var notListed: CanonicalJSON.Object = [
            "older_confirmed_queries": .bool(older),
            "unconfirmed_refusals": .int(Int64(accounted.count - shown.count)),
        ]
        if paged {
            notListed["next_before"] = older ? kept.last.map { .int(Int64(clamping: $0.logIndex)) } ?? .null : .null
        }
        return (.array(list), .object(notListed))
    }
}

extension PolicyEngine {
    /// The `next_before` an answer's paged query log states (`<output>/not_listed`): where the
    /// next page starts, when older records are left for it; nil otherwise, or for any other
    /// answer. For tools, which tell their user how to ask for that page.
    public static func nextBefore(inResult result: String) -> UInt64? {
        // Decoded, not read through JSONSerialization, whose numbers on Linux also answer as Bool.
        struct Result: Decodable { let fields: [String: Field] }
        struct Field: Decodable {
            let nextBefore: UInt64?
            enum Keys: String, CodingKey { case nextBefore = "next_before" }
            init(from decoder: Decoder) throws {
                nextBefore = (try? decoder.container(keyedBy: Keys.self)).flatMap { try? $0.decodeIfPresent(UInt64.self, forKey: .nextBefore) }
            }
        }
        guard let fields = try? JSONDecoder().decode(Result.self, from: Data(result.utf8)).fields else { return nil }
        return fields.filter { $0.key.hasSuffix("/not_listed") }.values.lazy.compactMap(\.nextBefore).first
    }
}

/// Canonical JSON for results: object keys sorted by their UTF-8 bytes, no whitespace, integers
/// only, strings with only `"` `\` and control characters escaped. Its SHA-256 is the result hash.
public enum CanonicalJSON {
    public typealias Object = [String: Value]
    public indirect enum Value: Sendable, Equatable {
        case string(String), int(Int64), bool(Bool), null, array([Value]), object([String: Value])
    }

    public static func render(_ v: Value) -> String {
        var out = ""
        write(v, &out)
        return out
    }

    static func write(_ v: Value, _ out: inout String) {
        switch v {
        case .string(let s): string(s, &out)
        case .int(let i): out += String(i)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() { if i > 0 { out += "," }; write(e, &out) }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, value)) in o.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).enumerated() {
                if i > 0 { out += "," }
                string(k, &out)
                out += ":"
                write(value, &out)
            }
            out += "}"
        }
    }

    static func string(_ s: String, _ out: inout String) {
        out += "\""
        // Most strings need no escape: copied whole.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += s
            out += "\""
            return
        }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
