import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdCore
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import NIOCore
import ServiceLifecycle
import Logging
import Synchronization

/// The node's HTTP JSON API, version 1. Every error is a JSON body
/// `{"error": {"code": "...", "message": "...", "index": n?}}` with a 4xx/5xx status.
public struct LedgerAPI: Sendable {
    public let ledger: any LedgerService
    public static let maxHistory = 1000
    /// The query service, or why this node cannot answer queries (an invalid genesis policy).
    let queries: Result<QueryService, LedgerError>
    /// Request bodies being read and decoded at once, over all connections.
    let bodies: BodyBudget
    /// How long each listener's requests took (`GET /metrics`).
    let requestTimings = RequestTimings()
    /// Installed models' kinds, for `GET /v1/models`.
    let modelKinds = ModelKinds()
    /// The time any request body may take to arrive, before a second per 256 KiB of its
    /// route's limit: the connection idle timeout (`serve` sets it).
    var bodyDeadlineBase: Duration = .seconds(30)

    public init(ledger: any LedgerService, clock: (@Sendable () -> UInt64)? = nil) {
        self.ledger = ledger
        bodies = BodyBudget(limit: max(BodyBudget.defaultLimit, 2 * ledger.genesis.limits.maxRequestBytes))
        do {
            queries = .success(try clock.map { try QueryService(ledger: ledger, clock: $0) } ?? QueryService(ledger: ledger))
        } catch {
            queries = .failure(error as? LedgerError ?? LedgerError(.invalidGenesis, "\(error)"))
        }
    }

    var store: ChainStore { ledger.store }
    var genesis: Genesis { ledger.genesis }

    /// Serves the API with `services` until SIGINT or SIGTERM. Once listening, the base URL is
    /// written to `addressFile` (so scripts and tests can use port 0). `members`: a second
    /// listener with the member routes only (`Routes.members`), its base URL written to
    /// `members.addressFile`.
    public func serve(host: String, port: Int, addressFile: String, services: [any Service], logger: Logger,
                      idleTimeout: TimeAmount = LedgerAPI.idleTimeout, maxConnections: Int = LedgerAPI.maxConnections,
                      maxConnectionsPerClient: Int = LedgerAPI.maxConnectionsPerClient,
                      members: (host: String, port: Int, addressFile: String)? = nil) async throws {
        var services = services
        if let members {
            services.append(application(routes: .members, host: members.host, port: members.port, addressFile: members.addressFile,
                                        what: "member API (queries, policies, proofs, submissions)", logger: logger, idleTimeout: idleTimeout,
                                        maxConnections: maxConnections, maxConnectionsPerClient: maxConnectionsPerClient))
        }
        var app = application(routes: .all, host: host, port: port, addressFile: addressFile, what: "HTTP API", logger: logger,
                              idleTimeout: idleTimeout, maxConnections: maxConnections, maxConnectionsPerClient: maxConnectionsPerClient)
        app.addServices(services)
        do {
            try await app.runService()
        } catch where "\(error)".contains("bind(") {
            // NIO names the system call, not the address (found by black-box testing). The
            // listeners are closed by now, so the address still taken is the one in the way.
            var listeners = [(host, port, "HTTP API")]
            if let members { listeners.append((members.host, members.port, "member API")) }
            let taken = listeners.filter { Self.addressTaken(host: $0.0, port: $0.1) }
            let named = (taken.isEmpty ? listeners : taken).map { "\($0.0):\($0.1) (\($0.2))" }.joined(separator: " or ")
            throw LedgerError(.invalidValue, "cannot listen on \(named): \(error)")
        }
    }

    /// One address a node listens on, for `listenProblem`: its config field or flag, and the address as written.
    public struct ListenAddress: Sendable {
        public let field: String, address: String, host: String, port: Int
        public init(field: String, address: String, host: String, port: Int) { (self.field, self.address, self.host, self.port) = (field, address, host, port) }
    }

