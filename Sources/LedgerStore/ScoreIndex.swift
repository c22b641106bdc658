import Foundation
import LedgerCore
import LedgerStorage
import Scoring

/// The scoring metadata in the subject index (FORMAT.md §12.1). Each attestation or amendment's
/// entry in `subjects` holds, after the kind byte, what scoring reads of it: its id, what it
/// does and the clear metadata. It is written in the block's synced batch from the committed
/// transaction itself, so a re-score reads a subject's inputs in one iterator pass with no
/// point reads and no transaction decoding (docs/SCORING.md §8). An entry written before this
/// existed holds the kind byte alone; readers then fall back to the transaction.
extension ChainStore {
    static let scoreEntryFormat: UInt8 = 1

    /// The value of a transaction's `subjects` entry.
    static func subjectIndexValue(_ tx: Transaction) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.u8(tx.kind.rawValue)
        func metadata(_ a: AttestationBody) {
            w.u8(a.category.rawValue)
            w.u8(a.severity.rawValue)
            w.u32(a.eventDate.value)
            w.string8(a.industry)
            w.u8(UInt8(a.attributes.count))
            for attribute in a.attributes { w.string8(attribute.name); w.i64(attribute.value) }
        }
        switch tx.body {
        case .attestation(let a):
            w.raw(tx.id); w.u8(scoreEntryFormat); w.u8(1)
            metadata(a)
        case .amendment(let m):
            w.raw(tx.id); w.u8(scoreEntryFormat)
            if let r = m.replacement { w.u8(2); w.raw(m.target); metadata(r) } else { w.u8(3); w.raw(m.target) }
        default:
            break
        }
        return w.bytes
    }

    /// The record in a `subjects` entry's value; nil for an entry that holds only the kind byte.
    static func scoreRecord(indexValue value: [UInt8]) throws -> ScoreRecord? {
        guard value.count > 1 else { return nil }
        var r = ByteReader(value, context: "subject index entry")
        _ = try r.u8("kind")
        let id = try r.raw(32, "id")
        let format = try r.u8("format")
        guard format == scoreEntryFormat else {
            throw LedgerError(.unsupportedVersion, "subject index entry format \(format) is unknown")
        }
        func metadata() throws -> ScoreRecord.Metadata {
            let c = try r.u8("category"), s = try r.u8("severity")
            guard let category = Category(rawValue: c), let severity = Severity(rawValue: s) else {
                throw LedgerError(.invalidBlock, "subject index entry names category \(c), severity \(s)")
            }
            let date = try LedgerDate(try r.u32("event_date"))
            let industry = try r.string8("industry", max: FieldLimits.industry)
            let count = Int(try r.u8("attributes"))
            var attributes: [Attribute] = []
            attributes.reserveCapacity(count)
            for _ in 0..<count {
                attributes.append(Attribute(name: try r.string8("attribute name", max: FieldLimits.attributeName), value: try r.i64("attribute value")))
            }
            return ScoreRecord.Metadata(category: category, severity: severity, eventDate: date, industry: industry, attributes: attributes)
        }
        let change: ScoreRecord.Change
        switch try r.u8("change") {
        case 1: change = .attestation(try metadata())
        case 2: let target = try r.raw(32, "target"); change = .correction(target: target, try metadata())
        case 3: change = .revocation(target: try r.raw(32, "target"))
        case let c: throw LedgerError(.invalidBlock, "subject index entry change \(c) is unknown")
        }
        try r.expectEnd()
        return ScoreRecord(id: id, change: change)
    }

    private func scoreRecord(logIndex: UInt64, value: [UInt8]) throws -> ScoreRecord {
        if let record = try Self.scoreRecord(indexValue: value) { return record }
        guard let tx = try transaction(at: logIndex) else {
            throw LedgerError(.invalidBlock, "subject index names log index \(logIndex), which holds no transaction")
        }
        return try ScoreRecord(tx)
    }

    private static func isRecord(_ kind: UInt8) -> Bool {
        kind == TransactionKind.attestation.rawValue || kind == TransactionKind.amendment.rawValue
    }

    /// A subject's records below `logSize`, oldest first, as scoring reads them (at most `limit`):
    /// what `subjectRecords` gives, without reading or decoding the transactions.
    public func scoreRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [ScoreRecord] {
        let prefix = Array(subject.code.utf8)
        let it = try database.makeIterator(Family.subjects)
        it.seek(prefix + Self.u64Key(0))
        var out: [ScoreRecord] = []
        while it.isValid, out.count < limit {
            let key = it.key
            guard key.count == 26, Array(key.prefix(18)) == prefix else { break }
            var r = ByteReader(Array(key.suffix(8)), context: "subject index")
            let index = try r.u64("log_index")
            guard index < logSize else { break }
            let value = it.value
            if Self.isRecord(value.first ?? 0) { out.append(try scoreRecord(logIndex: index, value: value)) }
            it.next()
        }
        try it.checkStatus()
        return out
    }

    /// Every subject's records below `logSize` as scoring reads them, in subject order, from one
    /// iterator (a consistent view): `body` is called once per subject with at least one record,
    /// with at most `limit + 1` of them (more means the subject cannot be scored). A subject
    /// `include` refuses is passed with no records, unread. Stops early when `body` returns false.
    public func forEachSubjectScoreRecords(before logSize: UInt64, limit: Int = FieldLimits.scoreInputs,
                                           include: (USCC) -> Bool = { _ in true },
                                           _ body: (USCC, [ScoreRecord]) throws -> Bool) throws {
        let it = try database.makeIterator(Family.subjects)
        it.seekToFirst()
        var current: [UInt8] = []
        var subject: USCC? = nil
        var included = false
        var hasRecord = false
        var records: [ScoreRecord] = []
        func flush() throws -> Bool {
            defer { records.removeAll(keepingCapacity: true); hasRecord = false }
            guard hasRecord, let subject else { return true }
            return try body(subject, records)
        }
        while it.isValid {
            let key = it.key
            guard key.count == 26 else { throw LedgerError(.invalidBlock, "subject index key of \(key.count) bytes") }
            if current.isEmpty || !key.starts(with: current) {
                guard try flush() else { return }
                current = Array(key.prefix(18))
                let s = try USCC(String(decoding: current, as: UTF8.self))
                subject = s
                included = include(s)
            }
            let value = it.value
            if Self.isRecord(value.first ?? 0) {
                var r = ByteReader(Array(key.suffix(8)), context: "subject index")
                let index = try r.u64("log_index")
                if index < logSize {
                    hasRecord = true
                    if included && records.count <= limit { records.append(try scoreRecord(logIndex: index, value: value)) }
                }
            }
            it.next()
        }
        try it.checkStatus()
        _ = try flush()
    }
}
