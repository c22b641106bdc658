import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage

// Indexes for query policies (docs/PRIVACY.md §5), kept in the meta column family and written
// in the same synced batch as the block that creates them:
//   policy/      ‖ document hash                         → u64 log index of the install_policy
//   query-log/   ‖ USCC ‖ u64 log index                  → (empty): query records about a subject
//   query-nonce/ ‖ string8 requester ‖ u64 request nonce → query record id: authenticated requests seen
//   industry/    ‖ USCC                                  → the latest non-empty industry code attested or corrected to
//   consent/     ‖ USCC ‖ string8 grantee ‖ u64 log index → (empty): consent grants and revocations
//   cell/        ‖ string8 model name ‖ USCC             → u64 log index ‖ grade ‖ industry: latest grade per scorecard

extension ChainStore {
    enum QueryKey {
        static let policy: [UInt8] = Array("policy/".utf8)
        static let queryLog: [UInt8] = Array("query-log/".utf8)
        /// `query-log-confirmed/` ‖ USCC ‖ u64 log index → empty: the query records about a
        /// subject that show their requester asking (those that use up the request's nonce,
        /// `QueryRecordBody.spentRequestNonce`), so that a subject's log lists them however many
        /// refusals of forged, stale or replayed copies anyone has recorded about it.
        static let queryLogConfirmed: [UInt8] = Array("query-log-confirmed/".utf8)
        static let queryNonce: [UInt8] = Array("query-nonce/".utf8)
        static let industry: [UInt8] = Array("industry/".utf8)
        static let cell: [UInt8] = Array("cell/".utf8)
        static let consent: [UInt8] = Array("consent/".utf8)

        static func nonce(_ requester: String, _ nonce: UInt64) -> [UInt8] {
            var w = ByteWriter(capacity: 48)
            w.raw(queryNonce); w.string8(requester); w.u64(nonce)
            return w.bytes
        }
        /// The consents about `subject` naming `grantee`; with `logIndex`, one of them.
        static func consent(_ subject: USCC, grantee: String, logIndex: UInt64? = nil) -> [UInt8] {
            var w = ByteWriter(capacity: 96)
            w.raw(consent); w.raw(Array(subject.code.utf8)); w.string8(grantee)
            if let logIndex { w.u64(logIndex) }
            return w.bytes
        }
        static func cell(model: String, subject: USCC?) -> [UInt8] {
            var w = ByteWriter(capacity: 96)
            w.raw(cell); w.string8(model)
            if let subject { w.raw(Array(subject.code.utf8)) }
            return w.bytes
        }
    }

    /// The policy an install_policy governance transaction installs, if it is one.
    static func installedPolicy(_ tx: Transaction, logIndex: UInt64) -> InstalledPolicy? {
        guard case .governance(let g) = tx.body, g.action == .installPolicy else { return nil }
        return InstalledPolicy(name: g.name, version: g.version, document: g.document, logIndex: logIndex)
    }

    /// Adds the query indexes of one transaction to the block's batch.
    func indexForQueries(_ tx: Transaction, at index: UInt64, earlier: ArraySlice<Submission>, batch: WriteBatch,
                         newPolicies: inout [InstalledPolicy]) throws {
        switch tx.body {
        case .governance(let g):
            // Crypto-shredding: the envelopes go in the same batch as the block that orders it.
            for id in g.erasedRecords { try batch.delete(Family.envelopes, id) }
            // Which erasure erased each record (the first, for a chain certified before erasing
            // an erased record was refused).
            for id in g.erasedRecords where try database.get(Family.meta, MetaKey.erasedPrefix + id) == nil {
                try batch.put(Family.meta, MetaKey.erasedPrefix + id, tx.id)
            }
            if let p = Self.installedPolicy(tx, logIndex: index) {
                try batch.put(Family.meta, QueryKey.policy + p.hash, Self.u64Key(index))
                newPolicies.append(p)
            }
        case .queryRecord(let q):
            if let s = q.subject {
                try batch.put(Family.meta, QueryKey.queryLog + Array(s.code.utf8) + Self.u64Key(index), [])
                if q.spentRequestNonce != nil { try batch.put(Family.meta, QueryKey.queryLogConfirmed + Array(s.code.utf8) + Self.u64Key(index), []) }
            }
            // Only a record that uses up its request's nonce marks it, by the rule validation
            // applies (QueryRecordBody.spentRequestNonce): a refusal of a request never
            // authenticated (a forger must not burn a bank's nonces), of a replayed copy or of a
            // stale one uses none. A copy refused while the request itself is being answered
            // must not stop that answer from being recorded.
            if q.spentRequestNonce != nil {
                try batch.put(Family.meta, QueryKey.nonce(q.requester, q.requestNonce), tx.id)
            }
        case .consent(let c):
            try batch.put(Family.meta, QueryKey.consent(c.subject, grantee: c.grantee, logIndex: index), [])
        case .attestation, .amendment:
            // A correction's replacement states the industry as much as an attestation does.
            if let (subject, industry) = cellIndustry(tx) {
                try batch.put(Family.meta, QueryKey.industry + Array(subject.code.utf8), Array(industry.utf8))
            }
        case .scoreUpdate(let s):
            guard let model = model(hash: s.modelHash) else { return }
            // The cell keeps the freshest grade (latest as-of, then model version), as credit-grade
            // answers do: an update made from an older state that commits later does not replace it.
            guard try !fresherScore(than: s, model: model, earlier: earlier) else { return }
            var industry = try database.get(Family.meta, QueryKey.industry + Array(s.subject.code.utf8)) ?? []
            if let latest = earlier.reversed().lazy.compactMap({ self.cellIndustry($0.transaction) }).first(where: { $0.subject == s.subject }) {
                industry = Array(latest.industry.utf8)
            }
            try batch.put(Family.meta, QueryKey.cell(model: model.name, subject: s.subject),
                          Self.u64Key(index) + [s.grade.rawValue] + industry)
        default:
            break
        }
    }

