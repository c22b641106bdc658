import Consensus
import Foundation
import Hummingbird
import LedgerCore
import LedgerCrypto
import LedgerStore
import Logging
import P2P
import Scoring
import ServiceLifecycle

/// The configuration file of a consortium node (`credit-node run --config FILE`).
/// Relative paths are relative to the file's directory. See Network/local/ for examples.
public struct NodeConfig: Decodable, Sendable {
    public struct Timeouts: Decodable, Sendable {
        // Signed, so that a negative value is named with the range (as unsigned it failed to
        // decode, and the file was called "not valid JSON"; found by black-box testing).
        var propose_ms: Int64?
        var prevote_ms: Int64?
        var precommit_ms: Int64?
        var rebroadcast_ms: Int64?
    }
    /// Genesis file.
    public var genesis: String
    /// The member's secret key file (`credit-node keygen`).
    public var key: String
    /// Data directory: ledger/ (RocksDB) and consensus/ (safety state).
    public var data_dir: String
    /// HTTP API listen address host:port: every route, for the operator (keep it private).
    public var http: String
    /// Optional second listener host:port for other members (banks' query clients): queries,
    /// policies, proofs and signed submissions only (`LedgerAPI.Routes.members`).
    public var member_http: String?
    /// P2P listen address host:port.
    public var p2p: String
    /// Member id → host:port to dial. Defaults to the `p2p_address` of every other genesis member.
    public var peers: [String: String]?
    public var timeouts: Timeouts?
    public var log_level: String?
    /// Open HTTP connections each listener accepts at once (default `LedgerAPI.maxConnections`).
    public var http_max_connections: Int?
    /// Open HTTP connections one client address may hold on each listener (default `LedgerAPI.maxConnectionsPerClient`).
    public var http_max_connections_per_client: Int?
    /// Seconds a submitter waits for its transactions to commit before it is told they are
    /// still pending (default 50, under the 60 s a `credit-node` client waits).
    public var commit_wait_seconds: Int?

    static let fields: Set<String> = ["genesis", "key", "data_dir", "http", "member_http", "p2p", "peers", "timeouts", "log_level",
                                      "http_max_connections", "http_max_connections_per_client", "commit_wait_seconds"]
    static let commitWaitRange: ClosedRange<Int> = 1...3600
    static let timeoutFields: Set<String> = ["propose_ms", "prevote_ms", "precommit_ms", "rebroadcast_ms"]
    /// Each consensus timeout is 1 ms to 10 minutes.
    static let timeoutRange: ClosedRange<Int64> = 1...600_000

    /// Shorter consensus timeouts are taken (tests use them) but warned about at start.
    static let shortTimeoutMillis: UInt64 = 50

    /// Settings the node takes but that are probably mistakes, each said in a sentence (logged at start).
    public var warnings: [String] {
        guard let t = timeouts else { return [] }
        let defaults = ConsensusTimeouts()
        return [("propose_ms", t.propose_ms, defaults.propose), ("prevote_ms", t.prevote_ms, defaults.prevote),
                ("precommit_ms", t.precommit_ms, defaults.precommit), ("rebroadcast_ms", t.rebroadcast_ms, defaults.rebroadcast)]
            .compactMap { name, value, standard in
                guard let value, value < Int64(Self.shortTimeoutMillis) else { return nil }
                return "timeouts.\(name) is \(value) ms, under \(Self.shortTimeoutMillis) ms: rounds end before proposals and votes cross a "
                    + "busy network, so heights take many rounds, and each rebroadcast sends this validator's votes again (the default is \(standard) ms)"
            }
    }

    /// The log levels a config file or `--log-level` may name.
    public static let logLevels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")

