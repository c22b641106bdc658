import LedgerCore

/// One effective record of a subject as a model sees it: the clear metadata of an attestation,
/// or of the latest correction of it (docs/SCORING.md §3).
public struct Fact: Sendable, Equatable {
    public let category: Category
    public let severity: Severity
    public let eventDate: LedgerDate
    /// Days since 1970-01-01 of `eventDate`.
    public let day: Int64
    public let industry: String
    /// Attribute values as read: clamped to ±10^12.
    public let attributes: [Attribute]
    /// Covered by a later credit-repair fact (§3.4).
    public internal(set) var repaired: Bool
    /// Id of the attestation this fact descends from.
    public let origin: Hash

    init(_ m: ScoreRecord.Metadata, origin: Hash) {
        category = m.category
        severity = m.severity
        eventDate = m.eventDate
        day = m.eventDate.dayNumber
        industry = m.industry
        let limit = ScoringModel.Limits.value
        attributes = m.attributes.allSatisfy({ $0.value >= -limit && $0.value <= limit }) ? m.attributes
            : m.attributes.map { Attribute(name: $0.name, value: Swift.min(limit, Swift.max(-limit, $0.value))) }
        repaired = false
        self.origin = origin
    }

    @inline(__always)
    func attribute(_ name: String) -> Int64? {
        for a in attributes where a.name == name { return a.value }
        return nil
    }
}

/// The attribute of a credit-repair fact naming the category it repairs (1-14: any but credit_repair's own 15).
public let repairedCategoryAttribute = "repaired_category"

/// The facts of one subject as of a date, built from its records (docs/SCORING.md §3).
public struct SubjectFacts: Sendable {
    public let subject: USCC
    public let asOfDate: LedgerDate
    public let asOfDay: Int64
    /// Effective, not-future facts in the order of the attestations they descend from.
    public let facts: [Fact]
    /// The subject's industry: from its last registration fact with one, else its last fact with one.
    public let industry: String

    /// Applies amendments in log order: a correction replaces the record it targets, a
    /// revocation removes it. `inputs` must be the subject's records, oldest first.
    public init(subject: USCC, inputs: [Transaction], asOfDate: LedgerDate) throws {
        guard inputs.count <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "\(inputs.count) records for \(subject), limit \(FieldLimits.scoreInputs) per score")
        }
        var records: [ScoreRecord] = []
        records.reserveCapacity(inputs.count)
        for tx in inputs {
            switch tx.body {
            case .attestation(let a):
                guard a.subject == subject else {
                    throw LedgerError(.invalidValue, "score input \(tx.id.hexString) is about \(a.subject), not \(subject)")
                }
            case .amendment(let m):
                if let replacement = m.replacement, replacement.subject != subject {
                    throw LedgerError(.invalidValue, "score input \(tx.id.hexString) corrects a record into one about \(replacement.subject)")
                }
            default:
                throw LedgerError(.invalidValue, "score input \(tx.id.hexString) is \(tx.kind.withArticle), not an attestation or amendment")
            }
            records.append(try ScoreRecord(tx))
        }
        try self.init(subject: subject, records: records, asOfDate: asOfDate)
    }

    /// The same from the records' scoring metadata (the store's subject index keeps it, so a
    /// re-score need not decode whole transactions). The records must be the subject's, oldest first.
    public init(subject: USCC, records inputs: [ScoreRecord], asOfDate: LedgerDate) throws {
        guard inputs.count <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "\(inputs.count) records for \(subject), limit \(FieldLimits.scoreInputs) per score")
        }
        // entry index by the id of every transaction that carries a version of the record
        var slot: [Hash: Int] = [:]
        slot.reserveCapacity(inputs.count)
        var records: [(body: ScoreRecord.Metadata, origin: Hash, revoked: Bool)] = []
        records.reserveCapacity(inputs.count)
        for input in inputs {
            switch input.change {
            case .attestation(let a):
                slot[input.id] = records.count
                records.append((a, input.id, false))
            case .correction(let target, _), .revocation(let target):
                guard let i = slot[target] else {
                    throw LedgerError(.invalidValue,
                        "score input \(input.id.hexString) amends \(target.hexString), which is not an earlier input about \(subject)")
                }
                slot[input.id] = i
                if case .correction(_, let replacement) = input.change {
                    if !records[i].revoked { records[i].body = replacement }
                } else {
                    records[i].revoked = true
                }
            }
        }
        self.init(subject: subject, effective: records.lazy.filter { !$0.revoked }.map { ($0.body, $0.origin) }, asOfDate: asOfDate)
    }

    /// Facts from records that are already effective (no amendments), for offline scoring by
    /// model authors (`credit-node score`). `origin` ids may be anything that names the record.
    public init(subject: USCC, records: [(body: AttestationBody, origin: Hash)], asOfDate: LedgerDate) throws {
        guard records.count <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "\(records.count) records for \(subject), limit \(FieldLimits.scoreInputs) per score")
        }
        for r in records where r.body.subject != subject {
            throw LedgerError(.invalidValue, "record \(r.origin.hexString.prefix(16))… is about \(r.body.subject), not \(subject)")
        }
        self.init(subject: subject, effective: records.lazy.map { (ScoreRecord.Metadata($0.body), $0.origin) }, asOfDate: asOfDate)
    }

    private init(subject: USCC, effective: some Sequence<(ScoreRecord.Metadata, Hash)>, asOfDate: LedgerDate) {
        let asOfDay = asOfDate.dayNumber
        var facts: [Fact] = []
        for (body, origin) in effective where body.eventDate <= asOfDate {
            facts.append(Fact(body, origin: origin))
        }
        // Credit repair: a repair fact covers facts of the category it names dated on or before it.
        var repairs: [(category: UInt8, day: Int64)] = []
        for f in facts where f.category == .creditRepair {
            if let c = f.attribute(repairedCategoryAttribute), (1...15).contains(c), c != Int64(Category.creditRepair.rawValue) {
                repairs.append((UInt8(c), f.day))
            }
        }
        if !repairs.isEmpty {
            for i in facts.indices where repairs.contains(where: { $0.category == facts[i].category.rawValue && facts[i].day <= $0.day }) {
                facts[i].repaired = true
            }
        }
        self.subject = subject
        self.asOfDate = asOfDate
        self.asOfDay = asOfDay
        self.facts = facts
        self.industry = facts.last(where: { $0.category == .registration && !$0.industry.isEmpty })?.industry
            ?? facts.last(where: { !$0.industry.isEmpty })?.industry ?? ""
    }
}