    /// The subject and industry of a record that places its subject in a statistics cell (an
    /// attestation, or a correction's replacement, naming an industry); nil for any other.
    /// Only records of a government issuer do. A bank attests loan repayments of any subject,
    /// so a bank's record naming another industry could move a business into a cell of its
    /// own choosing, and the difference between two answers of `industry-statistics` would be
    /// that business's grade, with no consent and nothing in its query log (found in review).
    /// Stores written before keep the industry a bank's record set until the subject's next
    /// government record.
    func cellIndustry(_ tx: Transaction) -> (subject: USCC, industry: String)? {
        guard let a = tx.body.envelopedRecord, !a.industry.isEmpty,
              genesis.member(tx.header.signer)?.has(.governmentIssuer) == true else { return nil }
        return (a.subject, a.industry)
    }

    /// Whether the subject's grade cell under `model`'s name already holds, or this block
    /// earlier writes, an update fresher than `s` (`ScoreUpdateBody.isFresher`).
    func fresherScore(than s: ScoreUpdateBody, model: InstalledModel, earlier: ArraySlice<Submission>) throws -> Bool {
        func fresher(_ other: ScoreUpdateBody) -> Bool {
            guard other.subject == s.subject, let m = self.model(hash: other.modelHash), m.name == model.name else { return false }
            return other.isFresher(than: s, model: m, otherModel: model)
        }
        for e in earlier { if case .scoreUpdate(let other) = e.transaction.body, fresher(other) { return true } }
        guard let stored = try database.get(Family.meta, QueryKey.cell(model: model.name, subject: s.subject)), stored.count >= 8 else {
            return false
        }
        var r = ByteReader(Array(stored.prefix(8)), context: "grade cell")
        guard let tx = try transaction(at: try r.u64("log_index")), case .scoreUpdate(let other) = tx.body else { return false }
        return fresher(other)
    }

    /// Loads the installed-policy index at open.
    func loadPolicyIndex() throws -> [Hash: InstalledPolicy] {
        try indexedDocuments(prefix: QueryKey.policy, what: "policy", Self.installedPolicy)
    }

    /// The documents an index in the meta column family names: `prefix` ‖ document hash → u64
    /// log index of the installing transaction, each checked against that transaction.
    func indexedDocuments<T: InstalledDocument>(prefix: [UInt8], what: String,
                                                _ installed: (Transaction, UInt64) -> T?) throws -> [Hash: T] {
        var out: [Hash: T] = [:]
        let it = try database.makeIterator(Family.meta)
        it.seek(prefix)
        while it.isValid, it.key.starts(with: prefix) {
            var r = ByteReader(it.value, context: "\(what) index")
            let index = try r.u64("log_index")
            guard let tx = try transaction(at: index), let d = installed(tx, index), Array(it.key.dropFirst(prefix.count)) == d.hash else {
                throw LedgerError(.invalidBlock, "store at \(database.path): \(what) index entry points at log index \(index), which installs no such \(what)")
            }
            out[d.hash] = d
            it.next()
        }
        try it.checkStatus()
        return out
    }