    public static func load(path: String) throws -> (NodeConfig, base: String) {
        // Read within the limit: the whole file was read before the size was checked (found in review, 2026-12-07).
        let data: Data
        do { data = Data(try readInputFile(path, limit: 1 << 20, what: "config file")) } catch {
            throw LedgerError(.notFound, "config file: \(error)")
        }
        // The genesis file given as the config (both are JSON beside each other) was refused for
        // "a string longer than 4096 bytes" (found by black-box testing).
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["chain_id"] != nil, object["members"] != nil {
            throw LedgerError(.invalidValue, "config file \(path) is a genesis file (it has chain_id and members), not a node's config; give the node's own config "
                + "(genesis, key, data_dir, http, p2p; see Network/local/*/node.json), which names the genesis file")
        }
        // A key given twice (two addresses for one peer) was read as the last one, without a word.
        do { _ = try StrictJSONParser.parse(Array(data), integersOnly: "a config file's numbers are whole numbers") } catch let e as ModelError {
            throw LedgerError(.malformed, "config file \(path): \(e.reason)")
        }
        let config: NodeConfig
        do { config = try JSONDecoder().decode(NodeConfig.self, from: data) } catch {
            throw LedgerError(.malformed, "config file \(path): \(DecodingProblem.describe(error))")
        }
        // A misspelt field would otherwise be ignored silently, and the node run with a default.
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        if let unknown = object?.keys.filter({ !fields.contains($0) }).sorted().first {
            throw LedgerError(.invalidValue, "config file \(path): unknown field \"\(unknown)\" (known: \(fields.sorted().joined(separator: ", ")))")
        }
        // An empty path resolved to the config's directory, or to nothing: `"data_dir": ""` put
        // the store at the filesystem root (found by black-box testing).
        for (field, value) in [("genesis", config.genesis), ("key", config.key), ("data_dir", config.data_dir)]
        where value.trimmingCharacters(in: .whitespaces).isEmpty {
            throw LedgerError(.invalidValue, "config file \(path): \(field) is empty; give a path (relative paths are taken from the config file's directory)")
        }
        if let unknown = (object?["timeouts"] as? [String: Any])?.keys.filter({ !timeoutFields.contains($0) }).sorted().first {
            throw LedgerError(.invalidValue, "config file \(path): unknown field timeouts.\(unknown) (known: \(timeoutFields.sorted().joined(separator: ", ")))")
        }
        if let t = config.timeouts {
            for (name, value) in [("propose_ms", t.propose_ms), ("prevote_ms", t.prevote_ms), ("precommit_ms", t.precommit_ms),
                                  ("rebroadcast_ms", t.rebroadcast_ms)] {
                if let value, !timeoutRange.contains(value) {
                    throw LedgerError(.invalidValue, "config file \(path): timeouts.\(name) is \(value); it must be \(timeoutRange.lowerBound)-\(timeoutRange.upperBound)")
                }
            }
        }
        for (name, value) in [("http_max_connections", config.http_max_connections), ("http_max_connections_per_client", config.http_max_connections_per_client)] {
            if let n = value, !LedgerAPI.maxConnectionsRange.contains(n) {
                throw LedgerError(.invalidValue, "config file \(path): \(name) is \(n); it must be \(LedgerAPI.maxConnectionsRange.lowerBound)-\(LedgerAPI.maxConnectionsRange.upperBound)")
            }
        }
        if let level = config.log_level, Logger.Level(rawValue: level) == nil {
            throw LedgerError(.invalidValue, "config file \(path): log_level is \"\(level.clipped())\"; it must be one of \(Self.logLevels)")
        }
        if let n = config.commit_wait_seconds, !commitWaitRange.contains(n) {
            throw LedgerError(.invalidValue, "config file \(path): commit_wait_seconds is \(n); it must be \(commitWaitRange.lowerBound)-\(commitWaitRange.upperBound)")
        }
        // Addresses are checked here, before anything starts (peers against genesis in `peerAddresses`).
        do {
            let listeners = try config.listeners()
            // A host that does not resolve failed later, as Hummingbird's "UnknownHost" after a
            // stray error line, naming no field (found by black-box testing).
            for l in listeners {
                if let why = unresolvable(l.host) { throw LedgerError(.invalidValue, "\(l.field): cannot resolve host \(l.host) (\(why))") }
            }
            // Two of this node's own listeners on one port (of one host, or of the any-address)
            // failed only once the node had started P2P and dialled its peers, with an error
            // that named a free port "in use" (found by black-box testing, 2026-12-07).
            let any: Set<String> = ["0.0.0.0", "::", ""]
            for (i, a) in listeners.enumerated() {
                for b in listeners[(i + 1)...] where a.port != 0 && a.port == b.port
                    && (a.host == b.host || any.contains(a.host) || any.contains(b.host)) {
                    throw LedgerError(.invalidValue, "\(a.field) and \(b.field) both listen on port \(a.port) (\(a.host) and \(b.host)); each listener needs its own address")
                }
            }
            for (id, address) in (config.peers ?? [:]).sorted(by: { $0.key < $1.key }) {
                _ = try split(address, what: "peers.\(id.prefix(64))", dial: true)
            }
        } catch let e as LedgerError {
            throw LedgerError(e.code, "config file \(path): \(e.reason)")
        }
        return (config, (path as NSString).deletingLastPathComponent)
    }

