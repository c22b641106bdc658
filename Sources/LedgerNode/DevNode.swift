import Foundation
import Hummingbird
import LedgerCore
import LedgerCrypto
import LedgerStore
import Logging
import NIOCore
import Policy
import ServiceLifecycle
import Synchronization

/// The single-node development ledger: one process, one RocksDB data directory, one member
/// holding every writing role and the only validator.
///
/// Data directory layout:
/// - `genesis.json`: the one-member genesis, created on first start;
/// - `keys/dev.key`: the member's secret keys (mode 0600);
/// - `ledger/`: the RocksDB store;
/// - `http.addr`: the address the API listens on, written once it is listening.
public enum DevNode {
    public static let memberID = "dev"

    public struct Opened {
        public let store: ChainStore
        public let keys: MemberSecretKeys
        public let createdGenesis: Bool
    }

    /// Opens the dev ledger in `dataDirectory`, creating genesis and keys on first start.
    /// `models` and `policies` are installed in the genesis made on first start; afterwards the
    /// genesis must already install them (a restart with the same ones), or opening is refused.
    public static func open(dataDirectory: String, now: Date = Date(), models: [InstalledModel] = [],
                            policies: [(source: String, bytes: [UInt8])] = []) throws -> Opened {
        let fm = FileManager.default
        // "/tmp/x/" would stage the first start in "/tmp/x/.init", inside the directory it then replaces.
        // A symbolic link is followed: the ledger goes where it points (the link itself was
        // replaced by a directory on its own filesystem; found by black-box testing).
        let dataDirectory = URL(fileURLWithPath: dataDirectory).standardizedFileURL.resolvingSymlinksInPath().path
        // A link still there after resolving points nowhere: refused, never replaced (found in review).
        if let target = try? fm.destinationOfSymbolicLink(atPath: dataDirectory) {
            throw LedgerError(.invalidGenesis, "\(dataDirectory) is a symbolic link to \(target), which does not exist; create that directory first, or give another --data-dir")
        }
        let genesisPath = dataDirectory + "/genesis.json"
        let keyPath = dataDirectory + "/keys/dev.key"
        let storePath = dataDirectory + "/ledger"
        var created = false
        if !fm.fileExists(atPath: genesisPath) {
            guard !fm.fileExists(atPath: storePath) else {
                throw LedgerError(.invalidGenesis, "\(storePath) exists but \(genesisPath) does not; refusing to guess the genesis")
            }
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: dataDirectory, isDirectory: &isDirectory) {
                // Only a missing path or an empty directory is replaced by the new ledger.
                guard isDirectory.boolValue else {
                    throw LedgerError(.invalidGenesis, "\(dataDirectory) is a file, not a directory; refusing to initialise a dev ledger there")
                }
                guard try fm.contentsOfDirectory(atPath: dataDirectory).isEmpty else {
                    throw LedgerError(.invalidGenesis, "\(dataDirectory) is not empty and holds no genesis.json; refusing to initialise a dev ledger there")
                }
            }
            // Build the whole directory aside and rename it into place, so a crash during the
            // first start leaves either nothing or a complete dev ledger.
            let staging = dataDirectory + ".init"
            try DurableFile.removeStaging(staging, store: staging + "/ledger", hasBlocks: ChainStore.holdsBlocks)
            // A first start that fails (a policy refused, say) takes its staging directory, and
            // the secret key in it, away with it (it stayed behind; found by black-box testing).
            var staged = false
            defer { if staged { try? fm.removeItem(atPath: staging) } }
            try fm.createDirectory(atPath: staging + "/keys", withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o700])
            staged = true
            let keys = MemberSecretKeys(memberID: memberID)
            try keys.write(to: staging + "/keys/dev.key")
            let member = Member(id: memberID, name: "Development member (all writing roles)",
                                roles: [.validator, .custodian, .governmentIssuer, .bank, .scorer],
                                signingKey: keys.signing.publicKey, encryptionKey: keys.encryption.publicKey)
            let chainID = "creditledger.dev/" + SecureRandom.bytes(4).hexString
            let time = ISO8601DateFormatter().string(from: now)
            var bytes = try Genesis.render(chainID: chainID, genesisTime: time, members: [member], models: models)
            if !policies.isEmpty {
                let installed = try PolicyFiles.forGenesis(policies, members: try Genesis(bytes: bytes))
                bytes = try Genesis.render(chainID: chainID, genesisTime: time, members: [member], models: models, policies: installed)
            }
            _ = try ChainStore.create(path: staging + "/ledger", genesis: try Genesis(bytes: bytes))
            try DurableFile.create(atPath: staging + "/genesis.json", contents: Data(bytes), mode: 0o644)
            // The staging directory's entries (genesis.json, keys/, ledger/) are durable before
            // it is renamed into place.
            try DurableFile.syncDirectory(staging)
            try? fm.removeItem(atPath: dataDirectory)
            try fm.moveItem(atPath: staging, toPath: dataDirectory)
            staged = false
            // Durable before the first block goes in (see NetworkNode).
            try DurableFile.syncDirectory((dataDirectory as NSString).deletingLastPathComponent)
            created = true
        }
        let genesis = try Genesis(file: genesisPath)
        if !created {
            // Models and policies go into the genesis made on first start; an existing ledger's
            // genesis cannot take more. Restarting with the same ones is fine.
            let missing = models.filter { m in !genesis.models.contains { $0.hash == m.hash } }.map { "model \($0.name) version \($0.version)" }
                + policies.filter { p in !genesis.policies.contains { $0.hash == SHA256.hash(p.bytes) } }.map { "policy \($0.source)" }
            guard missing.isEmpty else {
                throw LedgerError(.invalidGenesis, "\(dataDirectory) already holds a dev ledger, and its genesis does not install \(missing.joined(separator: ", ")); "
                    + "--models and --policies apply only when a dev ledger is created: use a new --data-dir")
            }
        }
        let keys = try MemberSecretKeys.load(from: keyPath)
        let store = try ChainStore(path: storePath, blockCacheBytes: ChainStore.nodeBlockCacheBytes,
                                   merkleCacheBytes: ChainStore.nodeMerkleCacheBytes)
        guard store.genesis.hash == genesis.hash else {
            throw LedgerError(.invalidGenesis, "\(genesisPath) (hash \(genesis.hash.hexString.prefix(16))…) is not the genesis of the store in \(storePath)")
        }
        return Opened(store: store, keys: keys, createdGenesis: created)
    }

    /// Serves the dev ledger until SIGINT or SIGTERM.
    public static func run(dataDirectory: String, host: String, port: Int, blockInterval: Duration, logger: Logger,
                           models: [InstalledModel] = [], policies: [(source: String, bytes: [UInt8])] = [],
                           httpIdleTimeoutSeconds: Int = 30, httpMaxConnections: Int = LedgerAPI.maxConnections,
                           httpMaxConnectionsPerClient: Int = LedgerAPI.maxConnectionsPerClient,
                           memberHTTP: (host: String, port: Int)? = nil) async throws {
        ChainStore.onLongWork { logger.notice("\($0)") }
        let opened = try open(dataDirectory: dataDirectory, models: models, policies: policies)
        let store = opened.store
        // Without a member listener now, the file from a run with one would name a dead address
        // (found by black-box testing).
        if memberHTTP == nil { try? FileManager.default.removeItem(atPath: dataDirectory + "/member-http.addr") }
        // The process exits soon after this returns, the store possibly still open.
        defer { stopBackgroundWork(of: store, logger: logger) }
        warmPageCache(of: store, logger: logger)
        if opened.createdGenesis {
            logger.info("created dev ledger \(store.genesis.chainID) in \(dataDirectory)")
        }
        logger.info("ledger at height \(store.head.height), log size \(store.head.logSize); head verified")
        if let built = store.builtAtOpen { logger.notice("\(built)") }
        let ledger = try Ledger(store: store, validatorKeys: opened.keys,
                                clock: { UInt64(Date().timeIntervalSince1970 * 1000) },
                                blockInterval: blockInterval, logger: logger, rescoreStateDirectory: dataDirectory)
        try await LedgerAPI(ledger: ledger).serve(host: host, port: port, addressFile: dataDirectory + "/http.addr",
                                                  services: [BlockProducerService(ledger: ledger)], logger: logger,
                                                  idleTimeout: .seconds(Int64(httpIdleTimeoutSeconds)), maxConnections: httpMaxConnections,
                                                  maxConnectionsPerClient: httpMaxConnectionsPerClient,
                                                  members: memberHTTP.map { ($0.host, $0.port, dataDirectory + "/member-http.addr") })
    }
}