    /// Every query policy: genesis policies first, then governance installs in log order.
    public func allPolicies() -> [InstalledPolicy] {
        genesis.policies + ((try? installedPolicies()) ?? [])
    }

    /// The policy with this hash, from genesis or committed governance.
    public func policy(hash: Hash) -> InstalledPolicy? {
        genesis.policy(hash: hash) ?? (try? installedPolicy(hash: hash)) ?? nil
    }

    /// The latest version of the policy named `name`.
    public func latestPolicy(name: String) -> InstalledPolicy? {
        allPolicies().filter { $0.name == name }.max { $0.version < $1.version }
    }

    /// Whether an authenticated query request with this nonce is already on the ledger.
    public func queryNonceUsed(requester: String, nonce: UInt64) throws -> Bool {
        try queryNonceHolder(requester: requester, nonce: nonce) != nil
    }

    /// The id of the query record that used `requester`'s request nonce, if any.
    public func queryNonceHolder(requester: String, nonce: UInt64) throws -> Hash? {
        try database.get(Family.meta, QueryKey.nonce(requester, nonce))
    }

    /// Query records about `subject` below `logSize`, newest first.
    /// The newest `limit` query records about `subject` below `logSize`, newest first; with
    /// `confirmedOnly`, only those that show their requester asking (the confirmed index).
    public func queryRecords(about subject: USCC, before logSize: UInt64, limit: Int, confirmedOnly: Bool = false) throws -> [LoggedTransaction] {
        if confirmedOnly, !confirmedQueryLogIndexed {
            throw LedgerError(.unsupportedVersion, "store at \(database.path) has no confirmed query log yet; open it read-write once (start the node) to build it")
        }
        let prefix = (confirmedOnly ? QueryKey.queryLogConfirmed : QueryKey.queryLog) + Array(subject.code.utf8)
        let it = try database.makeIterator(Family.meta)
        it.seekForPrev(prefix + Self.u64Key(logSize == 0 ? 0 : logSize - 1))
        var out: [LoggedTransaction] = []
        while it.isValid, out.count < limit, it.key.starts(with: prefix), it.key.count == prefix.count + 8 {
            var r = ByteReader(Array(it.key.suffix(8)), context: "query log index")
            let index = try r.u64("log_index")
            if index < logSize, let tx = try transaction(at: index) { out.append(LoggedTransaction(logIndex: index, transaction: tx)) }
            it.previous()
        }
        try it.checkStatus()
        return out
    }

    /// The newest `limit` consent transactions about `subject` below `logSize` that name
    /// `grantee`, oldest first. The consent index is keyed by subject and grantee, so the cost is
    /// the consents returned, whatever else the subject's history holds (other grantees'
    /// consents, records, score updates).
    public func consents(of subject: USCC, grantee: String, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        guard logSize > 0, limit > 0 else { return [] }
        guard consentIndexed else {
            throw LedgerError(.unsupportedVersion, "store at \(database.path) has no consent index yet; open it read-write once (start the node) to build it")
        }
        let prefix = QueryKey.consent(subject, grantee: grantee)
        let it = try database.makeIterator(Family.meta)
        it.seekForPrev(prefix + Self.u64Key(logSize - 1))
        var out: [LoggedTransaction] = []
        while it.isValid, out.count < limit, it.key.starts(with: prefix), it.key.count == prefix.count + 8 {
            var r = ByteReader(Array(it.key.suffix(8)), context: "consent index")
            let index = try r.u64("log_index")
            guard let tx = try transaction(at: index), case .consent(let c) = tx.body, c.subject == subject, c.grantee == grantee else {
                throw LedgerError(.invalidBlock, "the consent index names log index \(index), which holds no consent about \(subject.code) for \(grantee)")
            }
            out.append(LoggedTransaction(logIndex: index, transaction: tx))
            it.previous()
        }
        try it.checkStatus()
        return out.reversed()
    }

    /// Indexes the consent transactions of a store written before the consent index existed
    /// (`buildIndexOnce`): the subject index gives each consent's log index (by its kind), the
    /// transaction its grantee.
    func buildConsentIndexIfMissing() throws {
        try buildIndexOnce(markers: [MetaKey.consentIndex]) { writes in
            var built = 0
            let it = try database.makeIterator(Family.subjects)
            it.seekToFirst()
            while it.isValid {
                if it.value.first == TransactionKind.consent.rawValue, it.key.count == 26 {
                    var r = ByteReader(Array(it.key.suffix(8)), context: "subject index")
                    let index = try r.u64("log_index")
                    if let tx = try transaction(at: index), case .consent(let c) = tx.body {
                        try writes.put(Family.meta, QueryKey.consent(c.subject, grantee: c.grantee, logIndex: index), [])
                        built += 1
                    }
                }
                it.next()
            }
            try it.checkStatus()
            return "built the consent index (once: the store predates it): \(built) consents"
        }
    }

