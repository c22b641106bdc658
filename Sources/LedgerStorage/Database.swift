import CRocksDB
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a store is opened.
public enum OpenMode: Sendable, Equatable {
    /// The single writer (the node). Creates the store and missing column families.
    case readWrite
    /// A reader beside, or instead of, a live node: sees the store as of opening.
    case readOnly
    /// A secondary instance that can follow a live primary (`catchUpWithPrimary()`).
    case secondary(path: String)
}

/// A RocksDB database with named column families.
///
/// One `Database` is safe to use from many threads: RocksDB's handles are thread-safe.
public final class Database: @unchecked Sendable {
    private let handle: OpaquePointer
    private let options: OpaquePointer
    private let tableOptions: OpaquePointer
    private let cache: OpaquePointer
    private let readOptions: OpaquePointer
    private let syncedWriteOptions: OpaquePointer
    private let unsyncedWriteOptions: OpaquePointer
    /// Position of each column family's handle in `columnFamilyHandles`.
    private var columnFamilyIndexes: [String: Int] = [:]
    let columnFamilyHandles: [OpaquePointer]
    public let path: String
    public let mode: OpenMode

    /// The first corruption RocksDB reported for this store since it was opened (a bad checksum
    /// in a table file), kept: it is not transient, and the node's health says so. Only the head
    /// is checked at start, so a store corrupt further down answered "retry later" on reads of
    /// those blocks while its health said ok (found by black-box testing).
    public var corruption: String? { corruptionLock.withLock { firstCorruption } }
    private let corruptionLock = NSLock()
    private var firstCorruption: String?

    /// `error`, after noting it if it is a corruption.
    func noting(_ error: StorageError) -> StorageError {
        if error.code == .corruption { corruptionLock.withLock { if firstCorruption == nil { firstCorruption = error.reason } } }
        return error
    }

    /// RocksDB's compaction threads ("rocksdb:low") run at nice 10 (`reniceBackgroundThreads`,
    /// after each read-write open). Compactions merge table files in the background, seconds at a
    /// time (an L0→L1 compaction of a 100,000-subject store rewrites about 200 MB). At normal
    /// priority, on a 2-core machine, one that starts right after opening the store took a core
    /// from queries and commits, and a node serving 1,000 queries/s fell behind by seconds
    /// (docs/BENCHMARKS.md). At nice 10 a compaction runs on idle time and, when the cores are
    /// busy, still gets about a tenth of one: RocksDB's own `lower_thread_pool_cpu_priority`
    /// (nice 19, about 1.5 %) could starve it while the CPU goes to work that does not write
    /// (signature checks, refused requests), until level-0 files reached RocksDB's write stop
    /// and commits waited. Flushes: `flushNice`.
    static let compactionNice: Int32 = 10
    /// RocksDB's flush thread ("rocksdb:high") runs at nice 10 too (`CREDIT_NODE_FLUSH_NICE`
    /// sets another value; 0 is normal priority). At 1,000 queries/s the WAL reaches its 32 MiB
    /// cap about every 30 s, and RocksDB then flushes every column family at once: at normal
    /// priority that burst took a core from the queries, and most of a run's queries over 5 ms
    /// fell in its seconds. At nice 10, in six pairs of runs alternating with normal priority,
    /// p99 was lower in five (median of the six 6.3 ms against 11.2 ms), with dev-node ingest and
    /// consortium throughput unchanged (docs/BENCHMARKS.md, 2026-12-04; on a noisy host, so the
    /// size of the effect is uncertain, but no cost was found). A flush is not starved: a nice-10
    /// thread still gets about a tenth of a busy core and all of an idle one, a 32 MiB memtable
    /// takes a fraction of a second of CPU to flush, and while writes wait for it the cores they
    /// used are free.
    static let flushNice: Int32 = Int32(ProcessInfo.processInfo.environment["CREDIT_NODE_FLUSH_NICE"] ?? "")
        .flatMap { (-20...19).contains($0) ? $0 : nil } ?? 10