/// One of a subject's records as scoring reads it: the id, what it does (attest, correct,
/// revoke) and the clear metadata — no commitments, envelope or signature. The store's subject
/// index keeps this for every attestation and amendment (FORMAT.md §12.1).
public struct ScoreRecord: Sendable, Equatable {
    /// The clear metadata of an attestation that models read (docs/SCORING.md §3.3).
    public struct Metadata: Sendable, Equatable {
        public let category: Category
        public let severity: Severity
        public let eventDate: LedgerDate
        public let industry: String
        public let attributes: [Attribute]

        public init(category: Category, severity: Severity, eventDate: LedgerDate, industry: String, attributes: [Attribute]) {
            self.category = category; self.severity = severity; self.eventDate = eventDate
            self.industry = industry; self.attributes = attributes
        }

        public init(_ a: AttestationBody) {
            self.init(category: a.category, severity: a.severity, eventDate: a.eventDate, industry: a.industry, attributes: a.attributes)
        }
    }

    public enum Change: Sendable, Equatable {
        case attestation(Metadata)
        case correction(target: Hash, Metadata)
        case revocation(target: Hash)
    }

    /// The transaction id.
    public let id: Hash
    public let change: Change

    public init(id: Hash, change: Change) {
        self.id = id
        self.change = change
    }

    /// The clear metadata of the record this change puts in force (nil for a revocation).
    public var metadata: Metadata? {
        switch change {
        case .attestation(let m), .correction(_, let m): return m
        case .revocation: return nil
        }
    }

    /// The record an amendment corrects or revokes (nil for an attestation).
    public var target: Hash? {
        switch change {
        case .attestation: return nil
        case .correction(let t, _), .revocation(let t): return t
        }
    }

    /// From an attestation or amendment transaction.
    public init(_ tx: Transaction) throws {
        id = tx.id
        switch tx.body {
        case .attestation(let a):
            change = .attestation(Metadata(a))
        case .amendment(let m):
            if let r = m.replacement { change = .correction(target: m.target, Metadata(r)) } else { change = .revocation(target: m.target) }
        default:
            throw LedgerError(.invalidValue, "transaction \(tx.id.hexString) is \(tx.kind.withArticle), not an attestation or amendment")
        }
    }
}

/// A record and where it sits in the log, as the subject index describes it.
public struct LoggedScoreRecord: Sendable, Equatable {
    public let logIndex: UInt64
    public let record: ScoreRecord
    public init(logIndex: UInt64, record: ScoreRecord) {
        self.logIndex = logIndex
        self.record = record
    }
}
