import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import Synchronization

/// The ledger in a RocksDB data directory.
public final class ChainStore: LedgerStateReader, MerkleHashSource, @unchecked Sendable {
    /// v2 adds the consent index (`consent/`, QueryIndexes.swift). A v1 store is upgraded when
    /// opened read-write; the new marker then keeps binaries that do not write the index (and
    /// would leave later consents, revocations included, out of it) from opening the store.
    /// v4 stores commit certificates that name their round (CommitCertificate, version 2),
    /// which binaries of v3 cannot read. v5 adds the index of confirmed query records
    /// (`query-log-confirmed/`, QueryIndexes.swift), which older binaries would not write.
    public static let storeFormat = "creditledger-store/v5"
    /// v1 lacks the consent index (built at open); v1 and v2 marked the request nonces of
    /// replay and stale-copy refusals (the index is rebuilt at open); v1-v4 lack the confirmed
    /// query log (built at open).
    static let upgradableFormats = ["creditledger-store/v1", "creditledger-store/v2", "creditledger-store/v3", "creditledger-store/v4",
                                    "creditledger-store/upgrading-to-v4", upgradingFormat]
    /// Written before an upgrade changes any index, and replaced by `storeFormat` once it is
    /// done: a binary of the older format refuses the store from the first change on, and this
    /// one redoes the whole upgrade after an interruption (every step starts over cleanly).
    static let upgradingFormat = "creditledger-store/upgrading-to-v5"

    enum Family {
        static let meta = "meta"
        static let blocks = "blocks"
        static let certificates = "certificates"
        static let transactions = "transactions"
        static let transactionIndex = "transaction_index"
        static let nonces = "nonces"
        static let tree = "tree"
        static let envelopes = "envelopes"
        static let subjects = "subjects"
        static let checkpoints = "checkpoints"
        static let all = [meta, blocks, certificates, transactions, transactionIndex, nonces, tree, envelopes, subjects, checkpoints]
    }

    /// Every column family of the store, for tools that open it with `Database` directly.
    public static let columnFamilies = Family.all
    /// The families a query reads (consent index, subject index, Merkle nodes, transactions)
    /// and those its audit record's admission reads (ids, nonces), hottest first: a node warms
    /// its page cache in this order (`Database.warmPageCache`).
    public static let familiesQueriesRead = [Family.meta, Family.subjects, Family.tree, Family.transactionIndex,
                                             Family.nonces, Family.transactions, Family.envelopes]
    /// Block cache of a serving node: queries and proofs read records of random subjects.
    public static let nodeBlockCacheBytes = 512 << 20
    /// Memory for Merkle nodes on a serving node: every level of a log of about a million entries.
    public static let nodeMerkleCacheBytes = 256 << 20

    enum MetaKey {
        static let format: [UInt8] = Array("format".utf8)
        static let genesis: [UInt8] = Array("genesis".utf8)
        static let head: [UInt8] = Array("head".utf8)
        /// Present once every install_model transaction in the store is indexed under `modelPrefix`.
        static let modelIndex: [UInt8] = Array("model-index/v1".utf8)
        /// `model/` ‖ document hash → u64 log index of the install_model transaction.
        static let modelPrefix: [UInt8] = Array("model/".utf8)
        /// Present once every consent transaction in the store is indexed under `consent/` (QueryIndexes.swift).
        static let consentIndex: [UInt8] = Array("consent-index/v1".utf8)
        /// Present once every query record in the store whose requester is confirmed is indexed
        /// under `query-log-confirmed/` (QueryIndexes.swift).
        static let confirmedQueryLogIndex: [UInt8] = Array("query-log-confirmed-index/v1".utf8)
        /// `erased/` ‖ record id → id of the erase_records transaction that first named it.
        static let erasedPrefix: [UInt8] = Array("erased/".utf8)
        /// Present once every erase_records transaction in the store is indexed under `erasedPrefix`.
        static let erasureIndex: [UInt8] = Array("erasure-index/v1".utf8)
        /// Present once every record in the store is indexed under `commitmentPrefix`.
        static let commitmentIndex: [UInt8] = Array("commitment-index/v1".utf8)
        /// `commitment/` ‖ payload commitment → id of the record (attestation or correction) that carries it.
        static let commitmentPrefix: [UInt8] = Array("commitment/".utf8)
        /// Present once every correction in the store is indexed under `correctionPrefix`.
        static let correctionIndex: [UInt8] = Array("correction-index/v1".utf8)
        /// `corrections/` ‖ id of the corrected record ‖ id of the correction → empty.
        static let correctionPrefix: [UInt8] = Array("corrections/".utf8)
        /// `missing-envelope/` ‖ u64 height ‖ record id → empty: a record committed without its
        /// envelope (a catch-up block whose server had it erased, or stripped it), not erased here.
        static let missingEnvelope: [UInt8] = Array("missing-envelope/".utf8)
        static func missingEnvelope(height: UInt64, id: Hash) -> [UInt8] { missingEnvelope + ChainStore.u64Key(height) + id }
    }

    /// The latest committed block.
    public struct Head: Sendable, Equatable {
        public let height: UInt64
        public let blockHash: Hash
        public let logSize: UInt64
        public let logRoot: Hash
    }

    public struct Location: Sendable, Equatable {
        public let logIndex: UInt64
        public let height: UInt64
    }

    public let database: Database
    public let genesis: Genesis
    /// Where a store opening says it starts long work (an upgrade): the node logs it; tools say nothing.
    private static let announcer = Mutex<(@Sendable (String) -> Void)?>(nil)
    public static func onLongWork(_ tell: @escaping @Sendable (String) -> Void) { announcer.withLock { $0 = tell } }
    static func announce(_ what: String) { announcer.withLock { $0 }?(what) }