    /// Sets this process's RocksDB compaction threads to `compactionNice` and its flush threads
    /// to `flushNice`; whether both kinds were found.
    @discardableResult
    static func reniceBackgroundThreads() -> Bool {
        #if os(Linux)
        guard let dir = opendir("/proc/self/task") else { return false }
        defer { closedir(dir) }
        var foundLow = false, foundHigh = false
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard let tid = Int32(name) else { continue }
            let fd = open("/proc/self/task/\(name)/comm", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buffer, buffer.count)
            close(fd)
            guard n > 0 else { continue }
            if buffer[..<n].starts(with: Array("rocksdb:low".utf8)) {
                foundLow = true
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), compactionNice)
            } else if buffer[..<n].starts(with: Array("rocksdb:high".utf8)) {
                foundHigh = true
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), flushNice)
            }
        }
        return foundLow && foundHigh
        #else
        return false
        #endif
    }

    /// Opens (or, read-write, creates) the store at `path` with the given column families.
    public init(path: String, columnFamilies names: [String], mode: OpenMode = .readWrite,
                blockCacheBytes: Int = 64 << 20) throws {
        self.path = path
        self.mode = mode
        if mode == .readWrite {
            try Self.checkFreeSpace(at: path)
            try Self.checkColumnFamilies(path: path, expected: names)
        }
        let options = rocksdb_options_create()!
        let cache = rocksdb_cache_create_lru(blockCacheBytes)!
        let tableOptions = rocksdb_block_based_options_create()!
        rocksdb_block_based_options_set_block_cache(tableOptions, cache)
        rocksdb_block_based_options_set_filter_policy(tableOptions, rocksdb_filterpolicy_create_bloom(10))
        rocksdb_options_set_block_based_table_factory(options, tableOptions)
        rocksdb_options_set_create_if_missing(options, mode == .readWrite ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(options, mode == .readWrite ? 1 : 0)
        // Detect corruption eagerly. Replaying the write-ahead log drops only a record cut short
        // at its end (a write that never finished, so never acknowledged: every block is one
        // synced write batch, so what remains ends at a block boundary) and refuses any other
        // damage (kTolerateCorruptedTailRecords). Point-in-time recovery, used until 2026-12-06,
        // stopped at the first damaged record and opened without a word: one flipped byte in the
        // log cost a node six acknowledged blocks (found by black-box testing).
        rocksdb_options_set_paranoid_checks(options, 1)
        rocksdb_options_set_wal_recovery_mode(options, 0) // kTolerateCorruptedTailRecords
        rocksdb_options_set_compression(options, 0)
        // RocksDB's own info log is rolled at every open (LOG.old.*): keep the last few, not 1,000
        // (a node restarted often piled them up; found by black-box testing).
        rocksdb_options_set_keep_log_file_num(options, 8)
        // Small column families (meta, blocks) would otherwise pin every WAL file until they
        // flush; capping the WAL forces them out, which bounds recovery time and the memory a
        // read-only opener (the verifier) spends replaying the log into memtables: with a live
        // writer, `credit-verify chain` on a 1,000,000-transaction store peaked at 184 MB with
        // this cap and at 261-274 MB with 256 MiB (the verifier's target is 200 MB). Reaching the
        // cap flushes every column family holding the oldest log at once: at 1,000 queries/s
        // about every 30 s, a burst that shows in query tails, which is why the flush thread runs
        // at `flushNice` (docs/BENCHMARKS.md, 2026-12-04).
        rocksdb_options_set_max_total_wal_size(options, 32 << 20)
        rocksdb_options_set_write_buffer_size(options, 32 << 20)
        // Most point reads look for keys that are not there (an unused nonce, a new
        // transaction id): a whole-key Bloom filter on each memtable answers those without
        // searching its skip list. 2 % of the write buffer.
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(options, 0.02)
        rocksdb_options_set_memtable_whole_key_filtering(options, 1)
        // Background writes reach the disk in 1 MiB steps instead of all at once when a table
        // file is finished. On ext4 (data=ordered) a commit's fsync otherwise waits for every
        // dirty page of a just-flushed table file: tens of milliseconds in which no block commits.
        rocksdb_options_set_bytes_per_sync(options, 1 << 20)
        // No rate limiter on background writes. One (64 MiB/s) was set from 2026-11-22 to
        // 2026-12-04, and RocksDB 7.8's `GenericRateLimiter` can leave every waiting thread in an
        // untimed wait, so a flush waits until some other background write asks for bytes
        // (facebook/rocksdb#11742, fixed in 8.6 by #11763; Debian 12 ships 7.8.3). On a validator
        // stopped with SIGTERM nothing else asks: a flush hung in it for good, and the node with
        // it, waiting for that flush to stop (docs/BENCHMARKS.md, 2026-12-04).
        if case .secondary = mode { rocksdb_options_set_max_open_files(options, -1) }

        let allNames = ["default"] + names.filter { $0 != "default" }
        var cfOptions: [OpaquePointer?] = Array(repeating: options, count: allNames.count)
        var cfHandles: [OpaquePointer?] = Array(repeating: nil, count: allNames.count)
        var error: UnsafeMutablePointer<CChar>? = nil
        let cNames = allNames.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        let db: OpaquePointer? = cNames.withUnsafeBufferPointer { namesBuffer in
            let namePointers = UnsafeRawPointer(namesBuffer.baseAddress!).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
            return cfOptions.withUnsafeMutableBufferPointer { optionsBuffer in
                let optionPointers = UnsafeRawPointer(optionsBuffer.baseAddress!).assumingMemoryBound(to: OpaquePointer?.self)
                switch mode {
                case .readWrite:
                    return rocksdb_open_column_families(options, path, Int32(allNames.count), namePointers,
                                                        optionPointers, &cfHandles, &error)
                case .readOnly:
                    return rocksdb_open_for_read_only_column_families(options, path, Int32(allNames.count), namePointers,
                                                                      optionPointers, &cfHandles, 0, &error)
                case .secondary(let secondaryPath):
                    return rocksdb_open_as_secondary_column_families(options, path, secondaryPath, Int32(allNames.count),
                                                                     namePointers, optionPointers, &cfHandles, &error)
                }
            }
        }
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            rocksdb_options_destroy(options)
            rocksdb_block_based_options_destroy(tableOptions)
            rocksdb_cache_destroy(cache)
            if message.contains("/LOCK") && (message.contains("Resource temporarily unavailable") || message.contains("lock hold")) {
                throw StorageError(.open, "the store at \(path) is already open for writing (by a running node, or a tool writing to it); "
                                   + "stop that first (RocksDB: \(message))")
            }
            let damaged = message.contains("Corruption")
            throw StorageError.fromRocksDB("cannot open store at \(path): \(message)"
                + (damaged ? " (a table file or the write-ahead log, which may hold committed blocks, is damaged; nothing was changed. "
                   + "Restore the directory from a backup, or move it aside and let the node fetch the chain from its peers)" : ""),
                default: .open)
        }
        guard let db else {
            throw StorageError(.open, "cannot open store at \(path)")
        }
        handle = db
        self.options = options
        self.tableOptions = tableOptions
        self.cache = cache
        readOptions = rocksdb_readoptions_create()!
        rocksdb_readoptions_set_verify_checksums(readOptions, 1)
        syncedWriteOptions = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(syncedWriteOptions, 1)
        unsyncedWriteOptions = rocksdb_writeoptions_create()!
        columnFamilyHandles = cfHandles.map { $0! }
        if mode == .readWrite {
            // The pool's threads start with the open and name themselves as they run.
            var tries = 0
            while !Self.reniceBackgroundThreads(), tries < 40 { usleep(5_000); tries += 1 }
        }
        for (i, name) in allNames.enumerated() { columnFamilyIndexes[name] = i }
    }

    /// The free space a store needs to be opened for writing: RocksDB writes a new manifest and
    /// options file and starts a write-ahead log (32 MiB memtables) before anything else. With a
    /// full disk, RocksDB 7.8 as Debian builds it aborted the process on a failed sync at open
    /// (an assertion, with a backtrace) instead of returning an error (found by black-box
    /// testing, 2026-12-06); a running store that fills its disk reports the failed write.
    public static let minimumFreeBytesToOpen: UInt64 = 64 << 20

    /// Refuses to open for writing on a file system with less than `needed` bytes free, naming
    /// the path and how much is free. The store's directory, or the nearest existing parent.
    static func checkFreeSpace(at path: String, needed: UInt64 = minimumFreeBytesToOpen, writing: Bool = false) throws {
        var probe = path
        while access(probe, F_OK) != 0, probe != "/", !probe.isEmpty {
            probe = (probe as NSString).deletingLastPathComponent
            if probe.isEmpty { probe = "." }
        }
        var stats = statvfs()
        guard statvfs(probe, &stats) == 0 else { return }   // cannot tell: let RocksDB try
        let free = UInt64(stats.f_bavail) &* UInt64(stats.f_frsize)
        guard free >= needed else {
            if writing {
                throw StorageError(.noSpace, "no space left on the device holding \(path): \(free) bytes free, under the \(needed) bytes this write "
                                   + "needs (its own bytes and the reserve a store keeps, as RocksDB cannot run out of space safely); nothing was written; free some space")
            }
            throw StorageError(.write, "no space left on the device holding \(path): \(free) bytes free, "
                               + "and a store needs at least \(needed) to open for writing; free some space and start again")
        }
    }

    /// An existing store must hold exactly the column families this version uses. Otherwise it
    /// was written by another version of the store format, and it is refused before it is opened
    /// for writing, which would create the missing families (changing the store) or fail with
    /// RocksDB's own message.
    static func checkColumnFamilies(path: String, expected names: [String]) throws {
        guard access(path + "/CURRENT", F_OK) == 0 else { return }   // a new store
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        var count = 0
        var error: UnsafeMutablePointer<CChar>? = nil
        guard let list = rocksdb_list_column_families(options, path, &count, &error) else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            if let error { rocksdb_free(error) }
            throw StorageError.fromRocksDB("cannot list the column families of the store at \(path): \(message)", default: .open)
        }
        defer { rocksdb_list_column_families_destroy(list, count) }
        let present = Set((0..<count).compactMap { list[$0].map { String(cString: $0) } })
        let wanted = Set(names + ["default"])
        let unknown = present.subtracting(wanted).sorted(), missing = wanted.subtracting(present).sorted()
        if !unknown.isEmpty {
            throw StorageError(.open, "the store at \(path) holds column families this version does not know (\(unknown.joined(separator: ", "))): "
                               + "it was written by a newer version; open it with that version. Nothing was changed")
        }
        // None of them at all is damage, not age: an emptied CURRENT file, or one naming a
        // missing MANIFEST, lists the default family alone (it was called an older format; found
        // by black-box testing).
        if !names.isEmpty, present.subtracting(["default"]).isEmpty {
            throw StorageError(.corruption, "the store at \(path) lists none of its column families: its CURRENT or MANIFEST file is damaged, "
                               + "or this is not a CreditLedger store (`credit-verify chain --data-dir` names the damage); restore it from a copy. Nothing was changed")
        }
        if !missing.isEmpty {
            throw StorageError(.open, "the store at \(path) lacks column families this version needs (\(missing.joined(separator: ", "))): "
                               + "it was written by an older version of the store format. Nothing was changed")
        }
    }

    deinit {
        for cf in columnFamilyHandles { rocksdb_column_family_handle_destroy(cf) }
        rocksdb_close(handle)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncedWriteOptions)
        rocksdb_writeoptions_destroy(unsyncedWriteOptions)
        rocksdb_options_destroy(options)
        rocksdb_block_based_options_destroy(tableOptions)
        rocksdb_cache_destroy(cache)
    }

    /// Flushes what only the write-ahead log holds into table files (read-write), then stops
    /// flushes and compactions, waiting at most `limit` in all. Call it before the process exits
    /// with the database still open (a compaction running while the C++ runtime tears down
    /// aborts the process). Reads and writes still work; nothing is lost, since every write is
    /// in the WAL. The flush means a log cut short or lost after a clean stop costs nothing: it
    /// had dropped every block since the last flush, and the node came back lower without a word
    /// (found by black-box testing); and a reader of the stopped store (`credit-verify chain`)
    /// replays no log into memory. A failed flush (a full disk) leaves the log as it is. False
    /// when the work did not end in time: the caller should then leave with `_exit`, which is as
    /// safe as a crash, which every committed write survives.
    /// `flushFailure` says why the flush failed (the stop goes on without it).
    public func stopBackgroundWork(within limit: Duration, flushFailure: @escaping @Sendable (String) -> Void = { _ in }) -> Bool {
        // The thread holds the database: if the caller goes on and drops it, it is not closed
        // under the cancel.
        Self.finishes(within: limit) { [self] in
            if self.mode == .readWrite {
                do { try self.flush() } catch { flushFailure("\(error)") }
            }
            rocksdb_cancel_all_background_work(self.handle, 1)
        }
    }

    /// Runs `work` on a thread of its own; true when it returned within `limit`.
    static func finishes(within limit: Duration, _ work: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread { work(); done.signal() }
        thread.start()
        let (seconds, attoseconds) = limit.components
        return done.wait(timeout: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))) == .success
    }

    /// The table files the store uses now: column family, full path and size, as RocksDB
    /// reports them (`rocksdb_livefiles`).
    public func liveTableFiles() -> [(family: String, path: String, bytes: Int)] {
        guard let files = rocksdb_livefiles(handle) else { return [] }
        defer { rocksdb_livefiles_destroy(files) }
        var result: [(family: String, path: String, bytes: Int)] = []
        for i in 0..<rocksdb_livefiles_count(files) {
            guard let family = rocksdb_livefiles_column_family_name(files, i),
                  let name = rocksdb_livefiles_name(files, i) else { continue }
            // Names are given from the store's directory on ("/000123.sst").
            let file = String(cString: name)
            result.append((String(cString: family), path + (file.hasPrefix("/") ? "" : "/") + file, Int(rocksdb_livefiles_size(files, i))))
        }
        return result
    }

    func columnFamilyIndex(_ name: String) throws -> Int {
        guard let i = columnFamilyIndexes[name] else {
            throw StorageError(.unknownColumnFamily, "no column family named \(name)")
        }
        return i
    }

    func columnFamily(_ name: String) throws -> OpaquePointer { columnFamilyHandles[try columnFamilyIndex(name)] }

    /// A view of the store as of now: reads through it see no later write, and a batch is in
    /// it whole or not at all. Released when the last reference goes.
    public final class Snapshot: @unchecked Sendable {
        fileprivate let database: Database
        private let snapshot: OpaquePointer
        fileprivate let readOptions: OpaquePointer
        fileprivate init(_ database: Database) {
            self.database = database
            snapshot = rocksdb_create_snapshot(database.handle)!
            readOptions = rocksdb_readoptions_create()!
            rocksdb_readoptions_set_verify_checksums(readOptions, 1)
            rocksdb_readoptions_set_snapshot(readOptions, snapshot)
        }
        deinit {
            rocksdb_readoptions_destroy(readOptions)
            rocksdb_release_snapshot(database.handle, snapshot)
        }
    }

    public func snapshot() -> Snapshot { Snapshot(self) }

    private func readOptions(_ snapshot: Snapshot?) -> OpaquePointer {
        guard let snapshot else { return readOptions }
        precondition(snapshot.database === self, "a snapshot of another database")
        return snapshot.readOptions
    }

    /// The value stored under `key`, or nil when there is none (as of `snapshot`, when given).
    public func get(_ family: String, _ key: [UInt8], in snapshot: Snapshot? = nil) throws -> [UInt8]? {
        Self.countersOff()
        let cf = try columnFamily(family)
        let options = readOptions(snapshot)
        var length = 0
        var error: UnsafeMutablePointer<CChar>? = nil
        let value = key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { kc in
                rocksdb_get_cf(handle, options, cf, kc.baseAddress, kc.count, &length, &error)
            }
        }
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw noting(StorageError.fromRocksDB("read from \(family) failed: \(message)", default: .read))
        }
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    /// Turns RocksDB's per-thread performance counters off for the calling thread. They are on
    /// by default (`kEnableCount`): every key comparison, in memtable inserts and in reads, then
    /// bumps a counter in a C++ `thread_local` that a shared library reaches through
    /// `__tls_get_addr`, and nothing here reads them. The setting is per thread, and the threads
    /// that call in are NIO's, Dispatch's and Swift's, so it is set on each call: one
    /// thread-local store.
    @inline(__always)
    static func countersOff() { rocksdb_set_perf_level(1) } // 1: kDisable

    /// The free space a write leaves untouched: a write that finds less free is refused before
    /// RocksDB sees it. RocksDB 7.8 as Debian builds it asserts once a write of its own has failed
    /// for space: its info log (`LOG`) fails on the full disk, and the next line it logs (the
    /// failed write's own report) aborted the process, while the node was to stay up and answer
    /// 503 (found by black-box testing, 2026-12-07). The reserve, as to open, also leaves
    /// RocksDB room to flush its memtables.
    public var writeReserveBytes: UInt64 = minimumFreeBytesToOpen

    /// Why a write of `bytes` would be refused for lack of space now (`StorageError.noSpace`), or nil.
    public func spaceProblem(forWriting bytes: UInt64) -> StorageError? {
        let (needed, over) = writeReserveBytes.addingReportingOverflow(bytes)
        do { try Self.checkFreeSpace(at: path, needed: over ? .max : needed, writing: true) } catch let e as StorageError { return e } catch { return nil }
        return nil
    }

    /// Applies a batch atomically. With `sync` (the default) it is on stable storage when this
    /// returns. Refused, writing nothing, when the disk has less free than the batch's bytes
    /// and `writeReserveBytes`.
    public func write(_ batch: WriteBatch, sync: Bool = true) throws {
        let rocksBatch = batch.materialize()
        defer { rocksdb_writebatch_destroy(rocksBatch) }
        // The batch's own bytes go to the log, and later to a table file, on top of the reserve.
        var batchBytes = 0
        _ = rocksdb_writebatch_data(rocksBatch, &batchBytes)
        if let problem = spaceProblem(forWriting: UInt64(batchBytes)) { throw problem }
        Self.countersOff()
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_write(handle, sync ? syncedWriteOptions : unsyncedWriteOptions, rocksBatch, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw noting(StorageError.fromRocksDB("write of \(batch.count) records failed: \(message)" + (sync ? " (a synced write that fails may still be on disk after a restart)" : ""), default: .write))
        }
    }

    /// A cursor over one column family, in key order (as of `snapshot`, when given; the
    /// iterator keeps the snapshot alive).
    public func makeIterator(_ family: String, in snapshot: Snapshot? = nil) throws -> Iterator {
        Self.countersOff()
        let cf = try columnFamily(family)
        return Iterator(rocksdb_create_iterator_cf(handle, readOptions(snapshot), cf)!, keeping: snapshot, of: self)
    }

    /// Writes a consistent, openable copy of the store to `directory` (which must not exist).
    public func checkpoint(to directory: String) throws {
        var error: UnsafeMutablePointer<CChar>? = nil
        let checkpoint = rocksdb_checkpoint_object_create(handle, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw StorageError(.checkpoint, "cannot create checkpoint: \(message)")
        }
        defer { rocksdb_checkpoint_object_destroy(checkpoint) }
        rocksdb_checkpoint_create(checkpoint, directory, 0, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw StorageError(.checkpoint, "cannot create checkpoint at \(directory): \(message)")
        }
    }

    /// Flushes memtables to table files (used by backups and tests; commits do not need it).
    public func flush() throws {
        let options = rocksdb_flushoptions_create()!
        defer { rocksdb_flushoptions_destroy(options) }
        rocksdb_flushoptions_set_wait(options, 1)
        var error: UnsafeMutablePointer<CChar>? = nil
        for cf in columnFamilyHandles {
            rocksdb_flush_cf(handle, options, cf, &error)
            if let error {
                let message = String(cString: error)
                rocksdb_free(error)
                throw noting(StorageError.fromRocksDB("flush failed: \(message)", default: .write))
            }
        }
    }

    /// Rewrites the table files of `family` holding keys from `from` through `through` (nil:
    /// from the first, or through the last) down to the bottom level, so that deleted keys
    /// there are gone from the files, not only hidden. Waits for it; automatic compactions go
    /// on meanwhile. A store being closed ends it early.
    public func compactRange(_ family: String, from: [UInt8]?, through: [UInt8]?) throws {
        let options = rocksdb_compactoptions_create()!
        defer { rocksdb_compactoptions_destroy(options) }
        rocksdb_compactoptions_set_exclusive_manual_compaction(options, 0)
        rocksdb_compactoptions_set_bottommost_level_compaction(options, 2)   // kForce
        let cf = try columnFamily(family)
        func call(_ start: UnsafePointer<CChar>?, _ startLength: Int, _ limit: UnsafePointer<CChar>?, _ limitLength: Int) {
            rocksdb_compact_range_cf_opt(handle, cf, options, start, startLength, limit, limitLength)
        }
        let begin = from ?? [], end = through ?? []
        begin.withUnsafeBufferPointer { b in
            end.withUnsafeBufferPointer { e in
                b.withMemoryRebound(to: CChar.self) { bc in
                    e.withMemoryRebound(to: CChar.self) { ec in
                        call(from == nil ? nil : bc.baseAddress, bc.count, through == nil ? nil : ec.baseAddress, ec.count)
                    }
                }
            }
        }
    }

    /// For a secondary instance: apply what the primary has written since.
    public func catchUpWithPrimary() throws {
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_try_catch_up_with_primary(handle, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw noting(StorageError.fromRocksDB("cannot catch up with primary: \(message)", default: .read))
        }
    }
}