    /// Listens on each address in turn, holding each until the last is tried, then closes them
    /// all: the first that cannot be listened on, and why (ending where the caller says what to
    /// change), or nil. Run before anything is written or started: a clash between the node's
    /// own listeners written differently (`localhost:8601` and `127.0.0.1:8601`), or a host that
    /// is not this machine's, used to surface only once the store was open, P2P had joined the
    /// peers and a listener had started (found by black-box testing, 2026-12-08). Port 0 (any
    /// free port) is not tried.
    public static func listenProblem(_ addresses: [ListenAddress]) -> (address: ListenAddress, reason: String)? {
        var held: [(ListenAddress, Int32)] = []
        defer { for (_, fd) in held { close(fd) } }
        for a in addresses where a.port != 0 {
            guard let info = PlainHTTP.lookUp(a.host, port: a.port, passive: true) else { continue }
            defer { freeaddrinfo(info) }
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 1) == 0 {
                held.append((a, fd))
                continue
            }
            let code = errno
            close(fd)
            switch code {
            case EADDRINUSE:
                if let (mine, _) = held.first(where: { $0.0.port == a.port }) {
                    return (a, "is the same listening socket as \(mine.field) \(mine.address) (port \(a.port)): each listener needs its own;")
                }
                return (a, "is in use by another process (another node, or one not yet stopped?): free it, or")
            case EADDRNOTAVAIL:
                return (a, "cannot be listened on: \(a.host) is not an address of this machine (listen on one of its addresses, or 0.0.0.0 for all);")
            case EACCES:
                return (a, "cannot be listened on: port \(a.port) is privileged (below 1024) and this process may not bind it;")
            default:
                return (a, "cannot be listened on: \(String(cString: strerror(code)));")
            }
        }
        return nil
    }

    /// Whether another socket holds `host:port` (binding it fails with EADDRINUSE).
    static func addressTaken(host: String, port: Int) -> Bool {
        guard let info = PlainHTTP.lookUp(host, port: port, passive: true) else { return false }
        defer { freeaddrinfo(info) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        return bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 && errno == EADDRINUSE
    }

    /// Which routes a listener serves.
    public enum Routes: Sendable {
        /// Every route: for the node's operator, on a private address.
        case all
        /// What other members need from this node and nothing that reads the ledger's
        /// contents: health, genesis, members, models, policies, queries, the checkpoint,
        /// consistency proofs, and signed submissions. Blocks, transactions, receipts,
        /// provenance, subject histories and status (exact points, record attributes, every
        /// bank's query records) stay on the operator's listener (docs/PRIVACY.md §1).
        case members
    }

    func application(routes: Routes, host: String, port: Int, addressFile: String, what: String, logger: Logger,
                     idleTimeout: TimeAmount, maxConnections: Int, maxConnectionsPerClient: Int) -> Application<RouterResponder<APIRequestContext>> {
        try? FileManager.default.removeItem(atPath: addressFile)
        var api = self
        api.bodyDeadlineBase = .nanoseconds(idleTimeout.nanoseconds)
        return Application(
            router: api.makeRouter(routes),
            // A connection that sends nothing for this long, between requests or in the middle of
            // one, is closed: a client that announces a body and never sends it would otherwise
            // hold its share of the request-body budget (and with a few more, every POST) for good.
            // Each client address holds at most `maxConnectionsPerClient` of them (ClientConnections).
            server: HTTPServerBuilder { [clients = ClientConnections(limit: maxConnectionsPerClient, logger: logger, what: what)] responder in
                NodeHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)), clients: clients,
                                 bodyLimits: bodyLimits)
            },
            // Past `maxConnections` open connections the listener stops accepting until one
            // closes (further clients wait in the kernel's backlog): connections cost file
            // descriptors, which the store needs too, and a block write that cannot open a
            // file stops the node.
            configuration: .init(address: .hostname(host, port: port), serverName: "credit-node",
                                 availableConnectionsDelegate: ListenerConnectionLimit(maxConnections, logger: logger, what: what)),
            onServerRunning: { channel in
                let address = "http://\(host.contains(":") ? "[\(host)]" : host):\(channel.localAddress?.port ?? port)"
                do {
                    try Data((address + "\n").utf8).write(to: URL(fileURLWithPath: addressFile), options: .atomic)
                } catch {
                    // Scripts and tools that wait for this file would wait for good.
                    logger.error("cannot write \(addressFile), which tells scripts where \(what) listens: \(error)")
                }
                logger.info("\(what) listening on \(address)")
            },
            logger: logger)
    }

    /// How long a connection may send nothing before it is closed, by default.
    public static let idleTimeout: TimeAmount = .seconds(30)
    /// Open connections each listener accepts at once, by default.
    public static let maxConnections = 512
    public static let maxConnectionsRange = 1...100_000
    /// Open connections one client address may hold on a listener, by default: an eighth of the
    /// total, so one client cannot take every slot. Clients behind one proxy or NAT share it.
    public static let maxConnectionsPerClient = 64

    public func makeRouter(_ routes: Routes = .all) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        let served = ServedPaths()
        router.add(middleware: RequestTiming(timings: requestTimings, listener: { if case .all = routes { "operator" } else { "member" } }()))
        router.add(middleware: JSONErrors(served: served))
        // Every route is noted with its method, so a served path asked with another one is told so (405).
        func get<R: ResponseGenerator>(_ path: String, _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> R) {
            served.add(.get, path)
            router.get(RouterPath(path), use: handler)
        }
        // A POST's commit wait is the shorter of the node's and the `Prefer: wait` its client asks for.
        func post<R: ResponseGenerator>(_ path: String, _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> R) {
            served.add(.post, path)
            router.post(RouterPath(path)) { request, context in
                try await CommitWait.$preferred.withValue(CommitWait.preferred(in: request.headers[values: .init("Prefer")!])) {
                    try await handler(request, context)
                }
            }
        }
        get("/v1/health") { _, _ in try self.health() }
        // Load balancers and uptime monitors probe with HEAD (it was 405): the same status, no body.
        served.add(.head, "/v1/health")
        router.head("/v1/health") { _, _ in try self.health().createHeadResponse() }
        get("/v1/genesis") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(bytes: self.genesis.bytes)))
        }
        get("/v1/members") { _, _ in self.members() }
        post("/v1/transactions") { request, context in await self.guarded { try await self.submitOne(request, context) } }
        post("/v1/transactions/batch") { request, context in await self.guarded { try await self.submitBatch(request, context) } }
        get("/v1/models") { _, _ in self.models() }
        get("/v1/policies") { _, _ in await self.guarded { try self.policies() } }
        post("/v1/queries") { request, context in await self.guarded { try await self.query(request, context) } }
        get("/v1/checkpoint") { _, _ in await self.guarded { try self.checkpoint() } }
        get("/v1/proofs/consistency") { request, _ in
            await self.guarded {
                try self.consistency(old: try Self.queryParameter(request, "old"), new: try Self.queryParameter(request, "new"))
            }
        }
        guard case .all = routes else {
            // Said plainly, rather than Hummingbird's bare 404: a bank's client pointed here for
            // its own transactions learns to ask its own node.
            let operatorOnly = ["/v1/status", "/metrics", "/v1/transactions/:id", "/v1/transactions/:id/receipt", "/v1/transactions/:id/provenance",
                                "/v1/blocks/:height", "/v1/subjects/:uscc/history"]
            for path in operatorOnly {
                get(path) { request, _ in
                    await self.guarded {
                        throw LedgerError(.operatorOnly, "\(request.uri.path) is served on the node operator's address only, not to other members "
                            + "(docs/PRIVACY.md §1): ask your own node for your transactions and receipts")
                    }
                }
            }
            return router
        }
        get("/v1/status") { _, _ in try self.status() }
        get("/metrics") { _, _ in self.metrics() }
        get("/v1/transactions/:id") { _, context in
            await self.guarded { try self.transactionStatus(Self.pathParameter(context, "id")) }
        }
        get("/v1/transactions/:id/receipt") { _, context in
            await self.guarded { try self.receipt(Self.pathParameter(context, "id")) }
        }
        get("/v1/transactions/:id/provenance") { _, context in
            await self.guarded { try self.scoreProvenance(Self.pathParameter(context, "id")) }
        }
        get("/v1/blocks/:height") { _, context in
            await self.guarded { try self.block(Self.pathParameter(context, "height")) }
        }
        get("/v1/subjects/:uscc/history") { request, context in
            await self.guarded {
                try self.history(Self.pathParameter(context, "uscc"), after: try Self.queryParameter(request, "after"),
                                 limit: try Self.queryParameter(request, "limit"))
            }
        }
        return router
    }

    // MARK: Handlers

    /// 200 with `status` "ok" while the node writes blocks; 503 with `status` "write_failure"
    /// and the reason once a block's synced write failed (the node takes nothing more until it
    /// is restarted), so a monitor or load balancer polling health stops sending it work.
    func health() throws -> Response {
        let (ok, body) = healthReport()
        return json(ok ? .ok : .serviceUnavailable, body)
    }

    /// Blocks behind the height its validator peers report from which health warns.
    static let behindWarning: UInt64 = 10

    /// What `health` answers: whether the node is sound, and the body.
    func healthReport() -> (ok: Bool, body: [String: Any]) {
        let head = store.head
        var body: [String: Any] = ["status": "ok", "chain_id": genesis.chainID, "genesis_hash": genesis.hash.hexString,
                                   "height": head.height, "head_hash": head.blockHash.hexString, "log_size": head.logSize]
        if let failure = ledger.writeFailureReason {
            body["status"] = "write_failure"
            body["reason"] = failure
            return (false, body)
        }
        if let corruption = store.database.corruption {
            body["status"] = "storage_corruption"
            body["reason"] = corruption + "; not transient: check the store with credit-verify chain, and restore it or let the node catch up from peers into a fresh data directory"
            return (false, body)
        }
        // The node is sound but the chain is not moving (no quorum, say): said here too, since
        // monitors poll health (found by black-box testing: "ok" for minutes of a stalled chain).
        // Still 200: reads and proofs are served, and restarting the node would not help.
        let stalled = ledger.stalledForMillis
        body["committing"] = stalled == 0
        var warnings: [String] = []
        if stalled > 0 {
            body["uncommitted_for_ms"] = stalled
            warnings.append("no block committed for \(stalled / 1000) s while one is due (transactions waiting, or a round under way): is a quorum of validators up and connected? GET /v1/status on the operator address tells")
        }
        // Cut off from every peer, or far behind them: the node serves what it holds, which may
        // be out of date (it said "ok"; found by black-box testing, 2026-12-07).
        if let (peers, known) = ledger.connectivity {
            body["peers_connected"] = peers
            body["behind_by"] = known ?? NSNull()
            let behind = known ?? 0
            if known == nil, peers > 0 { warnings.append("its validator peers have not reported their heights yet (just started, or few connected): whether this node is behind, and what it serves out of date, is not known yet") }
            if peers == 0 { warnings.append("no peer connected: this node hears nothing from the consortium, and what it serves may be out of date; check its peers' addresses, the network, and that its genesis file is the consortium's (the node's log names each failed handshake)") }
            if behind >= Self.behindWarning { warnings.append("\(behind) blocks behind the height its validator peers report: catching up, and what it serves is out of date until then") }
        }
        let refusing = ledger.refusingPeers
        if !refusing.isEmpty {
            body["refused_by"] = refusing.map(\.peer)
            warnings.append("refused by \(refusing.map(\.peer).joined(separator: ", ")): \(refusing[0].why)")
        }
        if !warnings.isEmpty { body["warning"] = warnings.joined(separator: "; ") }
        return (true, body)
    }

    /// Health plus what the node is doing: consensus height/round/step, connected peers, mempool.
    func status() throws -> Response {
        // The consensus figures first (they may wait on a busy queue), then the head: read the
        // other way round, a catching-up node showed consensus.height 30 above height, fresh
        // figures beside a head from before the wait (found by black-box testing, 2026-12-08).
        let consensus = ledger.status()
        let head = store.head
        var body: [String: Any] = ["chain_id": genesis.chainID, "height": head.height, "head_hash": head.blockHash.hexString,
                                   "log_size": head.logSize, "software_version": Release.version]
        for (k, v) in consensus { body[k] = v }
        if case .success(let q) = queries { body["queries_turned_away"] = q.turnedAway }
        body["task_threads"] = TaskThreads.current
        return json(.ok, body)
    }

    func members() -> Response {
        json(.ok, ["chain_id": genesis.chainID, "quorum": genesis.quorum,
                   "members": genesis.members.map { m -> [String: Any] in
                       ["id": m.id, "name": m.name, "roles": Role.allCases.filter(m.roles.contains).map(\.rawValue),
                        "verifier_key": m.verifierKey, "x25519_public_key": m.encryptionKey.bytes.base64String]
                   }])
    }

    struct WireSubmission: Decodable {
        var transaction: String
        var envelope: String?
    }

    struct WireBatch: Decodable {
        var transactions: [WireSubmission]
    }

    func decodeSubmission(_ wire: WireSubmission) throws -> Submission {
        guard let txBytes = [UInt8](base64: wire.transaction) else {
            throw LedgerError(.malformed, "\"transaction\" is not base64")
        }
        let tx = try Transaction.decode(txBytes, maxBytes: genesis.limits.maxTransactionBytes)
        var envelope: Envelope? = nil
        if let e = wire.envelope {
            guard let bytes = [UInt8](base64: e) else { throw LedgerError(.malformed, "\"envelope\" is not base64") }
            envelope = try Envelope.decode(bytes, maxBytes: genesis.limits.maxEnvelopeBytes)
        }
        return Submission(transaction: tx, envelope: envelope)
    }

    /// The longest a request body may take to arrive: the idle timeout (30 s by default), plus
    /// a second for every 256 KiB of the route's limit (a 16 MiB batch: 94 s).
    func bodyDeadline(limit: Int) -> Duration { bodyDeadlineBase + .seconds(limit / (256 << 10)) }

    func readBody<T: Decodable>(_ request: Request, _ context: APIRequestContext, as type: T.Type, limit: Int) async throws -> T {
        try await readBody(request, context, as: type, limit: limit) { $0 }
    }

    /// Reads and parses the body, then runs `then` on it before the body's bytes go back to the
    /// budget: what `then` decodes from it (a batch's transactions) is made while the body
    /// still counts, so requests past the budget cannot each hold a parsed and a decoded copy.
    func readBody<T: Decodable, R>(_ request: Request, _ context: APIRequestContext, as type: T.Type, limit: Int, then: (T) throws -> R) async throws -> R {
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > limit {
            throw LedgerError(.requestTooLarge, "request body is over the limit of \(limit) bytes")
        }
        // The time a body may take follows its declared length where it has one: a client that
        // declared 1,000 bytes and trickled them held a batch route's connection for the 94 s a
        // 16 MiB batch gets, and a few such clients held the listener (found by black-box testing).
        // A body without a declared length (chunked) earns its time as its bytes arrive: it had
        // the route's whole allowance, the trickle again by another road (found in review).
        let started = ContinuousClock.now
        func allowed(received: Int) -> Duration { bodyDeadline(limit: declared.map { min(limit, $0) } ?? min(limit, received)) }
        // Bytes are taken from the shared budget as they arrive, so a slow upload holds only
        // what it has sent; one trickling a byte at a time (which the idle timeout does not
        // stop) is cut off at the deadline instead of holding its share for good.
        var buffer = ByteBuffer()
        var reserved = 0
        defer { bodies.give(reserved) }
        do {
            for try await part in request.body {
                guard buffer.readableBytes + part.readableBytes <= limit else {
                    throw LedgerError(.requestTooLarge, "request body is over the limit of \(limit) bytes")
                }
                guard bodies.take(part.readableBytes) else {
                    throw LedgerError(.mempoolFull, "the node is reading \(bodies.used) bytes of request bodies, limit \(bodies.limit); retry shortly")
                }
                reserved += part.readableBytes
                let allowed = allowed(received: buffer.readableBytes + part.readableBytes)
                guard ContinuousClock.now <= started + allowed else {
                    // The connection goes too, a moment after the refusal is written: the server
                    // would otherwise wait for the rest of the body before the next request, and
                    // the client kept its connection, one of the listener's few, for as long as
                    // it went on trickling (found by black-box testing, 2026-12-07).
                    let channel = context.channel
                    channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
                    throw LedgerError(.malformed, "request body took over \(allowed) to arrive; refused, and the connection closed")
                }
                buffer.writeImmutableBuffer(part)
            }
        } catch let e as LedgerError { throw e } catch {
            throw LedgerError(.malformed, "request body could not be read: \(error)")
        }
        let bytes = Array(buffer.readableBytesView)
        buffer = ByteBuffer()
        // A key given twice is read as the first here and as the last by most other readers: a
        // body that a client's log or a reviewer's tool reads as another transaction or query
        // than the node does is refused (found by black-box testing, 2026-12-07).
        if let duplicate = JSONDuplicateKeys.first(in: bytes) {
            throw LedgerError(.malformed, "request body is not JSON every reader takes alike: \(duplicate)")
        }
        let parsed: T
        do { parsed = try JSONDecoder().decode(T.self, from: Data(bytes)) } catch {
            throw LedgerError(.malformed, "request body is not the expected JSON: \(Self.describe(decoding: error))")
        }
        return try then(parsed)
    }

    /// The body limit of each route that reads a body (POST); `ExpectContinueHandler` invites
    /// only bodies within their route's.
    var bodyLimits: [String: Int] {
        ["/v1/transactions": singleSubmissionLimit, "/v1/transactions/batch": genesis.limits.maxRequestBytes, "/v1/queries": Self.queryBodyLimit]
    }
    var singleSubmissionLimit: Int { (genesis.limits.maxTransactionBytes + genesis.limits.maxEnvelopeBytes) * 4 / 3 + 1024 }
    static let queryBodyLimit = QueryRequest.maxBytes * 2

    func submitOne(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let submission = try await readBody(request, context, as: WireSubmission.self, limit: singleSubmissionLimit) { try decodeSubmission($0) }
        let results = try await submitNamingConflicts([submission])
        return json(.ok, commitJSON(results[0]))
    }

    func submitBatch(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let submissions = try await readBody(request, context, as: WireBatch.self, limit: genesis.limits.maxRequestBytes) { wire in
            guard wire.transactions.count <= genesis.limits.maxBatchTransactions else {
                throw LedgerError(.fieldTooLarge, "batch holds \(wire.transactions.count) transactions, limit \(genesis.limits.maxBatchTransactions)")
            }
            var submissions: [Submission] = []
            submissions.reserveCapacity(wire.transactions.count)
            for (i, w) in wire.transactions.enumerated() {
                do { submissions.append(try decodeSubmission(w)) } catch { throw BatchError(index: i, error: error) }
            }
            return submissions
        }
        let results: [CommitResult]
        do {
            results = try await submitNamingConflicts(submissions)
        } catch let e as BatchError where e.index == nil && submissions.count == 1 {
            // The checks leave out the index when there is one submission (the single
            // endpoint's errors have none); a batch's refusal names it even for a batch of one,
            // as a decoding error here did (found in review, 2026-12-06).
            throw BatchError(index: 0, error: e.error)
        } catch var e as NonceHeld where e.index == nil && submissions.count == 1 {
            e.index = 0
            throw e
        }
        // Written directly: JSONSerialization of thousands of small objects costs more than the commit.
        var out = "{\"results\":["
        out.reserveCapacity(16 + results.count * 140)
        for (i, r) in results.enumerated() {
            if i > 0 { out += "," }
            out += "{\"height\":\(r.height),\"id\":\"\(r.id.hexString)\",\"log_index\":\(r.logIndex),\"status\":\"committed\"}"
        }
        out += "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: out)))
    }

    /// Submits for a client. A refused replay whose nonce a committed transaction holds names
    /// that transaction and where it committed (`NonceHeld`): a client resending after a
    /// timeout learns that its first copy is on the ledger (the same id) or that another
    /// transaction took the nonce. Looked up only on that refusal.
    func submitNamingConflicts(_ submissions: [Submission]) async throws -> [CommitResult] {
        do {
            return try await ledger.submit(submissions)
        } catch {
            let index = (error as? BatchError)?.index
            guard let refusal = ((error as? BatchError)?.error ?? error) as? LedgerError, refusal.code == .replay,
                  (index ?? 0) < submissions.count else { throw error }
            let tx = submissions[index ?? 0].transaction
            guard let holder = try? store.nonceHolder(signer: tx.header.signer, nonce: tx.header.nonce),
                  let location = try? store.location(of: holder) else { throw error }
            throw NonceHeld(index: index, submitted: tx.id, holder: holder, location: location, reason: refusal.reason)
        }
    }

    /// A submission refused because its signer's nonce is held by a committed transaction.
    struct NonceHeld: Error {
        var index: Int?
        let submitted: Hash
        let holder: Hash
        let location: ChainStore.Location
        /// The refusal as the node gave it (for a batch, it may say how many others had committed).
        let reason: String

        var message: String {
            let place = "height \(location.height) (log index \(location.logIndex))"
            return submitted == holder
                ? "transaction \(holder.hexString) is already committed, at \(place); it was not added again"
                : "\(reason); transaction \(holder.hexString) holds that nonce, committed at \(place); this transaction (\(submitted.hexString)) was not added"
        }
    }

    func commitJSON(_ r: CommitResult) -> [String: Any] {
        ["id": r.id.hexString, "status": "committed", "height": r.height, "log_index": r.logIndex]
    }

    /// Which of a subject's records were revoked or corrected, and by what, for the history and
    /// a transaction's status: both showed a revoked record as any other (found by black-box
    /// testing, 2026-12-08). From the subject's first 1,024 amendments and records, the window
    /// scoring and the revoked-record rule read. A revocation of any version ends the whole
    /// record (SCORING.md §3.2), so every version of it shows the revocation; `corrected_by`
    /// names the corrections of that very version.
    struct Amendments {
        let versions: RecordVersions
        var revokedBy: [HashKey: Hash] = [:]
        var correctedBy: [HashKey: [Hash]] = [:]

        init(_ versions: RecordVersions) {
            self.versions = versions
            for (target, id) in versions.revocations where revokedBy[versions.root(of: target)] == nil { revokedBy[versions.root(of: target)] = id }
            for (child, target) in versions.parent { correctedBy[HashKey(target), default: []].append(child.bytes) }
        }

        func note(_ id: Hash, in r: inout [String: Any]) {
            if let v = revokedBy[versions.root(of: id)] { r["revoked_by"] = v.hexString }
            if let c = correctedBy[HashKey(id)] { r["corrected_by"] = c.map(\.hexString).sorted() }
        }
    }

    func amendments(of subject: USCC) throws -> Amendments {
        Amendments(try RecordVersions(subject: subject, state: store))
    }

    func transactionStatus(_ idText: String) throws -> Response {
        guard let id = [UInt8](hex: idText), id.count == 32 else {
            throw LedgerError(.malformed, "transaction id \"\(idText)\" is not 64 hex digits")
        }
        guard let loc = try store.location(of: id), let tx = try store.transaction(at: loc.logIndex) else {
            // Said when it is so: during an outage an operator could not tell (found by black-box
            // testing). A 200 with status "pending", not a 404 like an unknown id: a client told
            // "not committed" and to look the transaction up gets the answer it can act on (2026-12-08).
            if ledger.isPending(id) {
                return json(.ok, ["id": idText.lowercased(), "status": "pending",
                                  "message": "transaction \(idText) is pending on this node: admitted, not committed yet (a block needs a quorum of validators)"])
            }
            throw LedgerError(.notFound, "transaction \(idText) is not committed on this node, nor pending here")
        }
        let head = store.head
        guard let note = try store.checkpoint(height: head.height) else {
            throw LedgerError(.notFound, "no checkpoint at height \(head.height)")
        }
        let proof = try store.inclusionProof(index: loc.logIndex, size: head.logSize)
        var body: [String: Any] = [
            "id": tx.id.hexString, "status": "committed", "height": loc.height, "log_index": loc.logIndex,
            "transaction": JSONView.transaction(tx), "encoded": tx.encoded.base64String,
            "inclusion_proof": ["log_index": loc.logIndex, "tree_size": head.logSize, "hashes": proof.map(\.base64String)],
            "checkpoint": note,
        ]
        // A record's later fate: committed still, but revoked, corrected or erased since.
        if let record = tx.body.envelopedRecord {
            try amendments(of: record.subject).note(tx.id, in: &body)
            if let erasure = try store.erasure(of: tx.id) { body["erased_by"] = erasure.hexString }
        }
        return json(.ok, body)
    }

    func receipt(_ idText: String) throws -> Response {
        guard let id = [UInt8](hex: idText), id.count == 32 else {
            throw LedgerError(.malformed, "transaction id \"\(idText)\" is not 64 hex digits")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(try store.receipt(for: id))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    /// A path segment, percent-decoded (`/v1/blocks/%31` read "%31"; found by black-box testing).
    static func pathParameter(_ context: APIRequestContext, _ name: String) -> String {
        let raw = context.parameters.get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }

    /// A query parameter given at most once: a repeated one was read as its first copy, without a
    /// word (`?limit=1&limit=1000`; found by black-box testing).
    static func queryParameter(_ request: Request, _ name: String) throws -> String? {
        // Keys are compared as sent (values are percent-decoded): `lim%69t` would be a second
        // `limit` to a reader that decodes keys, so an escaped key is refused (found in review).
        if let query = request.uri.query, let key = query.split(separator: "&").map({ $0.prefix { $0 != "=" } }).first(where: { $0.contains("%") }) {
            throw LedgerError(.malformed, "query parameter name \"\(key)\" is percent-encoded; parameter names are plain text")
        }
        let all = request.uri.queryParameters.getAll(name)
        guard all.count <= 1 else { throw LedgerError(.malformed, "query parameter \(name) is given \(all.count) times; give it once") }
        return all.first
    }

    /// A number written in decimal digits alone: `UInt64("+1")` is 1.
    static func decimal(_ text: String) -> UInt64? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return UInt64(text)
    }

    func block(_ heightText: String) throws -> Response {
        guard let height = Self.decimal(heightText), height > 0 else {
            throw LedgerError(.malformed, "block height \"\(heightText)\" is not a positive integer")
        }
        // Only up to the head: a block being written is in RocksDB before it is committed here.
        let head = store.head
        guard height <= head.height, let header = try store.blockHeader(height: height), let cert = try store.certificate(height: height) else {
            throw LedgerError(.notFound, "block \(height) is not committed (head is \(head.height))")
        }
        var ids: [String] = []
        for i in header.firstLogIndex..<header.logSize { ids.append(try store.transaction(at: i)?.id.hexString ?? "") }
        return json(.ok, ["header": JSONView.header(header), "commit_certificate": JSONView.certificate(cert), "transactions": ids])
    }

    func checkpoint() throws -> Response {
        guard let note = try store.latestCheckpoint() else {
            throw LedgerError(.notFound, "no block has been committed yet")
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: note)))
    }

    func consistency(old: String?, new: String?) throws -> Response {
        let size = store.head.logSize
        guard let oldText = old, let oldSize = Self.decimal(oldText) else {
            throw LedgerError(.malformed, "query parameter old must be a tree size")
        }
        let newSize: UInt64
        if let new { guard let n = Self.decimal(new) else { throw LedgerError(.malformed, "query parameter new must be a tree size") }; newSize = n } else { newSize = size }
        guard oldSize <= newSize, newSize <= size else {
            throw LedgerError(.invalidProof, "need old ≤ new ≤ \(size) (the log size), got old \(oldSize) new \(newSize)")
        }
        let proof = try store.consistencyProof(oldSize: oldSize, newSize: newSize)
        return json(.ok, ["old_size": oldSize, "new_size": newSize, "hashes": proof.map(\.base64String)])
    }

    func history(_ text: String, after: String?, limit: String?) throws -> Response {
        let subject = try USCC(text)
        let max = try limit.map { l -> Int in
            guard let n = Self.decimal(l), (1...UInt64(Self.maxHistory)).contains(n) else {
                throw LedgerError(.invalidValue, "limit must be 1-\(Self.maxHistory)")
            }
            return Int(n)
        } ?? 100
        let afterIndex = try after.map { a -> UInt64 in
            guard let n = Self.decimal(a) else { throw LedgerError(.malformed, "after must be a log index") }
            return n
        }
        var records: [[String: Any]] = []
        let logSize = store.head.logSize
        let amended = try amendments(of: subject)
        // One entry past the page tells whether there is more: a page was cut at 100 records
        // with nothing to say so (found by black-box testing, 2026-12-08).
        var entries = try store.subjectHistory(subject, after: afterIndex, limit: max + 1).filter { $0.logIndex < logSize }
        let more = entries.count > max
        if more { entries.removeLast(entries.count - max) }
        for entry in entries {
            // Entries of a block being written are not committed yet (filtered above).
            guard let tx = try store.transaction(at: entry.logIndex) else { continue }
            var r: [String: Any] = ["id": tx.id.hexString, "log_index": entry.logIndex, "kind": tx.kind.name,
                                    "issuer": tx.header.signer]
            switch tx.body {
            case .attestation(let a):
                r["category"] = a.category.name; r["severity"] = a.severity.name; r["event_date"] = a.eventDate.description
            case .amendment(let a):
                r["action"] = a.action == .correction ? "correction" : "revocation"; r["target"] = a.target.hexString
                if let rep = a.replacement {
                    // With its severity, as an attestation's entry has (a correction to serious did not show; found by black-box testing).
                    r["category"] = rep.category.name; r["severity"] = rep.severity.name; r["event_date"] = rep.eventDate.description
                }
            case .scoreUpdate(let s):
                r["grade"] = s.grade.name; r["model_hash"] = s.modelHash.hexString
            case .consent(let c):
                r["action"] = c.action == .grant ? "grant" : "revoke"; r["grantee"] = c.grantee; r["purpose"] = c.purpose.name
                if c.action == .revoke { r["target"] = c.target.hexString }
            case .governance, .evidence, .queryRecord: break
            }
            // An erased record's payload is gone everywhere: said here, where it looked as before
            // (found by black-box testing, 2026-12-07).
            if tx.body.envelopedRecord != nil, let erasure = try store.erasure(of: tx.id) { r["erased_by"] = erasure.hexString }
            amended.note(tx.id, in: &r)
            records.append(r)
        }
        var body: [String: Any] = ["subject": subject.code, "records": records, "more": more]
        if more, let last = entries.last { body["next_after"] = last.logIndex }
        return json(.ok, body)
    }

    // MARK: Errors

    /// How long a request's client will wait for its commit, from `Prefer: wait=N` (RFC 7240
    /// §4.3): a node whose `commit_wait_seconds` is longer answers 503 `notCommitted` before the
    /// client gives up, instead of after (the tools wait 60 s; found by black-box testing).
    enum CommitWait {
        @TaskLocal static var preferred: Duration?

        /// The smallest `wait=N` (whole seconds, at least 1) among the `Prefer` header values.
        static func preferred(in values: [String]) -> Duration? {
            let seconds = values.flatMap { $0.split(separator: ",") }.compactMap { preference -> Int? in
                // `wait=10`, `wait = 10` or `wait="10"` (RFC 7240 §2).
                let token = preference.split(separator: ";", maxSplits: 1).first ?? ""
                let parts = token.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, parts[0].lowercased() == "wait" else { return nil }
                let value = parts[1].count >= 2 && parts[1].hasPrefix("\"") && parts[1].hasSuffix("\"") ? String(parts[1].dropFirst().dropLast()) : parts[1]
                guard let n = Int(value), n >= 1 else { return nil }
                return n
            }.min()
            return seconds.map { .seconds($0) }
        }
    }

    func guarded(_ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch { return Self.errorResponse(error) }
    }

    static func errorResponse(_ error: any Error) -> Response {
        var index: Int? = nil
        var underlying = error
        var committed: [String: Any]? = nil
        if let b = error as? BatchError { index = b.index; underlying = b.error }
        if let held = error as? NonceHeld {
            (index, underlying) = (held.index, LedgerError(.replay, held.message))
            committed = ["id": held.holder.hexString, "height": held.location.height, "log_index": held.location.logIndex]
        }
        let (status, code, message): (HTTPResponse.Status, String, String)
        switch underlying {
        case let e as LedgerError:
            (status, code, message) = (statusFor(e.code), e.code.rawValue, e.reason)
        case let e as StorageError:
            // camelCase like every other code (it was storage_write; found by black-box testing).
            (status, code, message) = (.serviceUnavailable, "storage" + e.code.rawValue.prefix(1).uppercased() + e.code.rawValue.dropFirst(), e.reason)
        case let e as CryptoError:
            (status, code, message) = (.badRequest, e.code.rawValue, e.reason)
        default:
            (status, code, message) = (.internalServerError, "internal", "\(underlying)")
        }
        var body: [String: Any] = ["code": code, "message": message]
        if let index { body["index"] = index }
        if let committed { body["committed"] = committed }
        var response = json(status, ["error": body])
        if let millis = (underlying as? LedgerError)?.retryAfterMillis {
            response.headers[.retryAfter] = "\(max(1, (millis + 999) / 1000))"
        }
        return response
    }

    static func statusFor(_ code: LedgerError.Code) -> HTTPResponse.Status {
        switch code {
        case .transactionTooLarge, .requestTooLarge: return .contentTooLarge
        // 403, not 401: the signature belongs to the transaction, not to the HTTP request, so
        // there is no HTTP authentication scheme to name in a WWW-Authenticate header.
        case .unknownSigner, .unknownKey, .badSignature, .notAuthorized: return .forbidden
        case .replay, .conflict: return .conflict
        case .unknownReference: return .unprocessableContent
        case .notFound, .operatorOnly: return .notFound
        case .mempoolFull, .notCommitted, .outOfDate, .busy: return .serviceUnavailable
        case .rateLimited: return .tooManyRequests
        default: return .badRequest
        }
    }

    static func describe(decoding error: any Error) -> String {
        // A DecodingError's JSON path reads transactions[1].transaction (it read "transactions.Index 1").
        if case DecodingError.dataCorrupted(let c) = error { return c.debugDescription }
        return DecodingProblem.describe(error)
    }

    static func json(_ status: HTTPResponse.Status, _ object: Any) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(data: JSONView.data(object))))
    }

    func json(_ status: HTTPResponse.Status, _ object: Any) -> Response { Self.json(status, object) }
}