/// Runs the ledger's block producer inside the application's service group.
struct BlockProducerService: Service {
    let ledger: Ledger
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await ledger.runBlockProducer()
        }
    }
}

/// Reads the store's table files into the page cache in the background, the families queries
/// read first, so that after a restart queries do not each wait for the disk
/// (`Database.warmPageCacheInBackground`). Logs what it did.
func warmPageCache(of store: ChainStore, logger: Logger) {
    store.database.warmPageCacheInBackground(first: ChainStore.familiesQueriesRead) { read, took in
        if let (files, bytes) = read {
            logger.info("page cache: \(files) table files (\(bytes >> 20) MiB) read in \(took)")
        } else {
            logger.info("page cache: no table file read (none, or the first is over half the memory available)")
        }
    }
}

/// How long a stopping node waits for the flush or compaction under way.
let backgroundWorkStopLimit: Duration = .seconds(20)

/// Set when a stopping node gave up waiting for its store's background work.
let storeStillBusy = Atomic<Bool>(false)

/// Stops the store's flushes and compactions before the process exits, waiting at most
/// `backgroundWorkStopLimit` for the one under way. Past that it logs and marks the process to
/// leave with status 1 (`leaveNodeProcess`): a stop must end, and leaving is as safe as a crash,
/// which every committed block survives (it is in the synced log). A node used to wait forever
/// here for a flush stuck in RocksDB 7.8's rate limiter (Database.swift).
func stopBackgroundWork(of store: ChainStore, logger: Logger) {
    // A failed flush (a full disk) was dropped without a word (noticed 2026-12-07).
    let stopped = store.database.stopBackgroundWork(within: backgroundWorkStopLimit) { [logger] problem in
        logger.warning("the store could not flush its memory tables on stopping (\(problem)); the synced write-ahead log keeps every committed block, and the next start replays it")
    }
    guard !stopped else { return }
    logger.error("the store's background work (a flush or compaction) did not stop within \(backgroundWorkStopLimit); leaving without it: every committed block is in the synced log, and the next start replays it")
    storeStillBusy.store(true, ordering: .relaxed)
}

/// After `DevNode.run` or `NetworkNode.run` returned or threw, and its error was reported: ends
/// the process now (`_exit`) with `status`, or with 1 after a clean stop that gave up waiting for
/// the store's background work, without running exit handlers and C++ static destructors. The
/// store is never closed (threads of RocksDB, of the event loops and of the dispatch queues may
/// still hold it), and tearing down RocksDB's globals under such a thread crashed stopping nodes
/// in full-suite runs: a follower with SIGSEGV, a validator with SIGABRT. Leaving this way is as
/// safe as a crash, which every committed block survives (it is in the synced log; the next
/// start replays it), and the kernel releases the store's lock and files.
public func leaveNodeProcess(status: Int32) -> Never {
    fflush(nil)
    _exit(status == 0 && storeStillBusy.load(ordering: .relaxed) ? 1 : status)
}