    /// Set when this open built an index the store predates or upgraded its format, for the
    /// node to log (it happens once, and the build takes seconds on a large store).
    public private(set) var builtAtOpen: String?
    func noteBuiltAtOpen(_ what: String) { builtAtOpen = [builtAtOpen, what].compactMap { $0 }.joined(separator: "; ") }
    /// Whether consents can be read from their index: fixed at open (a read-write open builds
    /// the index; a read-only open of an older store does not have it).
    private(set) var consentIndexed = false
    /// Whether the confirmed query records can be read from their index (as `consentIndexed`).
    private(set) var confirmedQueryLogIndexed = false
    /// Whether erasures can be read from their index (as `consentIndexed`).
    private(set) var erasureIndexed = false
    /// Whether payload commitments can be read from their index (as `consentIndexed`).
    private(set) var recordsIndexed = false
    private let tree: MerkleNodeStore
    private let lock = NSLock()
    private var _head: Head
    private var _frontier: MerkleFrontier
    /// Models installed by committed governance, by document hash (few; loaded at open).
    private var _models: [Hash: InstalledModel] = [:]
    /// Merkle nodes of the upper levels, in memory (MerkleNodeCache.swift).
    private var _nodes: MerkleNodeCache
    /// Policies installed by committed governance, by document hash (few; loaded at open).
    private var _policies: [Hash: InstalledPolicy] = [:]
    /// The last as-of block timestamp looked up: score updates of one round share it.
    private var _timestampCache: (logSize: UInt64, millis: UInt64)?

    /// Moves before and after each block that erases records (crypto-shredding) is written.
    private var _envelopeGeneration: UInt64 = 0
    private var _missingEnvelopes = 0
    /// Records committed without their envelope and not erased (see `MetaKey.missingEnvelope`).
    public var missingEnvelopeCount: Int { lock.withLock { _missingEnvelopes } }

    /// Told how long each block's synced write batch took (the RocksDB write with its
    /// `fdatasync`, nothing else), with the block's height; a node's `BlockWriteWatch`.
    private var _syncedWriteObserver: (@Sendable (Duration, UInt64) -> Void)?
    public func observeSyncedWrites(_ observer: @escaping @Sendable (_ took: Duration, _ height: UInt64) -> Void) {
        lock.withLock { _syncedWriteObserver = observer }
    }

    public var head: Head { lock.withLock { _head } }
    /// Changes whenever an envelope is deleted: what a node derived from a payload before the
    /// change (a cached masked name) may name a record that can no longer be read.
    public var envelopeGeneration: UInt64 { lock.withLock { _envelopeGeneration } }
    public var frontier: MerkleFrontier { lock.withLock { _frontier } }

    /// Creates a new store for `genesis` at `path`, which must not hold a store already.
    public static func create(path: String, genesis: Genesis) throws -> ChainStore {
        let db = try Database(path: path, columnFamilies: Family.all, mode: .readWrite)
        if try db.get(Family.meta, MetaKey.format) != nil {
            throw LedgerError(.invalidGenesis, "\(path) already holds a ledger")
        }
        let batch = WriteBatch(for: db)
        try batch.put(Family.meta, MetaKey.format, Array(storeFormat.utf8))
        try batch.put(Family.meta, MetaKey.genesis, genesis.bytes)
        try batch.put(Family.meta, MetaKey.modelIndex, [1])
        try batch.put(Family.meta, MetaKey.consentIndex, [1])
        try batch.put(Family.meta, MetaKey.confirmedQueryLogIndex, [1])
        try batch.put(Family.meta, MetaKey.erasureIndex, [1])
        try batch.put(Family.meta, MetaKey.commitmentIndex, [1])
        try batch.put(Family.meta, MetaKey.correctionIndex, [1])
        try db.write(batch)
        return try ChainStore(database: db, verifyDepth: 0)
    }

    /// Opens an existing store and checks its most recent `verifyDepth` blocks.
    /// `blockCacheBytes`: a sequential reader such as the verifier gains nothing from a large cache.
    /// `merkleCacheBytes`: memory for the upper Merkle levels that proofs read (MerkleNodeCache);
    /// they are loaded at open.
    public convenience init(path: String, mode: OpenMode = .readWrite, verifyDepth: UInt64 = 64, blockCacheBytes: Int = 64 << 20,
                            merkleCacheBytes: Int = 4 << 20) throws {
        guard FileManager.default.fileExists(atPath: path + "/CURRENT") else {
            // Commands differ in which directory they take (credit-node: the node's data
            // directory; credit-verify: its ledger directory): say where the store is.
            let parent = (path as NSString).deletingLastPathComponent
            if FileManager.default.fileExists(atPath: path + "/ledger/CURRENT") {
                throw LedgerError(.notFound, "\(path) holds no ledger store, but \(path)/ledger does: this command takes the ledger directory itself (--data-dir \(path)/ledger)")
            } else if (path as NSString).lastPathComponent == "ledger", FileManager.default.fileExists(atPath: parent + "/CURRENT") {
                throw LedgerError(.notFound, "\(path) holds no ledger store, but \(parent) does: this command takes the node's data directory, the one holding ledger/ (--data-dir \((parent as NSString).deletingLastPathComponent))")
            }
            throw LedgerError(.notFound, "\(path) holds no ledger store")
        }
        let db = try Database(path: path, columnFamilies: Family.all, mode: mode, blockCacheBytes: blockCacheBytes)
        try self.init(database: db, verifyDepth: verifyDepth, merkleCacheBytes: merkleCacheBytes)
    }