    /// Builds indexes a store written before them lacks, once, when it is opened read-write
    /// (a read-only open leaves the store as it is): `build` writes the entries, in batches,
    /// and says what it built; the markers go last, so an interrupted build starts again at
    /// the next open. Noted, with the time it took, for the node's log.
    func buildIndexOnce(markers: [[UInt8]], _ build: (IndexBuildWrites) throws -> String) throws {
        guard database.mode == .readWrite, try markers.contains(where: { try database.get(Family.meta, $0) == nil }) else { return }
        let started = ContinuousClock.now
        let writes = IndexBuildWrites(database)
        let built = try build(writes)
        for marker in markers { try writes.put(Family.meta, marker, [1]) }
        try writes.finish()
        noteBuiltAtOpen("\(built) in \(String(format: "%.1f", (ContinuousClock.now - started).inSeconds)) s")
    }

    /// Indexes the confirmed query records of a store written before that index existed
    /// (format v5; `buildIndexOnce`): every query-log entry is read once.
    func buildConfirmedQueryLogIfMissing() throws {
        try buildIndexOnce(markers: [MetaKey.confirmedQueryLogIndex]) { writes in
            var read = 0, built = 0
            let it = try database.makeIterator(Family.meta)
            it.seek(QueryKey.queryLog)
            while it.isValid, it.key.starts(with: QueryKey.queryLog) {
                let key = it.key
                guard key.count == QueryKey.queryLog.count + 18 + 8 else { it.next(); continue }
                var r = ByteReader(Array(key.suffix(8)), context: "query log index")
                let index = try r.u64("log_index")
                if let tx = try transaction(at: index), case .queryRecord(let q) = tx.body, q.spentRequestNonce != nil {
                    try writes.put(Family.meta, QueryKey.queryLogConfirmed + Array(key.dropFirst(QueryKey.queryLog.count)), [])
                    built += 1
                }
                read += 1
                it.next()
            }
            try it.checkStatus()
            return "built the confirmed query log (once: the store predates format v5): \(built) of \(read) query records"
        }
    }

    /// Indexes the erasures of a store written before that index existed (format v5;
    /// `buildIndexOnce`): the governance transactions of the log, told by their kind byte, so
    /// only they are decoded.
    func buildErasureIndexIfMissing() throws {
        try buildIndexOnce(markers: [MetaKey.erasureIndex]) { writes in
            var first: [HashKey: Hash] = [:]
            let log = try database.makeIterator(Family.transactions)
            log.seekToFirst()
            while log.isValid {
                let value = log.value
                if value.count > 1, value[1] == TransactionKind.governance.rawValue {
                    let tx = try Transaction.decode(value, maxBytes: Int.max)
                    if case .governance(let g) = tx.body, g.action == .eraseRecords {
                        for r in g.erasedRecords where first[HashKey(r)] == nil { first[HashKey(r)] = tx.id }
                    }
                }
                log.next()
            }
            try log.checkStatus()
            for (record, erasure) in first { try writes.put(Family.meta, MetaKey.erasedPrefix + record.bytes, erasure) }
            return "built the erasure index (once: the store predates format v5): \(first.count) erased records"
        }
    }

    /// What a record adds to the meta family besides the query indexes: its payload commitment
    /// (one record per sealed payload) and, for a correction, its place among the corrections of
    /// its target (an erasure names them all).
    static func recordIndexEntries(_ tx: Transaction) -> [(key: [UInt8], value: [UInt8])] {
        var entries: [(key: [UInt8], value: [UInt8])] = []
        if let record = tx.body.envelopedRecord {
            entries.append((MetaKey.commitmentPrefix + record.payloadCommitment, tx.id))
        }
        if case .amendment(let a) = tx.body, a.action == .correction {
            entries.append((MetaKey.correctionPrefix + a.target + tx.id, []))
        }
        return entries
    }

    /// Indexes the payload commitments and corrections of a store written before those indexes
    /// existed (`buildIndexOnce`): every record in the log.
    func buildRecordIndexesIfMissing() throws {
        try buildIndexOnce(markers: [MetaKey.commitmentIndex, MetaKey.correctionIndex]) { writes in
            var built = 0
            let log = try database.makeIterator(Family.transactions)
            log.seekToFirst()
            while log.isValid {
                let tx = try Transaction.decode(log.value, maxBytes: Int.max)
                for (key, value) in Self.recordIndexEntries(tx) { try writes.put(Family.meta, key, value); built += 1 }
                log.next()
            }
            try log.checkStatus()
            return "built the payload commitment and correction indexes (once: the store predates them): \(built) entries"
        }
    }