    /// The members this node dials and where: `peers` over each other member's genesis
    /// `p2p_address`. A peer that is not a member is refused; this node's own entry is skipped.
    static func peerAddresses(_ config: NodeConfig, genesis: Genesis, me: String) throws -> [PeerAddress] {
        if let unknown = config.peers?.keys.sorted().first(where: { genesis.member($0) == nil }) {
            throw LedgerError(.unknownSigner, "config names peer \(unknown.prefix(64)), which is not a member of this genesis")
        }
        var peers: [PeerAddress] = []
        for m in genesis.members where m.id != me {
            if let address = config.peers?[m.id] {
                let (host, port) = try split(address, what: "peers.\(m.id)", dial: true)
                peers.append(PeerAddress(memberID: m.id, host: host, port: port))
            } else if let address = m.p2pAddress, let (host, port) = Genesis.listenHostAndPort(address) ?? Genesis.hostAndPort(address) {
                // Checked when the genesis was read (`Genesis.isHostPort`), by the rule it was written under.
                peers.append(PeerAddress(memberID: m.id, host: host, port: port))
            }
        }
        return peers
    }

    /// Why `host` cannot be listened on by name (getaddrinfo's reason), or nil when it resolves.
    static func unresolvable(_ host: String) -> String? {
        guard !host.isEmpty else { return nil }
        switch PlainHTTP.resolve(host, port: 0, passive: true) {
        case .success(let found): freeaddrinfo(found); return nil
        case .failure(let failure): return failure.reason
        }
    }

    static func resolve(_ p: String, base: String) -> String {
        p.hasPrefix("/") || base.isEmpty ? p : base + "/" + p
    }

    /// One of the node's listening addresses: its config field, the address as written, and its parts.
    struct Listener { let field: String, address: String, host: String, port: Int }

    /// The node's listeners, each address checked: p2p, http, then member_http when given.
    func listeners() throws -> [Listener] {
        try ([("p2p", p2p), ("http", http)] + (member_http.map { [("member_http", $0)] } ?? [])).map { field, address in
            let (host, port) = try Self.split(address, what: field)
            return Listener(field: field, address: address, host: host, port: port)
        }
    }

    /// An address from the config: to listen on (port 0: any free port) or, with `dial`, to
    /// dial (port 1-65535). Any "host:port" used to pass, with spaces in the host or port 0 to
    /// dial (found in review, 2026-12-06).
    static func split(_ address: String, what: String, dial: Bool = false) throws -> (String, Int) {
        guard let (host, port) = Genesis.listenHostAndPort(address), !dial || port >= 1 else {
            throw LedgerError(.invalidValue, "\(what) must be host:port (a host without spaces or slashes, IPv6 in brackets, a port of \(dial ? "1" : "0")-65535), got \"\(address.prefix(300))\"")
        }
        return (host, port)
    }
}