/// An atomic group of writes.
///
/// The writes are handed to RocksDB sorted by column family and key (writes to one key keep
/// their order, so the outcome is the same). A block's keys are mostly hashes in random order;
/// in key order each memtable insertion starts from where the previous one ended instead of
/// searching the whole skip list, which makes committing a large block markedly cheaper.
public final class WriteBatch: @unchecked Sendable {
    private struct Entry {
        let family: Int
        let key: [UInt8]
        let value: [UInt8]?   // nil: delete
    }
    private let database: Database
    private var entries: [Entry] = []

    public init(for database: Database) {
        self.database = database
    }

    public var count: Int { entries.count }

    public func put(_ family: String, _ key: [UInt8], _ value: [UInt8]) throws {
        entries.append(Entry(family: try database.columnFamilyIndex(family), key: key, value: value))
    }

    public func delete(_ family: String, _ key: [UInt8]) throws {
        entries.append(Entry(family: try database.columnFamilyIndex(family), key: key, value: nil))
    }

    /// The RocksDB batch, in key order within each column family; the caller destroys it.
    func materialize() -> OpaquePointer {
        // Sort (family, first 8 key bytes, position) triples; only keys that share their first
        // 8 bytes need the full comparison.
        var order: [(head: UInt64, family: Int, position: Int)] = []
        order.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() { order.append((Self.head(e.key), e.family, i)) }
        order.withUnsafeMutableBufferPointer { buffer in
            entries.withUnsafeBufferPointer { all in
                buffer.sort { x, y in
                    if x.family != y.family { return x.family < y.family }
                    if x.head != y.head { return x.head < y.head }
                    let c = Self.compare(all[x.position].key, all[y.position].key)
                    return c != 0 ? c < 0 : x.position < y.position
                }
            }
        }
        let handle = rocksdb_writebatch_create()!
        for o in order {
            let e = entries[o.position]
            let cf = database.columnFamilyHandles[e.family]
            e.key.withUnsafeBufferPointer { k in
                k.withMemoryRebound(to: CChar.self) { kc in
                    if let value = e.value {
                        value.withUnsafeBufferPointer { v in
                            v.withMemoryRebound(to: CChar.self) { vc in
                                rocksdb_writebatch_put_cf(handle, cf, kc.baseAddress, kc.count, vc.baseAddress, vc.count)
                            }
                        }
                    } else {
                        rocksdb_writebatch_delete_cf(handle, cf, kc.baseAddress, kc.count)
                    }
                }
            }
        }
        return handle
    }