    init(database: Database, verifyDepth: UInt64, merkleCacheBytes: Int = 4 << 20) throws {
        self.database = database
        self.tree = MerkleNodeStore(database: database, family: Family.tree)
        guard let format = try database.get(Family.meta, MetaKey.format) else {
            throw LedgerError(.invalidBlock, "store at \(database.path) has no format marker; it is not a CreditLedger store or it is damaged")
        }
        let formatName = String(decoding: format, as: UTF8.self)
        guard formatName == Self.storeFormat || Self.upgradableFormats.contains(formatName) else {
            throw LedgerError(.unsupportedVersion, "store format \(formatName) is not \(Self.storeFormat) (nor one this version upgrades: \(Self.upgradableFormats.joined(separator: ", ")))")
        }
        guard let genesisBytes = try database.get(Family.meta, MetaKey.genesis) else {
            throw LedgerError(.invalidGenesis, "store at \(database.path) has lost its genesis")
        }
        genesis = try Genesis(bytes: genesisBytes)
        _head = try Self.storedHead(database, genesis: genesis, in: nil)
        _frontier = MerkleFrontier()
        _nodes = MerkleNodeCache(budgetBytes: merkleCacheBytes, logSize: _head.logSize)
        try _nodes.load(from: database, family: Family.tree)
        _frontier = try MerkleFrontier(size: _head.logSize, source: self)
        try verifyIntegrity(depth: verifyDepth)
        let upgrading = formatName != Self.storeFormat && database.mode == .readWrite
        if upgrading {
            // Said before it starts: it reads the whole log, minutes on a large store, and the
            // node served nothing and logged nothing meanwhile (found by black-box testing, 2026-12-08).
            Self.announce("upgrading the store in \(database.path) from \(formatName) to \(Self.storeFormat) (\(_head.logSize) transactions): its indexes are built from the whole log, about a minute per million transactions; the node serves once it is done")
        }
        if upgrading && formatName != Self.upgradingFormat { try writeFormat(Self.upgradingFormat) }
        try loadModelIndex()
        try buildConsentIndexIfMissing()
        try buildRecordIndexesIfMissing()
        _missingEnvelopes = try countMissingEnvelopes()
        consentIndexed = try database.get(Family.meta, MetaKey.consentIndex) != nil
        recordsIndexed = try database.get(Family.meta, MetaKey.commitmentIndex) != nil
            && database.get(Family.meta, MetaKey.correctionIndex) != nil
        try buildConfirmedQueryLogIfMissing()
        confirmedQueryLogIndexed = try database.get(Family.meta, MetaKey.confirmedQueryLogIndex) != nil
        try buildErasureIndexIfMissing()
        erasureIndexed = try database.get(Family.meta, MetaKey.erasureIndex) != nil
        if upgrading {
            // The request-nonce index changed in v3: stores older than that, or interrupted on
            // their way to v4 or v5 from one (the rebuild starts over cleanly), rebuild it.
            if !["creditledger-store/v3", "creditledger-store/v4"].contains(formatName) { noteBuiltAtOpen(try rebuildRequestNonceIndex()) }
            try writeFormat(Self.storeFormat)
            noteBuiltAtOpen("upgraded the store from \(formatName) to \(Self.storeFormat)")
        }
        let policies = try loadPolicyIndex()
        lock.withLock { _policies = policies }
    }

    private func writeFormat(_ name: String) throws {
        let batch = WriteBatch(for: database)
        try batch.put(Family.meta, MetaKey.format, Array(name.utf8))
        try database.write(batch, sync: true)
    }

    // MARK: Keys

    static func u64Key(_ v: UInt64) -> [UInt8] { var w = ByteWriter(capacity: 8); w.u64(v); return w.bytes }
    static func nonceKey(signer: String, nonce: UInt64) -> [UInt8] { var w = ByteWriter(capacity: 40); w.string8(signer); w.u64(nonce); return w.bytes }
    static func subjectKey(_ subject: USCC, logIndex: UInt64) -> [UInt8] { Array(subject.code.utf8) + u64Key(logIndex) }

    /// The head as written in the store (as of `snapshot`, when given).
    static func storedHead(_ database: Database, genesis: Genesis, in snapshot: Database.Snapshot?) throws -> Head {
        guard let raw = try database.get(Family.meta, MetaKey.head, in: snapshot) else {
            return Head(height: 0, blockHash: genesis.hash, logSize: 0, logRoot: Merkle.emptyRoot)
        }
        var r = ByteReader(raw, context: "head record")
        let head = Head(height: try r.u64("height"), blockHash: try r.raw(32, "block_hash"),
                        logSize: try r.u64("log_size"), logRoot: try r.raw(32, "log_root"))
        try r.expectEnd()
        return head
    }

    // MARK: Writing

