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
        var decoder = ScoreEntryDecoder()
        return try decoder.decode(value)
    }

    private func scoreRecord(logIndex: UInt64, value: [UInt8], decoder: inout ScoreEntryDecoder) throws -> ScoreRecord {
        if let record = try decoder.decode(value) { return record }
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
        try loggedScoreRecords(subject, before: logSize, limit: limit).map(\.record)
    }

    /// From the subject index's entries (the window `subjectRecords` reads), without reading
    /// the transactions: the revoked-record rule runs on every amendment admitted or checked.
    public func amendmentLinks(of subject: USCC, before logSize: UInt64, limit: Int) throws -> [AmendmentLink] {
        try loggedScoreRecords(subject, before: logSize, limit: limit).compactMap { l in
            switch l.record.change {
            case .attestation: return nil
            case .correction(let target, _): return AmendmentLink(id: l.record.id, target: target, revokes: false)
            case .revocation(let target): return AmendmentLink(id: l.record.id, target: target, revokes: true)
            }
        }
    }

    /// The same as `scoreRecords`, with each record's log index.
    public func loggedScoreRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedScoreRecord] {
        var decoder = ScoreEntryDecoder()
        return try subjectRecordEntries(subject, before: logSize, limit: limit) { index, value in
            LoggedScoreRecord(logIndex: index, record: try scoreRecord(logIndex: index, value: value, decoder: &decoder))
        }
    }

    /// Walks a subject's index entries below `logSize`, oldest first, and maps each record's
    /// (attestation or amendment) log index and entry value; at most `limit` results.
    func subjectRecordEntries<T>(_ subject: USCC, before logSize: UInt64, limit: Int,
                                 _ map: (UInt64, [UInt8]) throws -> T) throws -> [T] {
        var out: [T] = []
        guard limit > 0 else { return out }
        try walkSubjectEntries(subject, before: logSize) { index, value in
            if Self.isRecord(value.first ?? 0) { out.append(try map(index, value)) }
            return out.count < limit
        }
        return out
    }

    /// Hands each of a subject's index entries below `logSize` (log index, entry value) to
    /// `body`, oldest first, until `body` returns false.
    private func walkSubjectEntries(_ subject: USCC, before logSize: UInt64, _ body: (UInt64, [UInt8]) throws -> Bool) throws {
        let prefix = Array(subject.code.utf8)
        let it = try database.makeIterator(Family.subjects)
        it.seek(prefix + Self.u64Key(0))
        while it.isValid {
            let key = it.key
            guard key.count == 26, key.starts(with: prefix) else { break }
            let index = key[18..<26].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard index < logSize, try body(index, it.value) else { break }
            it.next()
        }
        try it.checkStatus()
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
        var decoder = ScoreEntryDecoder()
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
                let index = key[18..<26].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                if index < logSize {
                    hasRecord = true
                    if included && records.count <= limit { records.append(try scoreRecord(logIndex: index, value: value, decoder: &decoder)) }
                }
            }
            it.next()
        }
        try it.checkStatus()
        _ = try flush()
    }

    /// A subject's index entries below `logSize`, oldest first, from one iterator pass; nil when
    /// it has more than `max` of them (read it kind by kind instead). A query reads a subject's
    /// records, score updates and consents from these instead of walking the index three times.
    public func subjectEntries(_ subject: USCC, before logSize: UInt64, max: Int) throws -> SubjectEntries? {
        var out: [SubjectEntries.Entry] = []
        var tooMany = false
        try walkSubjectEntries(subject, before: logSize) { index, value in
            guard out.count < max else { tooMany = true; return false }
            out.append(SubjectEntries.Entry(logIndex: index, value: value))
            return true
        }
        return tooMany ? nil : SubjectEntries(subject: subject, entries: out)
    }

    /// The records among `entries`, oldest first, at most `limit`: as `loggedScoreRecords`.
    public func loggedScoreRecords(in entries: SubjectEntries, limit: Int) throws -> [LoggedScoreRecord] {
        var decoder = ScoreEntryDecoder()
        var out: [LoggedScoreRecord] = []
        for e in entries.entries where out.count < limit && Self.isRecord(e.kind) {
            out.append(LoggedScoreRecord(logIndex: e.logIndex, record: try scoreRecord(logIndex: e.logIndex, value: e.value, decoder: &decoder)))
        }
        return out
    }

    /// The score updates among `entries`, newest first, as `visitScoreUpdates`.
    public func visitScoreUpdates(in entries: SubjectEntries, limit: Int, _ visit: (LoggedTransaction) throws -> Bool) throws {
        var read = 0
        for e in entries.entries.reversed() where read < limit && e.kind == TransactionKind.scoreUpdate.rawValue {
            guard let tx = try transaction(at: e.logIndex) else { continue }
            read += 1
            guard try visit(LoggedTransaction(logIndex: e.logIndex, transaction: tx)) else { return }
        }
    }

    /// Whether a committed score update under `modelHash` covers the subject's newest record
    /// below `recordsBefore`: an update anywhere below `logSize` (the head) made as of a log size
    /// past that record. True when the subject has no record below `recordsBefore`. Only an update
    /// placed after a record in the log can be as of a size past it, so the walk goes newest
    /// first from `logSize` and stops at that record. It reads at most `maxEntries` entries and
    /// answers false past them: the caller then scores the subject again, which is safe.
    public func scoreCoversNewestRecord(_ subject: USCC, modelHash: Hash, recordsBefore: UInt64, before logSize: UInt64,
                                        maxEntries: Int = 4_096) throws -> Bool {
        guard logSize > 0, recordsBefore > 0 else { return true }
        let prefix = Array(subject.code.utf8)
        let it = try database.makeIterator(Family.subjects)
        it.seekForPrev(Self.subjectKey(subject, logIndex: logSize - 1))
        var newestAsOf: UInt64 = 0
        var seen = 0
        while it.isValid {
            guard seen < maxEntries else { return false }
            let key = it.key
            guard key.count == 26, key.starts(with: prefix) else { break }
            let index = key[18..<26].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let kind = it.value.first ?? 0
            if Self.isRecord(kind) && index < recordsBefore { return newestAsOf > index }
            if kind == TransactionKind.scoreUpdate.rawValue, case .scoreUpdate(let s)? = try transaction(at: index)?.body, s.modelHash == modelHash {
                newestAsOf = max(newestAsOf, s.asOfLogSize)
            }
            seen += 1
            it.previous()
        }
        try it.checkStatus()
        return true
    }
}