    /// The first 8 bytes of a key, big-endian, zero-padded: orders like the key's prefix.
    static func head(_ key: [UInt8]) -> UInt64 {
        var h: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(i < key.count ? key[i] : 0) }
        return h
    }

    /// RocksDB's default (bytewise) key order.
    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int32 {
        a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                return c != 0 ? c : (x.count < y.count ? -1 : (x.count > y.count ? 1 : 0))
            }
        }
    }
}

/// A RocksDB iterator. Not thread-safe; use one per task.
public final class Iterator {
    private let handle: OpaquePointer
    /// The snapshot the iterator reads, released only after the iterator is destroyed.
    private let snapshot: Database.Snapshot?
    /// Told of a corruption met while iterating.
    private weak var database: Database?

    init(_ handle: OpaquePointer, keeping snapshot: Database.Snapshot? = nil, of database: Database? = nil) {
        self.handle = handle
        self.snapshot = snapshot
        self.database = database
    }
    deinit { rocksdb_iter_destroy(handle) }

    public func seekToFirst() { rocksdb_iter_seek_to_first(handle) }
    public func seekToLast() { rocksdb_iter_seek_to_last(handle) }

    public func seek(_ key: [UInt8]) {
        Database.countersOff()
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek(handle, $0.baseAddress, $0.count) }
        }
    }

    public func seekForPrev(_ key: [UInt8]) {
        Database.countersOff()
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { rocksdb_iter_seek_for_prev(handle, $0.baseAddress, $0.count) }
        }
    }

    public var isValid: Bool { rocksdb_iter_valid(handle) != 0 }
    public func next() { rocksdb_iter_next(handle) }
    public func previous() { rocksdb_iter_prev(handle) }

    public var key: [UInt8] {
        var length = 0
        let pointer = rocksdb_iter_key(handle, &length)!
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    public var value: [UInt8] {
        var length = 0
        let pointer = rocksdb_iter_value(handle, &length)!
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// Throws if iteration stopped because of an error rather than the end of the data.
    public func checkStatus() throws {
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(handle, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            let error = StorageError.fromRocksDB("iteration failed: \(message)", default: .read)
            throw database?.noting(error) ?? error
        }
    }
}