    /// Writes a block, its certificate, transactions, indexes, Merkle nodes and checkpoint in one
    /// synced batch. When this returns the block is durable; only then does the head move.
    public func append(block: BlockBuilder.Result, certificate: CommitCertificate, submissions: [Submission], checkpoint: String) throws {
        let header = block.header
        let current = head
        guard header.height == current.height + 1, header.previousHash == current.blockHash,
              header.firstLogIndex == current.logSize, Int(header.transactionCount) == submissions.count else {
            preconditionFailure("block \(header.height) does not extend head \(current.height)")
        }
        let batch = WriteBatch(for: database)
        var newModels: [InstalledModel] = []
        var newPolicies: [InstalledPolicy] = []
        var missingDelta = 0
        var unmarked = Set<HashKey>()   // records whose missing-envelope mark this batch deletes
        let heightKey = Self.u64Key(header.height)
        try batch.put(Family.blocks, heightKey, header.encoded)
        try batch.put(Family.certificates, heightKey, certificate.encoded)
        for (offset, submission) in submissions.enumerated() {
            let tx = submission.transaction
            let index = header.firstLogIndex + UInt64(offset)
            try batch.put(Family.transactions, Self.u64Key(index), tx.encoded)
            try batch.put(Family.transactionIndex, tx.id, Self.u64Key(index) + heightKey)
            try batch.put(Family.nonces, Self.nonceKey(signer: tx.header.signer, nonce: tx.header.nonce), tx.id)
            if let subject = try subject(of: tx, earlier: submissions[..<offset]) {
                // The kind, and for records what scoring reads of them (ScoreIndex.swift).
                try batch.put(Family.subjects, Self.subjectKey(subject, logIndex: index), Self.subjectIndexValue(tx))
            }
            for (key, value) in Self.recordIndexEntries(tx) { try batch.put(Family.meta, key, value) }
            if let envelope = submission.envelope {
                try batch.put(Family.envelopes, tx.id, envelope.encoded)
            } else if tx.body.envelopedRecord != nil {
                try batch.put(Family.meta, MetaKey.missingEnvelope(height: header.height, id: tx.id), [])
                missingDelta += 1
            }
            if let model = Self.installedModel(tx, logIndex: index) {
                try batch.put(Family.meta, MetaKey.modelPrefix + model.hash, Self.u64Key(index))
                newModels.append(model)
            }
            try indexForQueries(tx, at: index, earlier: submissions[..<offset], batch: batch, newPolicies: &newPolicies)
            if case .governance(let g) = tx.body {
                // An erased record's envelope is no longer missing: it is meant to be gone.
                for id in g.erasedRecords where !unmarked.contains(HashKey(id)) {
                    if let (key, _) = try missingEnvelopeMark(of: id) {
                        unmarked.insert(HashKey(id))
                        try batch.delete(Family.meta, key)
                        missingDelta -= 1
                    }
                }
            }
        }
        try tree.put(block.nodes, into: batch)
        try batch.put(Family.checkpoints, heightKey, Array(checkpoint.utf8))
        let newHead = Head(height: header.height, blockHash: header.hash, logSize: header.logSize, logRoot: header.logRoot)
        var w = ByteWriter(capacity: 80)
        w.u64(newHead.height); w.raw(newHead.blockHash); w.u64(newHead.logSize); w.raw(newHead.logRoot)
        try batch.put(Family.meta, MetaKey.head, w.bytes)
        // The generation moves before the envelopes go, so nothing derived from them is served
        // while they are being deleted, and again after, so nothing read just before is kept.
        let shredded = submissions.contains { if case .governance(let g) = $0.transaction.body { !g.erasedRecords.isEmpty } else { false } }
        if shredded { lock.withLock { _envelopeGeneration += 1 } }
        let writeStarted = ContinuousClock.now
        try database.write(batch, sync: true)
        let took = ContinuousClock.now - writeStarted
        let observer = lock.withLock {
            if shredded { _envelopeGeneration += 1 }
            _missingEnvelopes += missingDelta
            _head = newHead
            _frontier = block.frontier
            for n in block.nodes { _nodes.add(level: n.level, index: n.index, hash: n.hash) }
            for m in newModels { _models[m.hash] = m }
            for p in newPolicies { _policies[p.hash] = p }
            return _syncedWriteObserver
        }
        observer?(took, header.height)
    }

    /// The subject a transaction is about; a revocation is about its target's subject.
    func subject(of tx: Transaction, earlier: ArraySlice<Submission>) throws -> USCC? {
        if let subject = tx.body.subject { return subject }
        guard case .amendment(let a) = tx.body else { return nil }
        let target = try committedTransaction(id: a.target) ?? earlier.first { $0.transaction.id == a.target }?.transaction
        return target?.body.subject
    }

    // MARK: Reading

    /// Stored bytes, undecoded: for verifiers that must report what is wrong with them.
    public func rawBlockHeader(height: UInt64) throws -> [UInt8]? { try database.get(Family.blocks, Self.u64Key(height)) }
    public func rawCertificate(height: UInt64) throws -> [UInt8]? { try database.get(Family.certificates, Self.u64Key(height)) }
    public func rawTransaction(at logIndex: UInt64) throws -> [UInt8]? { try database.get(Family.transactions, Self.u64Key(logIndex)) }
    public func rawEnvelope(of id: Hash) throws -> [UInt8]? { try database.get(Family.envelopes, id) }

    public func blockHeader(height: UInt64) throws -> BlockHeader? {
        guard let raw = try database.get(Family.blocks, Self.u64Key(height)) else { return nil }
        return try BlockHeader.decode(raw)
    }

    public func certificate(height: UInt64) throws -> CommitCertificate? {
        guard let raw = try database.get(Family.certificates, Self.u64Key(height)) else { return nil }
        return try CommitCertificate.decode(raw)
    }

    public func transaction(at logIndex: UInt64) throws -> Transaction? {
        guard let raw = try database.get(Family.transactions, Self.u64Key(logIndex)) else { return nil }
        return try Transaction.decode(raw, maxBytes: Int.max)
    }

    /// Where a committed transaction sits. A block being appended is readable in RocksDB a moment
    /// before the head moves to it; its transactions are not reported until then, so every
    /// location returned can be proven against the head read after it.
    public func location(of id: Hash) throws -> Location? {
        guard id.count == 32, let raw = try database.get(Family.transactionIndex, id) else { return nil }
        var r = ByteReader(raw, context: "transaction index")
        let loc = Location(logIndex: try r.u64("log_index"), height: try r.u64("height"))
        return loc.logIndex < head.logSize ? loc : nil
    }

    public func envelope(of id: Hash) throws -> Envelope? {
        guard let raw = try database.get(Family.envelopes, id) else { return nil }
        return try Envelope.decode(raw, maxBytes: Int.max)
    }

    /// Up to `limit` records committed without their envelope and not erased, lowest height first.
    public func missingEnvelopes(limit: Int) throws -> [(height: UInt64, id: Hash)] {
        var out: [(UInt64, Hash)] = []
        let it = try database.makeIterator(Family.meta)
        it.seek(MetaKey.missingEnvelope)
        while it.isValid, it.key.starts(with: MetaKey.missingEnvelope), out.count < limit {
            var r = ByteReader(Array(it.key.dropFirst(MetaKey.missingEnvelope.count)), context: "missing envelope key")
            out.append((try r.u64("height"), try r.raw(32, "id")))
            it.next()
        }
        try it.checkStatus()
        return out
    }

    /// How many records are marked as missing their envelope, counted without holding the marks.
    func countMissingEnvelopes() throws -> Int {
        var count = 0
        let it = try database.makeIterator(Family.meta)
        it.seek(MetaKey.missingEnvelope)
        while it.isValid, it.key.starts(with: MetaKey.missingEnvelope) { count += 1; it.next() }
        try it.checkStatus()
        return count
    }