/// One subject's entries in the subject index below a log size, as `ChainStore.subjectEntries` read them.
public struct SubjectEntries: Sendable {
    struct Entry: Sendable {
        let logIndex: UInt64
        let value: [UInt8]
        var kind: UInt8 { value.first ?? 0 }
    }
    public let subject: USCC
    let entries: [Entry]
    public var count: Int { entries.count }
}

/// Decodes scoring entries (FORMAT.md §12.1) with bounds checks, reusing the strings of
/// attribute names and industries and the dates it has already seen: a re-score reads
/// millions of entries that share a few dozen names.
struct ScoreEntryDecoder {
    private var strings: [UInt64: String] = [:]
    private var dates: [UInt32: LedgerDate] = [:]

    private static func fail(_ what: String) -> LedgerError {
        LedgerError(.invalidBlock, "subject index entry: \(what)")
    }

    mutating func decode(_ value: [UInt8]) throws -> ScoreRecord? {
        guard value.count > 1 else { return nil }
        var o = 1
        func need(_ n: Int) throws { guard value.count - o >= n else { throw Self.fail("truncated at byte \(o)") } }
        func u8() throws -> UInt8 { try need(1); defer { o += 1 }; return value[o] }
        func hash() throws -> Hash { try need(32); defer { o += 32 }; return Array(value[o..<o + 32]) }
        func u32() throws -> UInt32 {
            try need(4); defer { o += 4 }
            return UInt32(value[o]) << 24 | UInt32(value[o + 1]) << 16 | UInt32(value[o + 2]) << 8 | UInt32(value[o + 3])
        }
        func i64() throws -> Int64 {
            try need(8); defer { o += 8 }
            var v: UInt64 = 0
            for i in 0..<8 { v = v << 8 | UInt64(value[o + i]) }
            return Int64(bitPattern: v)
        }
        func string(max: Int) throws -> String {
            let n = Int(try u8())
            guard n <= max else { throw Self.fail("string of \(n) bytes, limit \(max)") }
            try need(n); defer { o += n }
            // Keyed by a hash of the bytes (FNV-style); the bytes are compared on a hit.
            var key = UInt64(n)
            for i in 0..<n { key = (key &* 0x100_0000_01B3) ^ UInt64(value[o + i]) }
            let slice = value[o..<o + n]
            if let s = strings[key], s.utf8.elementsEqual(slice) { return s }
            guard let s = String(validating: slice, as: UTF8.self) else { throw Self.fail("string is not UTF-8") }
            if strings.count < 4_096 { strings[key] = s }
            return s
        }
        func metadata() throws -> ScoreRecord.Metadata {
            let c = try u8(), sv = try u8()
            guard let category = Category(rawValue: c), let severity = Severity(rawValue: sv) else {
                throw Self.fail("category \(c), severity \(sv)")
            }
            let raw = try u32()
            let date: LedgerDate
            if let d = dates[raw] { date = d } else {
                date = try LedgerDate(raw)
                if dates.count < 65_536 { dates[raw] = date }
            }
            let industry = try string(max: FieldLimits.industry)
            let count = Int(try u8())
            var attributes: [Attribute] = []
            attributes.reserveCapacity(count)
            for _ in 0..<count {
                let name = try string(max: FieldLimits.attributeName)
                attributes.append(Attribute(name: name, value: try i64()))
            }
            return ScoreRecord.Metadata(category: category, severity: severity, eventDate: date, industry: industry, attributes: attributes)
        }
        let id = try hash()
        let format = try u8()
        guard format == ChainStore.scoreEntryFormat else {
            throw LedgerError(.unsupportedVersion, "subject index entry format \(format) is unknown")
        }
        let change: ScoreRecord.Change
        switch try u8() {
        case 1: change = .attestation(try metadata())
        case 2: let target = try hash(); change = .correction(target: target, try metadata())
        case 3: change = .revocation(target: try hash())
        case let c: throw Self.fail("change \(c) is unknown")
        }
        guard o == value.count else { throw Self.fail("\(value.count - o) bytes after the record") }
        return ScoreRecord(id: id, change: change)
    }
}
