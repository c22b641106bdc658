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

    init(_ body: AttestationBody, origin: Hash) {
        category = body.category
        severity = body.severity
        eventDate = body.eventDate
        day = body.eventDate.dayNumber
        industry = body.industry
        let limit = ScoringModel.Limits.value
        attributes = body.attributes.map { Attribute(name: $0.name, value: Swift.min(limit, Swift.max(-limit, $0.value))) }
        repaired = false
        self.origin = origin
    }

    @inline(__always)
    func attribute(_ name: String) -> Int64? {
        for a in attributes where a.name == name { return a.value }
        return nil
    }
}

/// The attribute of a credit-repair fact naming the category it repairs (1-15).
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
        // entry index by the id of every transaction that carries a version of the record
        var slot: [Hash: Int] = [:]
        slot.reserveCapacity(inputs.count)
        var records: [(body: AttestationBody, origin: Hash, revoked: Bool)] = []
        records.reserveCapacity(inputs.count)
        for tx in inputs {
            switch tx.body {
            case .attestation(let a):
                guard a.subject == subject else {
                    throw LedgerError(.invalidValue, "score input \(tx.id.hexString) is about \(a.subject), not \(subject)")
                }
                slot[tx.id] = records.count
                records.append((a, tx.id, false))
            case .amendment(let m):
                guard let i = slot[m.target] else {
                    throw LedgerError(.invalidValue,
                        "score input \(tx.id.hexString) amends \(m.target.hexString), which is not an earlier input about \(subject)")
                }
                slot[tx.id] = i
                if let replacement = m.replacement {
                    guard replacement.subject == subject else {
                        throw LedgerError(.invalidValue, "score input \(tx.id.hexString) corrects a record into one about \(replacement.subject)")
                    }
                    if !records[i].revoked { records[i].body = replacement }
                } else {
                    records[i].revoked = true
                }
            default:
                throw LedgerError(.invalidValue, "score input \(tx.id.hexString) is a \(tx.kind.name), not an attestation or amendment")
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
        self.init(subject: subject, effective: records.lazy.map { ($0.body, $0.origin) }, asOfDate: asOfDate)
    }

    private init(subject: USCC, effective: some Sequence<(AttestationBody, Hash)>, asOfDate: LedgerDate) {
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