    /// Whether the store at `path` holds at least one committed block (for a staging directory
    /// about to be deleted). False for a store whose creation stopped before its first write
    /// (no format marker yet); throws when the store does not open or its head does not read,
    /// since then nobody can tell, and the caller must not delete what may be a ledger.
    public static func holdsBlocks(_ path: String) throws -> Bool {
        let db: Database
        do { db = try Database(path: path, columnFamilies: Family.all, mode: .readOnly, blockCacheBytes: 1 << 20) } catch where "\(error)".contains("Column family not found") {
            // A creation cut short (kill -9 during a first start) before every column family was
            // made: such a store was never renamed into place, so no block was ever written to it.
            // It was refused as "may hold committed blocks", and every later start with it (found
            // by black-box testing, 2026-12-08).
            return false
        }
        guard try db.get(Family.meta, MetaKey.format) != nil else { return false }
        guard let raw = try db.get(Family.meta, MetaKey.head) else { return false }
        var r = ByteReader(raw, context: "head record")
        return try r.u64("height") > 0
    }

    /// Whether `id` is a committed record whose envelope this store lacks although no
    /// erase_records named it (committed from a catch-up block without it, say).
    public func isMissingEnvelope(_ id: Hash) throws -> Bool { try missingEnvelopeMark(of: id) != nil }

    /// The mark of a committed record whose envelope is missing, and where the record is; nil
    /// when it has its envelope, was erased, or is not committed.
    func missingEnvelopeMark(of id: Hash) throws -> (key: [UInt8], at: Location)? {
        guard let at = try location(of: id) else { return nil }
        let key = MetaKey.missingEnvelope(height: at.height, id: id)
        return try database.get(Family.meta, key) != nil ? (key, at) : nil
    }