/// The paths a router serves, with their methods (`:name` segments match any one segment).
final class ServedPaths: Sendable {
    private let routes = Mutex<[(method: HTTPRequest.Method, segments: [Substring])]>([])

    func add(_ method: HTTPRequest.Method, _ path: String) {
        routes.withLock { $0.append((method, path.split(separator: "/"))) }
    }

    /// The methods `path` is served with, in the order they were added. Resolved as the
    /// router resolves it: of the patterns that match the whole path, the one with a literal
    /// where the others have a `:name`, at the first segment they differ (the router tries
    /// literal children first and backs off to `:name` ones when a branch ends). So
    /// `/v1/transactions/batch` is the batch route's path alone, and
    /// `/v1/transactions/batch/receipt` the receipt route's (PUT on the first named GET as
    /// served, which answered 404; found in review).
    func methods(serving path: String) -> [HTTPRequest.Method] {
        let parts = path.split(separator: "/")
        return routes.withLock { routes in
            let matching = routes.filter { r in
                r.segments.count == parts.count && zip(r.segments, parts).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }
            let rank = { (r: (method: HTTPRequest.Method, segments: [Substring])) in r.segments.map { $0.hasPrefix(":") ? 0 : 1 } }
            guard let best = matching.map(rank).max(by: { $0.lexicographicallyPrecedes($1) }) else { return [] }
            return matching.filter { rank($0) == best }.map(\.method)
        }
    }
}