public enum NetworkNode {
    /// What to tell the operator when this node's P2P listener is not on the port genesis lists
    /// for it (where peers dial, unless their configs say otherwise), or nil.
    static func listenerMismatch(_ me: Member, listenPort: Int) -> String? {
        guard let listed = me.p2pAddress, let (_, port) = Genesis.listenHostAndPort(listed), port != listenPort, listenPort != 0 else { return nil }
        return "this node listens for P2P on port \(listenPort), but genesis lists \(me.id) at \(listed): peers dial that address "
            + "unless their configs name another under \"peers\"; listen on port \(port), or give the peers this node's address"
    }

    /// Members this node will never have a session with: only the member whose id sorts first
    /// dials (docs/P2P.md), so a member sorting after `me` that has no address to dial is
    /// reached by nobody from here, and it does not dial back. It used to go unmentioned: an
    /// auditor without a `p2p_address`, sorting last, had no peers and nothing said why.
    static func neverConnected(genesis: Genesis, me: String, addressed: Set<String>) -> [String] {
        genesis.members.map(\.id).filter { $0 > me && !addressed.contains($0) }.sorted()
    }

    /// A data directory serves one member: its `consensus/` state holds that member's votes and
    /// locks, which keep it from signing twice at a height. A node started with another member's
    /// key on it (a copied config, say) would take them for its own; it used to start without a
    /// word (found by black-box testing, 2026-12-06). The first start writes the member's id to
    /// `DATA_DIR/member`; later starts must be by the same member. Without that file (written
    /// before it existed, or deleted), the votes in the consensus safety state name the member;
    /// a directory with neither is claimed by whoever starts on it next (a deleted file let any
    /// member take another's votes and locks; found by black-box testing, 2026-12-06).
    /// With `record` false it only checks, writing nothing (a start refused later, by the store's
    /// genesis say, left the file behind; found by black-box testing, 2026-12-08).
    static func claimDataDirectory(_ dataDir: String, for member: String, record: Bool = true) throws {
        let path = dataDir + "/member"
        if !FileManager.default.fileExists(atPath: path), let voter = Self.safetyStateSigner(dataDir), voter != member {
            throw LedgerError(.notAuthorized, "data directory \(dataDir) holds \(voter)'s consensus state (its votes and locks in "
                              + "\(dataDir)/consensus), and this node's key is \(member)'s: give each member its own data_dir")
        }
        if let data = FileManager.default.contents(atPath: path) {
            let owner = String(decoding: data.prefix(64), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard owner == member else {
                throw LedgerError(.notAuthorized, "data directory \(dataDir) is \(owner)'s (\(path); its consensus state holds \(owner)'s votes "
                                  + "and locks), and this node's key is \(member)'s: give each member its own data_dir")
            }
            return
        }
        if record { try DurableFile.create(atPath: path, contents: Data((member + "\n").utf8), mode: 0o600) }
    }

    /// The member whose votes or proposal the data directory's safety state holds, if it holds any.
    static func safetyStateSigner(_ dataDir: String) -> String? {
        let statePath = dataDir + "/consensus/safety-state"
        guard let raw = try? readInputFile(statePath, limit: 64 << 20, what: "consensus safety state"),
              let state = try? SafetyState.decode(ConsensusWAL.unwrap(raw, what: statePath)) else { return nil }
        return state.prevote?.voter ?? state.precommit?.voter ?? state.earlierVotes.first?.voter ?? state.proposal?.proposer
    }

    /// Runs a consortium node until SIGINT or SIGTERM.
    public static func run(configPath: String, logger: Logger) async throws {
        let (config, base) = try NodeConfig.load(path: configPath)
        for warning in config.warnings { logger.warning("config file \(configPath): \(warning)") }
        let genesisPath = NodeConfig.resolve(config.genesis, base: base)
        let genesis = try Genesis(file: genesisPath)
        let keys = try MemberSecretKeys.load(from: NodeConfig.resolve(config.key, base: base))
        guard let me = genesis.member(keys.memberID), me.signingKey == keys.signing.publicKey else {
            throw LedgerError(.unknownSigner, "key file is for \(keys.memberID), which is not a member of \(genesis.chainID) with this key")
        }
        // Before anything is written: an unknown peer used to be refused after the store was created.
        let peers = try NodeConfig.peerAddresses(config, genesis: genesis, me: me.id)
        // So are addresses another process holds: the node used to create its store, listen on
        // P2P and dial its peers under the member's name before its HTTP bind failed, and NIO's
        // error did not say which address (found by black-box testing).
        let listeners = try config.listeners()
        if let (l, why) = LedgerAPI.listenProblem(listeners.map { .init(field: $0.field, address: $0.address, host: $0.host, port: $0.port) }) {
            throw LedgerError(.invalidValue, "\(l.field) address \(l.address) \(why) change \(l.field) in \(configPath); nothing was started")
        }
        let (p2pListener, httpListener, memberListener) = (listeners[0], listeners[1], listeners.dropFirst(2).first)
        let dataDir = NodeConfig.resolve(config.data_dir, base: base)
        let storePath = dataDir + "/ledger"
        ChainStore.onLongWork { logger.notice("\($0)") }
        // A `ledger` that is no store (an empty directory made by hand, a file) failed with
        // Foundation's "file with the same name already exists" after a whole store was made
        // beside it under `ledger.creating` (found by black-box testing, 2026-12-08).
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: storePath, isDirectory: &isDirectory), !FileManager.default.fileExists(atPath: storePath + "/CURRENT") {
            throw LedgerError(.invalidValue, "\(storePath) exists but is no ledger store (\(isDirectory.boolValue ? "a directory without RocksDB's CURRENT file" : "a file")): "
                              + "remove it if it holds nothing, or restore the store it held (data_dir in \(configPath)); nothing was started")
        }
        let fresh = !FileManager.default.fileExists(atPath: storePath)
        if !FileManager.default.fileExists(atPath: dataDir) {
            logger.notice("data directory \(dataDir) does not exist: creating it (data_dir in \(configPath); a relative path is taken from the directory of the config file's path as given)")
        }
        try DurableFile.createDirectories(dataDir)
        try claimDataDirectory(dataDir, for: me.id, record: false)
        let store: ChainStore
        if FileManager.default.fileExists(atPath: storePath + "/CURRENT") {
            store = try ChainStore(path: storePath, blockCacheBytes: ChainStore.nodeBlockCacheBytes,
                                   merkleCacheBytes: ChainStore.nodeMerkleCacheBytes)
            guard store.genesis.hash == genesis.hash else {
                throw LedgerError(.invalidGenesis, "\(genesisPath) (hash \(genesis.hash.hexString.prefix(16))…, chain \(genesis.chainID)) is not the genesis of the store in \(storePath) "
                                  + "(hash \(store.genesis.hash.hexString.prefix(16))…, chain \(store.genesis.chainID)): a genesis file is never edited or reformatted, since its hash identifies the chain; use the consortium's original file")
            }
        } else {
            // Create aside and rename, so a crash here leaves no half-made store.
            let staging = storePath + ".creating"
            try DurableFile.removeStaging(staging, store: staging, hasBlocks: ChainStore.holdsBlocks)
            _ = try ChainStore.create(path: staging, genesis: genesis)
            try FileManager.default.moveItem(atPath: staging, toPath: storePath)
            // Durable before the first block goes in: a power loss must not undo the rename
            // and leave committed blocks under the staging name.
            try DurableFile.syncDirectory(dataDir)
            store = try ChainStore(path: storePath, blockCacheBytes: ChainStore.nodeBlockCacheBytes,
                                   merkleCacheBytes: ChainStore.nodeMerkleCacheBytes)
            logger.info("created ledger for \(genesis.chainID) in \(storePath)")
        }
        // The process exits soon after this returns, the store possibly still open.
        defer { stopBackgroundWork(of: store, logger: logger) }
        try claimDataDirectory(dataDir, for: me.id)
        warmPageCache(of: store, logger: logger)
        var options = ConsensusNode.Options()
        options.freshDataDirectory = fresh
        if let t = config.timeouts {
            if let v = t.propose_ms { options.timeouts.propose = UInt64(v) }
            if let v = t.prevote_ms { options.timeouts.prevote = UInt64(v) }
            if let v = t.precommit_ms { options.timeouts.precommit = UInt64(v) }
            if let v = t.rebroadcast_ms { options.timeouts.rebroadcast = UInt64(v) }
        }
        if let n = config.commit_wait_seconds { options.commitWait = .seconds(n) }
        let t = options.timeouts
        logger.info("consensus timeouts: propose \(t.propose) ms, prevote \(t.prevote) ms, precommit \(t.precommit) ms, rebroadcast \(t.rebroadcast) ms; commit wait \(Int(options.commitWait.inSeconds)) s")
        // A P2P listener on any free port cannot be dialled by peers, who dial genesis's address
        // (it started without a word; found by black-box testing, 2026-12-08). The operator's
        // listener serves every route: on every interface it is open to whoever reaches the host.
        if p2pListener.port == 0 {
            logger.warning("p2p listens on port 0 (any free port, chosen at start): peers dial \(me.id) at \(me.p2pAddress ?? "the address their configs name"), never at a port chosen here; give p2p the port genesis lists")
        }
        if ["0.0.0.0", "::", ""].contains(httpListener.host) {
            logger.warning("http (the operator's listener: every route, /v1/status and /metrics, every bank's query records) listens on every interface (\(httpListener.address)); keep it private: listen on 127.0.0.1 or a private address, and give other members member_http")
        }
        let node = try ConsensusNode(store: store, keys: keys, options: options, walDirectory: dataDir + "/consensus",
                                     clock: { UInt64(Date().timeIntervalSince1970 * 1000) }, logger: logger)
        if config.peers?[me.id] != nil {
            // A config copied from one template lists every member; the node does not dial itself.
            logger.notice("config lists this node's own member \(me.id) under \"peers\"; that entry is not dialled")
        }
        // Only the member whose id sorts first dials: an entry for one sorting before this one
        // is never used, and went unmentioned (found by black-box testing).
        for id in (config.peers ?? [:]).keys.sorted() where id < me.id {
            let unused = "config names an address for \(id) under \"peers\", which this node never dials: \(id) sorts before \(me.id), so \(id) dials this node "
                + "(docs/P2P.md); the entry is unused. To change where \(id) reaches \(me.id), change \(id)'s config or genesis"
            logger.warning("\(unused)")
        }
        for m in Self.neverConnected(genesis: genesis, me: me.id, addressed: Set(peers.map(\.memberID))) {
            logger.warning("no P2P address for \(m) (none in genesis, none under \"peers\" in the config): only the member whose id sorts first dials, so \(me.id) would dial \(m), and \(m) never dials \(me.id); the two will not connect. Give its address under \"peers\"")
        }
        // Peers dial the address genesis lists for this member, unless their configs say otherwise:
        // a listener on another port sat isolated with no word why (found by black-box testing).
        if let advice = Self.listenerMismatch(me, listenPort: p2pListener.port) { logger.warning("\(advice)") }
        let members = memberListener.map { (host: $0.host, port: $0.port, addressFile: dataDir + "/member-http.addr") }
        // Without a member listener now, the file from a run with one would name a dead address.
        if members == nil { try? FileManager.default.removeItem(atPath: dataDir + "/member-http.addr") }
        let boundP2P = try await node.start(listenHost: p2pListener.host, listenPort: p2pListener.port, peers: peers)
        logger.info("ledger at height \(store.head.height), log size \(store.head.logSize); head verified; P2P \(p2pListener.host):\(boundP2P)")
        if let built = store.builtAtOpen { logger.notice("\(built)") }

        try await LedgerAPI(ledger: node).serve(host: httpListener.host, port: httpListener.port, addressFile: dataDir + "/http.addr",
                                                services: [ConsensusService(node: node)], logger: logger,
                                                maxConnections: config.http_max_connections ?? LedgerAPI.maxConnections,
                                                maxConnectionsPerClient: config.http_max_connections_per_client ?? LedgerAPI.maxConnectionsPerClient, members: members)
    }
}

/// Stops the consensus node when the application shuts down.
struct ConsensusService: Service {
    let node: ConsensusNode
    func run() async throws {
        try? await gracefulShutdown()
        await node.stop()
    }
}