    /// Takes erased envelopes off the disk, once the block erasing them is written: the block's
    /// deletes only hide them, and their bytes stay in table files and in the write-ahead log
    /// until RocksDB rewrites those (docs/PRIVACY.md §1). Flushes every family, so the log files
    /// that held the envelopes are let go, then compacts the envelopes' keys down to the bottom
    /// level: key by key for a few, the whole family for more (random ids spread over every
    /// file anyway). Slow on a large store; nodes run it in the background (`EnvelopePurger`).
    public func purgeErasedEnvelopes(_ ids: [Hash]) throws {
        guard !ids.isEmpty else { return }
        try database.flush()
        if ids.count <= Self.purgeKeyByKey {
            for id in Set(ids.map(HashKey.init)).map(\.bytes).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                try database.compactRange(Family.envelopes, from: id, through: id)
            }
        } else {
            try database.compactRange(Family.envelopes, from: nil, through: nil)
        }
    }
    static let purgeKeyByKey = 8

    /// Stores the envelopes of records committed without them, each only if it is the one its
    /// record names (by hash), in one synced write. Returns how many were stored. Called by the
    /// node serially with block appends.
    public func restoreMissingEnvelopes(_ candidates: [(envelope: Envelope, id: Hash)]) throws -> Int {
        let batch = WriteBatch(for: database)
        var done = Set<HashKey>()
        for (envelope, id) in candidates where !done.contains(HashKey(id)) {
            guard let (key, at) = try missingEnvelopeMark(of: id), let tx = try transaction(at: at.logIndex),
                  let record = tx.body.envelopedRecord, record.envelopeHash == envelope.hash else {
                continue
            }
            try batch.put(Family.envelopes, id, envelope.encoded)
            try batch.delete(Family.meta, key)
            done.insert(HashKey(id))
        }
        guard !done.isEmpty else { return 0 }
        try database.write(batch, sync: true)
        lock.withLock { _missingEnvelopes -= done.count }
        return done.count
    }

    public func checkpoint(height: UInt64) throws -> String? {
        guard let raw = try database.get(Family.checkpoints, Self.u64Key(height)) else { return nil }
        do { return try SignedNote.text(of: raw) } catch {
            // The store's own bytes: damage, not a client's mistake (a 5xx, not a 400).
            throw StorageError(.corruption, "the stored checkpoint of block \(height) is not a note: \(error)")
        }
    }

    /// The checkpoint of the head block, if any block has been committed.
    public func latestCheckpoint() throws -> String? {
        let h = head
        return h.height == 0 ? nil : try checkpoint(height: h.height)
    }

    /// The height of the first block whose log size is at least `size` (the checkpoint that covers it).
    public func height(coveringLogSize size: UInt64) throws -> UInt64? {
        var low: UInt64 = 1, high = head.height
        guard high > 0, size <= head.logSize else { return nil }
        while low < high {
            let mid = (low + high) / 2
            guard let h = try blockHeader(height: mid) else { throw LedgerError(.notFound, "block \(mid) missing") }
            if h.logSize >= size { high = mid } else { low = mid + 1 }
        }
        return low
    }

    /// Log indexes and kinds of a subject's transactions, oldest first, starting at `after`.
    public func subjectHistory(_ subject: USCC, after: UInt64? = nil, limit: Int) throws -> [(logIndex: UInt64, kind: UInt8)] {
        let prefix = Array(subject.code.utf8)
        if after == UInt64.max { return [] }
        let it = try database.makeIterator(Family.subjects)
        it.seek(prefix + Self.u64Key(after.map { $0 + 1 } ?? 0))
        var out: [(UInt64, UInt8)] = []
        while it.isValid, out.count < limit {
            let key = it.key
            guard key.count == 26, Array(key.prefix(18)) == prefix else { break }
            var r = ByteReader(Array(key.suffix(8)), context: "subject index")
            out.append((try r.u64("log_index"), it.value.first ?? 0))
            it.next()
        }
        try it.checkStatus()
        return out
    }

    // MARK: Models and score inputs

    /// The model an install_model governance transaction installs, if it is one.
    static func installedModel(_ tx: Transaction, logIndex: UInt64) -> InstalledModel? {
        guard case .governance(let g) = tx.body, g.action == .installModel else { return nil }
        return InstalledModel(name: g.name, version: g.version, document: g.document, logIndex: logIndex)
    }

    /// Loads the installed-model index; a store written before the index existed is scanned
    /// once for install_model transactions (and, when writable, the index is stored).
    private func loadModelIndex() throws {
        var models: [Hash: InstalledModel] = [:]
        if try database.get(Family.meta, MetaKey.modelIndex) != nil {
            models = try indexedDocuments(prefix: MetaKey.modelPrefix, what: "model", Self.installedModel)
        } else {
            let it = try database.makeIterator(Family.transactions)
            it.seekToFirst()
            while it.isValid {
                let raw = it.value
                if raw.count > 1, raw[1] == TransactionKind.governance.rawValue {
                    var r = ByteReader(it.key, context: "transaction key")
                    let index = try r.u64("log_index")
                    if let m = Self.installedModel(try Transaction.decode(raw, maxBytes: Int.max), logIndex: index) { models[m.hash] = m }
                }
                it.next()
            }
            try it.checkStatus()
            if database.mode == .readWrite {
                let batch = WriteBatch(for: database)
                for m in models.values { try batch.put(Family.meta, MetaKey.modelPrefix + m.hash, Self.u64Key(m.logIndex!)) }
                try batch.put(Family.meta, MetaKey.modelIndex, [1])
                try database.write(batch, sync: true)
            }
        }
        lock.withLock { _models = models }
    }

    /// Every model usable for scoring: genesis models first, then governance installs in log order.
    public func allModels() -> [InstalledModel] {
        genesis.models + lock.withLock { _models.values.sorted { $0.logIndex! < $1.logIndex! } }
    }

    /// The model with this hash, from genesis or committed governance.
    public func model(hash: Hash) -> InstalledModel? {
        genesis.model(hash: hash) ?? lock.withLock { _models[hash] }
    }

    /// The latest version of the model named `name`.
    public func latestModel(name: String) -> InstalledModel? {
        allModels().filter { $0.name == name }.max { $0.version < $1.version }
    }

    /// What a score of `subject` is computed from at log size `asOfLogSize` (default: the
    /// committed log): its records before that size and the as-of date (docs/SCORING.md §3.1).
    public func scoreInputs(subject: USCC, asOfLogSize: UInt64? = nil) throws -> (records: [LoggedTransaction], asOf: LedgerDate) {
        let size = asOfLogSize ?? head.logSize
        guard size >= 1, size <= head.logSize else {
            throw LedgerError(.invalidValue, "as-of log size \(size) must be 1…\(head.logSize)")
        }
        let records = try subjectRecords(subject, before: size, limit: FieldLimits.scoreInputs + 1)
        guard records.count <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "subject \(subject) has more than \(FieldLimits.scoreInputs) records; format v1 cannot score it")
        }
        guard let millis = try blockTimestamp(coveringLogSize: size) else { throw LedgerError(.notFound, "no block covers log size \(size)") }
        return (records, try LedgerDate(chinaStandardTimeMillis: millis))
    }

    /// Every subject's log indexes of attestations and amendments, in subject order, read from
    /// one iterator (a consistent view): `body` is called once per subject with at least one.
    /// Stops early when `body` returns false.
    public func forEachSubject(recordsBefore logSize: UInt64, _ body: (USCC, [UInt64]) throws -> Bool) throws {
        let it = try database.makeIterator(Family.subjects)
        it.seekToFirst()
        var current: [UInt8] = []
        var indexes: [UInt64] = []
        func flush() throws -> Bool {
            defer { indexes.removeAll(keepingCapacity: true) }
            guard !indexes.isEmpty, let text = String(validating: current, as: UTF8.self) else { return true }
            return try body(try USCC(text), indexes)
        }
        while it.isValid {
            let key = it.key
            guard key.count == 26 else { throw LedgerError(.invalidBlock, "subject index key of \(key.count) bytes") }
            let subject = Array(key.prefix(18))
            if subject != current {
                guard try flush() else { return }
                current = subject
            }
            var r = ByteReader(Array(key.suffix(8)), context: "subject index")
            let index = try r.u64("log_index")
            let kind = it.value.first ?? 0
            if index < logSize && (kind == TransactionKind.attestation.rawValue || kind == TransactionKind.amendment.rawValue) {
                indexes.append(index)
            }
            it.next()
        }
        try it.checkStatus()
        _ = try flush()
    }

    /// The number of distinct subjects in the subject index (one seek per subject).
    public func subjectCount() throws -> Int {
        let it = try database.makeIterator(Family.subjects)
        it.seekToFirst()
        var n = 0
        while it.isValid {
            let key = it.key
            n += 1
            it.seek(Array(key.prefix(18)) + [UInt8](repeating: 0xFF, count: 8))
            if it.isValid, it.key.prefix(18) == key.prefix(18) { it.next() }
        }
        try it.checkStatus()
        return n
    }

    /// Subjects with records (attestations, corrections, revocations) among `submissions` (a
    /// block just committed), each once, in order of first appearance: the subjects to re-score.
    /// A revocation counts for its target's subject.
    public func subjectsWithNewRecords(in submissions: [Submission]) throws -> [USCC] {
        var seen = Set<USCC>()
        var out: [USCC] = []
        for (i, s) in submissions.enumerated() where s.transaction.kind == .attestation || s.transaction.kind == .amendment {
            guard let subject = try subject(of: s.transaction, earlier: submissions[..<i]) else { continue }
            if seen.insert(subject).inserted { out.append(subject) }
        }
        return out
    }

    /// The subject's score updates, newest first (at most `limit`).
    public func scoreUpdates(of subject: USCC, limit: Int) throws -> [LoggedTransaction] {
        var out: [LoggedTransaction] = []
        try visitScoreUpdates(of: subject, before: .max, limit: limit) { out.append($0); return true }
        return out
    }

    /// Reads the subject's score updates below log size `logSize`, newest first, handing each to
    /// `visit` until it returns false or `limit` have been read. A transaction is read only when
    /// reached, so a caller looking for the newest one of some kind reads no more than it needs.
    public func visitScoreUpdates(of subject: USCC, before logSize: UInt64, limit: Int,
                                  _ visit: (LoggedTransaction) throws -> Bool) throws {
        guard logSize > 0, limit > 0 else { return }
        let prefix = Array(subject.code.utf8)
        let it = try database.makeIterator(Family.subjects)
        it.seekForPrev(Self.subjectKey(subject, logIndex: logSize - 1))
        var read = 0
        while it.isValid, read < limit {
            let key = it.key
            guard key.count == 26, Array(key.prefix(18)) == prefix else { break }
            if it.value.first == TransactionKind.scoreUpdate.rawValue {
                var r = ByteReader(Array(key.suffix(8)), context: "subject index")
                let index = try r.u64("log_index")
                if let tx = try transaction(at: index) {
                    read += 1
                    guard try visit(LoggedTransaction(logIndex: index, transaction: tx)) else { return }
                }
            }
            it.previous()
        }
        try it.checkStatus()
    }

    // MARK: LedgerStateReader

    public func isNonceUsed(signer: String, nonce: UInt64) throws -> Bool {
        try nonceHolder(signer: signer, nonce: nonce) != nil
    }

    /// The id of the committed transaction that used this nonce of this signer, if any.
    public func nonceHolder(signer: String, nonce: UInt64) throws -> Hash? {
        try database.get(Family.nonces, Self.nonceKey(signer: signer, nonce: nonce))
    }

    public func committedTransaction(id: Hash) throws -> Transaction? {
        guard let loc = try location(of: id) else { return nil }
        return try transaction(at: loc.logIndex)
    }

    public func payloadCommitmentHolder(_ commitment: Hash) throws -> Hash? {
        guard recordsIndexed else {
            throw LedgerError(.unsupportedVersion, "store at \(database.path) has no payload commitment index yet; open it read-write once (start the node) to build it")
        }
        guard let id = try database.get(Family.meta, MetaKey.commitmentPrefix + commitment) else { return nil }
        return try location(of: id) != nil ? id : nil
    }

    public func erasure(of record: Hash) throws -> Hash? {
        guard erasureIndexed else {
            throw LedgerError(.unsupportedVersion, "store at \(database.path) has no erasure index yet; open it read-write once (start the node) to build it")
        }
        return try database.get(Family.meta, MetaKey.erasedPrefix + record)
    }

    public func corrections(of record: Hash, limit: Int) throws -> [Hash] {
        guard recordsIndexed else {
            throw LedgerError(.unsupportedVersion, "store at \(database.path) has no correction index yet; open it read-write once (start the node) to build it")
        }
        let prefix = MetaKey.correctionPrefix + record
        let it = try database.makeIterator(Family.meta)
        it.seek(prefix)
        var found: [Hash] = []
        while found.count < limit, it.isValid, it.key.starts(with: prefix) {
            found.append(Array(it.key.dropFirst(prefix.count)))
            it.next()
        }
        try it.checkStatus()
        return found
    }

    public func committedLogSize() throws -> UInt64 { head.logSize }

    public func committedLogSize(atHeight height: UInt64) throws -> UInt64? {
        let h = head
        if height == h.height { return h.logSize }
        guard height < h.height else { return nil }
        guard height > 0 else { return 0 }
        guard let header = try blockHeader(height: height) else {
            throw LedgerError(.invalidBlock, "block \(height) is missing below the head (\(h.height))")
        }
        return header.logSize
    }

    public func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        try subjectRecordEntries(subject, before: logSize, limit: limit) { index, _ in
            guard let tx = try transaction(at: index) else {
                throw LedgerError(.invalidBlock, "subject index names log index \(index), which holds no transaction")
            }
            return LoggedTransaction(logIndex: index, transaction: tx)
        }
    }

    /// Through the transaction index: two reads, where a search over heights reads a header per
    /// step; and without replacing the one-entry cache of the head's time, which every query reads.
    public func blockTimestamp(holding id: Hash, at logIndex: UInt64) throws -> UInt64? {
        guard let location = try location(of: id), location.logIndex == logIndex else { return nil }
        return try blockHeader(height: location.height)?.timestampMillis
    }

    public func blockTimestamp(atHeight height: UInt64) throws -> UInt64? {
        guard height > 0, height <= head.height else { return nil }
        return try blockHeader(height: height)?.timestampMillis
    }

    public func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64? {
        if let c = lock.withLock({ _timestampCache }), c.logSize == logSize { return c.millis }
        let h = head
        if logSize == h.logSize, h.height > 0, let header = try blockHeader(height: h.height) {
            lock.withLock { _timestampCache = (logSize, header.timestampMillis) }
            return header.timestampMillis
        }
        guard logSize >= 1, let height = try height(coveringLogSize: logSize), let header = try blockHeader(height: height) else { return nil }
        lock.withLock { _timestampCache = (logSize, header.timestampMillis) }
        return header.timestampMillis
    }

    public func installedModel(hash: Hash) throws -> InstalledModel? { lock.withLock { _models[hash] } }

    public func installedModels() throws -> [InstalledModel] {
        lock.withLock { _models.values.sorted { $0.logIndex! < $1.logIndex! } }
    }

    public func installedPolicy(hash: Hash) throws -> InstalledPolicy? { lock.withLock { _policies[hash] } }

    public func installedPolicies() throws -> [InstalledPolicy] {
        lock.withLock { _policies.values.sorted { $0.logIndex! < $1.logIndex! } }
    }

    // MARK: MerkleHashSource

    public func nodeHash(level: Int, index: UInt64) throws -> Hash {
        if let h = lock.withLock({ _nodes.hash(level: level, index: index) }) { return h }
        return try tree.nodeHash(level: level, index: index)
    }

    /// The Merkle levels proofs read from memory rather than RocksDB (nil: none).
    public var merkleLevelsInMemory: ClosedRange<Int>? { lock.withLock { _nodes.levelsHeld } }

    public func inclusionProof(index: UInt64, size: UInt64) throws -> [Hash] {
        guard size <= head.logSize else {
            throw LedgerError(.invalidProof, "tree size \(size) is beyond the log (size \(head.logSize))")
        }
        return try Merkle.inclusionProof(self, index: index, size: size)
    }

    public func consistencyProof(oldSize: UInt64, newSize: UInt64) throws -> [Hash] {
        guard newSize <= head.logSize else {
            throw LedgerError(.invalidProof, "tree size \(newSize) is beyond the log (size \(head.logSize))")
        }
        return try Merkle.consistencyProof(self, oldSize: oldSize, newSize: newSize)
    }

    // MARK: Integrity

    /// Checks the head and the last `depth` blocks: links, certificates, transactions, roots,
    /// and the global log root. Throws, naming the block and what is wrong, if they do not add up.
    public func verifyIntegrity(depth: UInt64) throws {
        let h = head
        func fail(_ what: String) -> LedgerError {
            LedgerError(.invalidBlock, "store at \(database.path) is inconsistent: \(what); refusing to serve it (restore a backup or re-sync)")
        }
        guard frontier.root == h.logRoot else {
            throw fail("the log's Merkle nodes give root \(frontier.root.hexString.prefix(16))…, the head records \(h.logRoot.hexString.prefix(16))…")
        }
        if h.height == 0 { return }
        if try database.get(Family.transactions, Self.u64Key(h.logSize)) != nil {
            throw fail("a transaction is stored at log index \(h.logSize), past the head")
        }
        if try blockHeader(height: h.height + 1) != nil {
            throw fail("a block is stored at height \(h.height + 1), past the head")
        }
        var expectedHash = h.blockHash
        var height = h.height
        let lowest = h.height > depth ? h.height - depth + 1 : 1
        while height >= lowest {
            guard let header = try blockHeader(height: height) else { throw fail("block \(height) is missing") }
            guard header.hash == expectedHash else { throw fail("block \(height) does not hash to the value its successor links to") }
            guard header.chainID == genesis.chainID else { throw fail("block \(height) names chain \(header.chainID)") }
            guard let cert = try certificate(height: height) else { throw fail("block \(height) has no commit certificate") }
            do { try cert.verify(header: header, genesis: genesis) } catch { throw fail("block \(height): \(error)") }
            var tree = InMemoryMerkleTree()
            for index in header.firstLogIndex..<header.logSize {
                guard let raw = try database.get(Family.transactions, Self.u64Key(index)) else {
                    throw fail("block \(height): transaction at log index \(index) is missing")
                }
                let leaf = Merkle.leafHash(raw)
                guard try location(of: leaf)?.logIndex == index else {
                    throw fail("block \(height): transaction at log index \(index) does not match the transaction index (altered bytes?)")
                }
                tree.append(leafHash: leaf)
            }
            guard tree.root == header.transactionsRoot else {
                throw fail("block \(height): transactions do not hash to the header's transactions root")
            }
            guard try Merkle.root(self, size: header.logSize) == header.logRoot else {
                throw fail("block \(height): the log's Merkle nodes do not give the header's log root")
            }
            if height == h.height {
                guard let note = try checkpoint(height: height) else { throw fail("block \(height) has no checkpoint") }
                let (cp, _) = try Checkpoint.verify(signedNote: note, genesis: genesis)
                guard cp.size == header.logSize, cp.rootHash == header.logRoot else {
                    throw fail("checkpoint of block \(height) does not match its header")
                }
            }
            expectedHash = header.previousHash
            height -= 1
        }
        if lowest == 1 && expectedHash != genesis.hash {
            throw fail("block 1 does not link to the genesis hash")
        }
    }
}