/// Errors the router itself raises (no route for the path or method) answered like every other
/// error, `{"error": {"code", "message"}}`, instead of an empty body. A served path asked with
/// another method is 405 with `Allow` (it was 404, as for a path that does not exist; found by
/// black-box testing).
struct JSONErrors<Context: RequestContext>: RouterMiddleware {
    let served: ServedPaths

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            let allowed = served.methods(serving: request.uri.path)
            guard !allowed.isEmpty else {
                // The same code as the API's own not-found answers (it was not_found; found by black-box testing).
                return LedgerAPI.json(.notFound, ["error": ["code": LedgerError.Code.notFound.rawValue,
                                                            "message": "no endpoint \(request.method) \(request.uri.path)"]])
            }
            let names = allowed.map(\.rawValue)
            var response = LedgerAPI.json(.methodNotAllowed, ["error": ["code": "methodNotAllowed",
                "message": "\(request.uri.path) is served with \(names.joined(separator: " and ")) only, not \(request.method)"]])
            response.headers[.allow] = names.joined(separator: ", ")
            return response
        } catch let e as HTTPError {
            return LedgerAPI.json(e.status, ["error": ["code": "http_\(e.status.code)", "message": e.body ?? "\(e.status)"]])
        }
    }
}

/// A bound on the bytes of request bodies held at once. Each reader reserves its body's
/// declared length (or the route's limit) before reading, and gives it back once decoded.
final class BodyBudget: Sendable {
    static let defaultLimit = 256 << 20
    let limit: Int
    private let held = Mutex(0)
    init(limit: Int) { self.limit = limit }
    var used: Int { held.withLock { $0 } }
    func take(_ bytes: Int) -> Bool {
        held.withLock { used in
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }
    func give(_ bytes: Int) { held.withLock { $0 -= bytes } }
}

/// The request context of the node's API: Hummingbird's, with the connection's channel, so that
/// a request whose body stops arriving can have its connection closed (`readBody`).
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