    /// Rebuilds the request-nonce index of a store written before format v3, whose index also
    /// marked the nonces of replay and stale-copy refusals: every key is removed, then one is
    /// written for each query record in the log that uses up its nonce. The caller writes the
    /// new format last, so an interrupted rebuild starts again at the next open.
    func rebuildRequestNonceIndex() throws -> String {
        let started = ContinuousClock.now
        let writes = IndexBuildWrites(database)
        var removed = 0
        let keys = try database.makeIterator(Family.meta)
        keys.seek(QueryKey.queryNonce)
        while keys.isValid, keys.key.starts(with: QueryKey.queryNonce) {
            try writes.delete(Family.meta, keys.key)
            removed += 1
            keys.next()
        }
        try keys.checkStatus()
        var written = 0
        let log = try database.makeIterator(Family.transactions)
        log.seekToFirst()
        while log.isValid {
            let tx = try Transaction.decode(log.value, maxBytes: Int.max)
            if case .queryRecord(let q) = tx.body, q.spentRequestNonce != nil {
                try writes.put(Family.meta, QueryKey.nonce(q.requester, q.requestNonce), tx.id)
                written += 1
            }
            log.next()
        }
        try log.checkStatus()
        try writes.finish()
        let elapsed = ContinuousClock.now - started
        return "rebuilt the request-nonce index (once: the store predates format v3): \(written) nonces used, \(removed) keys before, in \(String(format: "%.1f", elapsed.inSeconds)) s"
    }

    /// The grade cells of `model` and the head they belong to, read from one snapshot. The
    /// index holds each subject's newest grade only, so cells read while a block is being
    /// written could not be cut back to an earlier head: the caller compares heads instead.
    public func gradeCellsWithHead(model: String, limit: Int) throws -> (head: Head, cells: [(subject: USCC, industry: String, grade: Grade)]) {
        let snapshot = database.snapshot()
        let head = try Self.storedHead(database, genesis: genesis, in: snapshot)
        return (head, try gradeCells(model: model, before: head.logSize, limit: limit, in: snapshot))
    }

    /// Latest grade under scorecard `model` of every subject scored below `logSize` (at most `limit` + 1 read),
    /// as of `snapshot` when given. A subject whose latest score is at or beyond `logSize` is skipped.
    public func gradeCells(model: String, before logSize: UInt64, limit: Int,
                           in snapshot: Database.Snapshot? = nil) throws -> [(subject: USCC, industry: String, grade: Grade)] {
        let prefix = QueryKey.cell(model: model, subject: nil)
        let it = try database.makeIterator(Family.meta, in: snapshot)
        it.seek(prefix)
        var out: [(USCC, String, Grade)] = []
        while it.isValid, it.key.starts(with: prefix), out.count <= limit {
            let key = it.key, value = it.value
            guard key.count == prefix.count + 18, value.count >= 9,
                  let code = String(validating: key.suffix(18), as: UTF8.self), let subject = try? USCC(code),
                  let grade = Grade(rawValue: value[8]) else {
                throw LedgerError(.invalidBlock, "grade cell index entry under \(model) is damaged")
            }
            var r = ByteReader(Array(value.prefix(8)), context: "grade cell")
            if try r.u64("log_index") < logSize {
                out.append((subject, String(decoding: value.dropFirst(9), as: UTF8.self), grade))
            }
            it.next()
        }
        try it.checkStatus()
        return out
    }
}

/// The writes of a one-time index build at open: unsynced batches of 10,000, the last one synced
/// by `finish`. The caller writes its completion marker last, so a build cut short starts again.
final class IndexBuildWrites {
    private let database: Database
    private var batch: WriteBatch
    private var pending = 0

    init(_ database: Database) { self.database = database; batch = WriteBatch(for: database) }

    func put(_ family: String, _ key: [UInt8], _ value: [UInt8]) throws { try batch.put(family, key, value); try counted() }
    func delete(_ family: String, _ key: [UInt8]) throws { try batch.delete(family, key); try counted() }
    func finish() throws { try database.write(batch, sync: true) }

    private func counted() throws {
        pending += 1
        guard pending == 10_000 else { return }
        try database.write(batch, sync: false)
        batch = WriteBatch(for: database)
        pending = 0
    }
}