extension ChainStore {
    /// A receipt for a committed transaction, proven against the latest checkpoint.
    public func receipt(for id: Hash) throws -> Receipt {
        guard let loc = try location(of: id), let tx = try transaction(at: loc.logIndex) else {
            throw LedgerError(.notFound, "transaction \(id.hexString) is not committed on this node")
        }
        let h = head
        guard let note = try checkpoint(height: h.height), let header = try blockHeader(height: loc.height),
              let cert = try certificate(height: loc.height) else {
            throw LedgerError(.notFound, "block \(loc.height) or checkpoint \(h.height) is missing")
        }
        return try Receipt(genesis: genesis, transaction: tx, logIndex: loc.logIndex,
                           proof: try inclusionProof(index: loc.logIndex, size: h.logSize), checkpoint: note,
                           header: header, certificate: cert)
    }
}

extension ChainStore {
    /// Builds the next block from `submissions`, has `signers` certify it and cosign its
    /// checkpoint, and appends it durably. Used by the dev ledger (one signer) and by tools
    /// and tests that write chains directly.
    @discardableResult
    public func appendBlock(_ submissions: [Submission], timestampMillis: UInt64, proposer: String,
                            signers: [(member: Member, key: Ed25519PrivateKey)], checkpointSigners: [(member: Member, key: Ed25519PrivateKey)]? = nil) throws -> BlockHeader {
        let h = head
        let built = BlockBuilder.build(chainID: genesis.chainID, height: h.height + 1, timestampMillis: timestampMillis,
                                       previousHash: h.blockHash, frontier: frontier,
                                       transactions: submissions.map(\.transaction), proposer: proposer)
        // One signer decides in round 0; tools writing multi-signer chains directly do the same.
        let certificate = CommitCertificate(height: built.header.height, round: 0, blockHash: built.header.hash,
                                            signatures: signers.map { BlockBuilder.commitSignature(header: built.header, round: 0, validator: $0.member, key: $0.key) })
        var note = SignedNote(text: Checkpoint(header: built.header, round: 0).text)
        for s in checkpointSigners ?? signers { note.sign(name: s.member.id, key: s.key) }
        try append(block: built, certificate: certificate, submissions: submissions, checkpoint: note.serialized)
        return built.header
    }
}
