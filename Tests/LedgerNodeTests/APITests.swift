import Foundation
import Hummingbird
import HummingbirdTesting
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import XCTest

/// The HTTP API without a socket: every bad input gets a clear 4xx and nothing is stored.
final class APITests: XCTestCase {
    var directory = ""

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("api-\(UUID())").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    struct Harness {
        let ledger: Ledger
        let keys: MemberSecretKeys
        var genesis: Genesis { ledger.genesis }

        func attestation(subject: String = "91350100M000100Y43", category: String = "license", nonce: UInt64) throws -> Submission {
            try AttestationRequest(subject: subject, subject_kind: nil, category: category, severity: nil, event_date: "2026-03-14",
                                   industry: "C13", attributes: ["amount_yuan": 5000], payload: .string("licence 330106-\(nonce)"))
                .build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }

        /// Signs an attestation body as-is, without the request builder's checks.
        func raw(_ body: AttestationBody, nonce: UInt64, chainID: String? = nil, key: Ed25519PrivateKey? = nil, signer: String = "dev") -> Transaction {
            let member = genesis.member("dev")!
            return Transaction.sign(header: TransactionHeader(chainID: chainID ?? genesis.chainID, signer: signer, keyID: member.keyID,
                                                              nonce: nonce, issuedAtMillis: 1),
                                    body: .attestation(body), key: key ?? keys.signing)
        }
    }

    /// `queryClock`: the query service's clock (its time window and refusal budgets); the wall clock unless given.
    func withAPI(queryClock: (@Sendable () -> UInt64)? = nil, _ test: @escaping @Sendable (Harness, any TestClientProtocol) async throws -> Void) async throws {
        let opened = try DevNode.open(dataDirectory: directory)
        let ledger = try Ledger(store: opened.store, validatorKeys: opened.keys, clock: { 1_795_000_000_000 },
                                blockInterval: .milliseconds(2))
        let producer = Task { await ledger.runBlockProducer() }
        defer { producer.cancel() }
        let app = Application(router: LedgerAPI(ledger: ledger, clock: queryClock).makeRouter())
        let harness = Harness(ledger: ledger, keys: opened.keys)
        try await app.test(.router) { client in try await test(harness, client) }
    }

    static func body(_ object: Any) -> ByteBuffer { ByteBuffer(data: JSONView.data(object)) }

    static func wire(_ tx: Transaction, _ envelope: Envelope?) -> [String: Any] {
        LedgerClient.wire(Submission(transaction: tx, envelope: envelope))
    }

    static func json(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
    }

    static func errorCode(_ response: TestResponse) -> String? {
        (json(response)["error"] as? [String: Any])?["code"] as? String
    }

    /// The block producer runs on a thread of its own. Stopping it in the middle of a long block
    /// interval is prompt, commits what was already admitted, and refuses what comes after.
    func testStoppingTheProducerCommitsWhatWasAdmittedAndRefusesTheRest() async throws {
        let opened = try DevNode.open(dataDirectory: directory)
        let ledger = try Ledger(store: opened.store, validatorKeys: opened.keys, clock: { 1_795_000_000_000 },
                                blockInterval: .seconds(30))
        let h = Harness(ledger: ledger, keys: opened.keys)
        let producer = Task { await ledger.runBlockProducer() }
        let start = ledger.store.head.height
        // The first block commits at once; the next would wait out the 30 s interval.
        let first = try await ledger.submit([try h.attestation(nonce: 1)], signedHere: false)
        XCTAssertEqual(first[0].height, start + 1)
        let second = try h.attestation(nonce: 2)
        let pending = Task { try await ledger.submit([second], signedHere: false) }
        // Wait until the second submission is admitted (a slow machine may take a while to run the task).
        let admittedBy = ContinuousClock.now + .seconds(20)
        while ledger.queuedCount == 0, ContinuousClock.now < admittedBy { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(ledger.queuedCount, 1, "the second submission is admitted")
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(ledger.store.head.height, start + 1, "the interval holds the second block back")
        let stopAt = ContinuousClock.now
        producer.cancel()
        await producer.value
        XCTAssertLessThan(ContinuousClock.now - stopAt, .seconds(10), "a stop does not wait out the block interval")
        let committed = try await pending.value
        XCTAssertEqual(committed[0].height, start + 2)
        XCTAssertEqual(committed[0].id, second.transaction.id)
        XCTAssertEqual(ledger.store.head.height, start + 2)
        do {
            _ = try await ledger.submit([try h.attestation(nonce: 3)], signedHere: false)
            XCTFail("a submission after the stop was accepted")
        } catch let e as LedgerError {
            XCTAssertEqual(e.code, .mempoolFull)
        }
        XCTAssertEqual(ledger.store.head.height, start + 2)
    }

    func testSubmitThenProveInclusionAgainstTheCheckpoint() async throws {
        try await withAPI { h, client in
            let s = try h.attestation(nonce: 1)
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(LedgerClient.wire(s))) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(Self.json(r)["id"] as? String, s.transaction.id.hexString)
                XCTAssertEqual(Self.json(r)["status"] as? String, "committed")
            }
            let status = try await client.execute(uri: "/v1/transactions/\(s.transaction.id.hexString)", method: .get) { Self.json($0) }
            let proof = status["inclusion_proof"] as! [String: Any]
            let note = status["checkpoint"] as! String
            let (cp, _) = try Checkpoint.verify(signedNote: note, genesis: h.genesis)
            XCTAssertTrue(Merkle.verifyInclusion(leafHash: s.transaction.id, index: (proof["log_index"] as! NSNumber).uint64Value,
                                                 size: cp.size, proof: (proof["hashes"] as! [String]).map { [UInt8](base64: $0)! },
                                                 root: cp.rootHash))
            try await client.execute(uri: "/v1/checkpoint", method: .get) { r in
                XCTAssertEqual(String(buffer: r.body), note)
            }
            try await client.execute(uri: "/v1/blocks/1", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(Self.json(r)["transactions"] as? [String], [s.transaction.id.hexString])
            }
            try await client.execute(uri: "/v1/subjects/91350100M000100Y43/history", method: .get) { r in
                let records = Self.json(r)["records"] as? [[String: Any]] ?? []
                XCTAssertEqual(records.count, 1)
                XCTAssertEqual(records.first?["category"] as? String, "license")
                XCTAssertNil(records.first?["payload"], "history is metadata only")
            }
            let batch = try (2...6).map { try h.attestation(nonce: UInt64($0)) }
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": batch.map(LedgerClient.wire)])) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual((Self.json(r)["results"] as? [Any])?.count, 5)
            }
            // Pages of a subject's history say whether there is more, and where the next starts.
            var pages: [[UInt64]] = []
            var after: UInt64? = nil
            repeat {
                let page = try await client.execute(uri: "/v1/subjects/91350100M000100Y43/history?limit=4" + (after.map { "&after=\($0)" } ?? ""), method: .get) { Self.json($0) }
                pages.append((page["records"] as? [[String: Any]] ?? []).compactMap { ($0["log_index"] as? NSNumber)?.uint64Value })
                XCTAssertEqual(page["more"] as? Bool, pages.count == 1, "\(page)")
                after = (page["next_after"] as? NSNumber)?.uint64Value
                XCTAssertEqual(after, page["more"] as? Bool == true ? pages.last?.last : nil)
            } while after != nil && pages.count < 5
            XCTAssertEqual(pages, [[0, 1, 2, 3], [4, 5]])
            try await client.execute(uri: "/v1/proofs/consistency?old=1&new=6", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                let root1 = Merkle.leafHash(s.transaction.encoded)
                let root6 = h.ledger.store.head.logRoot
                XCTAssertTrue(Merkle.verifyConsistency(oldSize: 1, newSize: 6, oldRoot: root1, newRoot: root6,
                                                       proof: (Self.json(r)["hashes"] as! [String]).map { [UInt8](base64: $0)! }))
            }
        }
    }

    /// `GET /metrics` serves the node's figures in Prometheus's text format: the head, and every
    /// synced block write in a histogram of its time.
    func testMetricsServeTheHeadAndEverySyncedBlockWriteInPrometheusTextFormat() async throws {
        try await withAPI { h, client in
            for nonce in 1...3 {
                try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(LedgerClient.wire(try h.attestation(nonce: UInt64(nonce))))) { r in
                    XCTAssertEqual(r.status, .ok)
                }
            }
            let blocks = h.ledger.store.head.height
            XCTAssertGreaterThan(blocks, 0)
            try await client.execute(uri: "/v1/no-such-route/12345", method: .get) { r in XCTAssertEqual(r.status, .notFound) }
            try await client.execute(uri: "/v1/transactions/zz", method: .get) { r in XCTAssertEqual(r.status, .badRequest) }
            try await client.execute(uri: "/metrics", method: .get) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.headers[.contentType], "text/plain; version=0.0.4; charset=utf-8")
                let lines = String(buffer: r.body).split(separator: "\n").map(String.init)
                func sample(_ name: String) -> String? { lines.first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) } }
                XCTAssertEqual(sample("creditledger_height"), "\(blocks)")
                XCTAssertEqual(sample("creditledger_log_size"), "3")
                XCTAssertEqual(sample("creditledger_write_failure"), "0")
                XCTAssertEqual(sample("creditledger_queries_turned_away_total"), "0")
                XCTAssertEqual(sample("creditledger_synced_block_write_seconds_count"), "\(blocks)")
                XCTAssertEqual(sample("creditledger_synced_block_write_seconds_bucket{le=\"+Inf\"}"), "\(blocks)")
                XCTAssertNotNil(sample("creditledger_synced_block_write_seconds_bucket{le=\"0.001\"}"))
                XCTAssertTrue(lines.contains("# TYPE creditledger_synced_block_write_seconds histogram"), "\(lines)")
                XCTAssertTrue(lines.contains { $0.hasPrefix("creditledger_info{version=\"") && $0.contains("member=\"dev\",mode=\"dev\"} 1") }, "\(lines)")
                // Each request's time, by listener, method, route template (never the path asked) and status.
                let requests = "creditledger_http_request_duration_seconds"
                XCTAssertTrue(lines.contains("# TYPE \(requests) histogram"), "\(lines)")
                XCTAssertEqual(sample("\(requests)_count{listener=\"operator\",method=\"POST\",route=\"/v1/transactions\",status=\"200\"}"), "3")
                XCTAssertEqual(sample("\(requests)_bucket{listener=\"operator\",method=\"POST\",route=\"/v1/transactions\",status=\"200\",le=\"+Inf\"}"), "3")
                XCTAssertEqual(sample("\(requests)_count{listener=\"operator\",method=\"GET\",route=\"unmatched\",status=\"404\"}"), "1")
                XCTAssertEqual(sample("\(requests)_count{listener=\"operator\",method=\"GET\",route=\"/v1/transactions/{id}\",status=\"400\"}"), "1")
                XCTAssertFalse(lines.contains { $0.contains("no-such-route") || $0.contains("/zz") }, "\(lines)")
                // Every sample line is a name, optional labels and a number.
                for line in lines where !line.hasPrefix("#") {
                    let value = line.split(separator: " ").last.map(String.init) ?? ""
                    XCTAssertNotNil(Double(value), line)
                }
                // Buckets are cumulative.
                let buckets = lines.filter { $0.hasPrefix("creditledger_synced_block_write_seconds_bucket") }.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
                XCTAssertEqual(buckets, buckets.sorted(), "\(buckets)")
            }
        }
    }

    /// Both listeners time their requests into the one registry the operator's `/metrics` serves,
    /// each under its own `listener` label; a member asking for an operator route is counted there.
    func testRequestsOnTheMemberListenerAreTimedUnderTheirOwnLabel() async throws {
        let opened = try DevNode.open(dataDirectory: directory)
        let ledger = try Ledger(store: opened.store, validatorKeys: opened.keys, clock: { 1_795_000_000_000 })
        let api = LedgerAPI(ledger: ledger)
        try await Application(router: api.makeRouter(.members)).test(.router) { client in
            try await client.execute(uri: "/v1/health", method: .get) { XCTAssertEqual($0.status, .ok) }
            try await client.execute(uri: "/v1/status", method: .get) { XCTAssertEqual($0.status, .notFound) }
        }
        try await Application(router: api.makeRouter()).test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                let count = "creditledger_http_request_duration_seconds_count"
                XCTAssertTrue(text.contains("\(count){listener=\"member\",method=\"GET\",route=\"/v1/health\",status=\"200\"} 1\n"), text)
                XCTAssertTrue(text.contains("\(count){listener=\"member\",method=\"GET\",route=\"/v1/status\",status=\"404\"} 1\n"), text)
                XCTAssertFalse(text.contains("listener=\"operator\""), text)
            }
        }
    }

    /// Forged queries are refused on the record (403 with a refusal receipt) up to the node's
    /// budget for unauthenticated refusals; past it they get 429 `rateLimited` and write nothing.
    /// The clock stands still: on the wall clock the budget refills 2 a second, and a slow host
    /// (fresh-clone CI, 2026-12-06) took long enough over the burst to earn the 121st a place.
    func testForgedQueriesPastTheRefusalBudgetGet429AndWriteNothing() async throws {
        try await withAPI(queryClock: { 1_795_000_000_000 }) { h, client in
            let forger = Ed25519PrivateKey()
            func forged(_ nonce: UInt64) -> ByteBuffer {
                var r = QueryRequest(chainID: h.genesis.chainID, requester: "dev", keyID: h.genesis.member("dev")!.keyID,
                                     policy: Hashes.zero, subject: "91350100M000100Y43", purpose: "loan_application", parameters: [],
                                     nonce: nonce, issuedAtMillis: 1_795_000_000_000)
                r.sign(with: forger)
                return Self.body(["request": r.encoded.base64String])
            }
            let burst = RefusalBudget.Rate.unauthenticated.burst
            for n in 1...burst {
                try await client.execute(uri: "/v1/queries", method: .post, body: forged(n)) { r in
                    XCTAssertEqual(r.status, .forbidden)
                    XCTAssertEqual(Self.json(r)["reason"] as? String, "bad_signature")
                }
            }
            let size = h.ledger.store.head.logSize
            try await client.execute(uri: "/v1/queries", method: .post, body: forged(burst + 1)) { r in
                XCTAssertEqual(r.status, .tooManyRequests)
                XCTAssertEqual(Self.errorCode(r), "rateLimited")
                let message = (Self.json(r)["error"] as? [String: Any])?["message"] as? String ?? ""
                XCTAssertTrue(message.contains("bad_signature") && message.contains("retry in"), message)
                // The wait in a header too, in whole seconds, for clients that do not read the text.
                let seconds = Int(r.headers[.retryAfter] ?? "")
                XCTAssertNotNil(seconds, "no Retry-After header")
                XCTAssertGreaterThanOrEqual(seconds ?? 0, 1)
            }
            XCTAssertEqual(h.ledger.store.head.logSize, size, "the turned-away query wrote nothing")
            try await client.execute(uri: "/v1/status", method: .get) { r in
                XCTAssertEqual((Self.json(r)["queries_turned_away"] as? NSNumber)?.intValue, 1, "operators see the flood")
                XCTAssertEqual(Self.json(r)["software_version"] as? String, Release.version, "operators compare versions across nodes")
            }
        }
    }

    /// A client's long list of submissions goes in batches the node takes: at most
    /// `max_batch_transactions` each, and a body within `max_request_bytes` (`rescore --submit
    /// --batch` over the limit and `demo-data` sent batches a chain with lower limits refused
    /// whole). A submission that alone is over the body limit is refused by its index.
    func testSubmissionsAreSplitToTheChainsBatchAndRequestLimits() async throws {
        try await withAPI { h, client in
            let subs = try (0..<10).map { try h.attestation(nonce: 500 + UInt64($0)) }
            for s in subs {
                let exact = JSONView.data(LedgerClient.wire(s)).count
                XCTAssertTrue(LedgerClient.wireBytes(s) >= exact && LedgerClient.wireBytes(s) <= exact + 8, "\(LedgerClient.wireBytes(s)) vs \(exact)")
            }
            var limits = Limits()
            XCTAssertEqual(try LedgerClient.batches(subs, limits: limits).map(\.count), [10])
            limits.maxBatchTransactions = 4
            XCTAssertEqual(try LedgerClient.batches(subs, limits: limits).map(\.count), [4, 4, 2])
            limits.maxBatchTransactions = 5_000
            let one = LedgerClient.wireBytes(subs[0]) + 1
            limits.maxRequestBytes = 64 + 3 * one + one / 2   // three a body
            let split = try LedgerClient.batches(subs, limits: limits)
            XCTAssertEqual(split.map(\.count), [3, 3, 3, 1])
            XCTAssertEqual(split.flatMap { $0.map(\.transaction.id) }, subs.map(\.transaction.id), "in order, each once")
            for batch in split {
                XCTAssertLessThanOrEqual(JSONView.data(["transactions": batch.map(LedgerClient.wire)]).count, limits.maxRequestBytes)
            }
            limits.maxRequestBytes = one / 2
            XCTAssertThrowsError(try LedgerClient.batches(subs, limits: limits)) {
                XCTAssertTrue("\($0)".contains("submission 0 (\(subs[0].transaction.id.hexString)) takes \(one) bytes as JSON: more than fits in a request of \(one / 2) bytes"), "\($0)")
            }
            XCTAssertEqual(try LedgerClient.batches([], limits: limits).count, 0)
            _ = client
        }
    }

    func testBadInputTableGetsClearErrorsAndStoresNothing() async throws {
        try await withAPI { h, client in
            let good = try h.attestation(nonce: 100)
            guard case .attestation(let body) = good.transaction.body else { return XCTFail() }
            var tooMany = body
            tooMany.attributes = (0..<17).map { Attribute(name: "a\($0)", value: 1) }
            var longIndustry = body
            longIndustry.industry = "C1234567890"
            let stranger = Ed25519PrivateKey()

            // Bytes with one field altered after signing.
            func altered(_ mutate: (inout [UInt8]) -> Void) -> [String: Any] {
                var bytes = good.transaction.encoded
                mutate(&bytes)
                return ["transaction": bytes.base64String, "envelope": good.envelope!.encoded.base64String]
            }
            let bodyStart = 1 + 1 + 1 + h.genesis.chainID.utf8.count + 1 + 3 + 4 + 8 + 8 + 4
            let cases: [(String, ByteBuffer, HTTPResponse.Status, String)] = [
                ("truncated JSON body", ByteBuffer(string: "{\"transaction\": \"AQ"), .badRequest, "malformed"),
                ("missing field", Self.body(["envelope": "AA=="]), .badRequest, "malformed"),
                ("oversized body", ByteBuffer(repeating: 0x41, count: 400_000), .contentTooLarge, "requestTooLarge"),
                ("not base64", Self.body(["transaction": "***"]), .badRequest, "malformed"),
                ("truncated transaction", Self.body(["transaction": Array(good.transaction.encoded.prefix(60)).base64String]), .badRequest, "truncated"),
                ("trailing bytes", Self.body(["transaction": (good.transaction.encoded + [1]).base64String]), .badRequest, "trailingBytes"),
                ("wrong chain id", Self.body(Self.wire(h.raw(body, nonce: 101, chainID: "creditledger.other/x"), good.envelope)), .badRequest, "wrongChain"),
                ("bad signature", Self.body(Self.wire(h.raw(body, nonce: 102, key: stranger), good.envelope)), .forbidden, "badSignature"),
                ("unknown signer", Self.body(Self.wire(h.raw(body, nonce: 103, key: stranger, signer: "mallory"), good.envelope)), .forbidden, "unknownSigner"),
                ("invalid USCC", Self.body(altered { $0[bodyStart + 17] = UInt8(ascii: "0") }), .badRequest, "invalidUSCC"),
                ("unknown category", Self.body(altered { $0[bodyStart + 19] = 99 }), .badRequest, "unknownCategory"),
                ("unknown kind", Self.body(altered { $0[1] = 42 }), .badRequest, "unknownKind"),
                ("attributes over limit", Self.body(Self.wire(h.raw(tooMany, nonce: 104), good.envelope)), .badRequest, "fieldTooLarge"),
                ("industry over limit", Self.body(Self.wire(h.raw(longIndustry, nonce: 105), good.envelope)), .badRequest, "fieldTooLarge"),
                ("envelope missing", Self.body(["transaction": good.transaction.encoded.base64String]), .badRequest, "invalidValue"),
                ("envelope of another record", Self.body(Self.wire(good.transaction, try h.attestation(nonce: 106).envelope)), .badRequest, "invalidValue"),
                ("batch with one bad transaction", Self.body(["transactions": [LedgerClient.wire(try h.attestation(nonce: 107)),
                                                                               Self.wire(h.raw(body, nonce: 108, key: stranger), good.envelope)]]),
                 .forbidden, "badSignature"),
            ]
            for (name, requestBody, status, code) in cases {
                let uri = name.hasPrefix("batch") ? "/v1/transactions/batch" : "/v1/transactions"
                try await client.execute(uri: uri, method: .post, body: requestBody) { r in
                    XCTAssertEqual(r.status, status, name)
                    XCTAssertEqual(Self.errorCode(r), code, "\(name): \(String(buffer: r.body))")
                    let message = (Self.json(r)["error"] as? [String: Any])?["message"] as? String ?? ""
                    XCTAssertFalse(message.isEmpty, name)
                    if name.hasPrefix("batch") { XCTAssertEqual((Self.json(r)["error"] as? [String: Any])?["index"] as? Int, 1) }
                }
            }
            XCTAssertEqual(h.ledger.store.head.logSize, 0, "no bad input may be stored")
            // A field of the wrong type is named by its JSON path (it read "transactions.Index 1").
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": [LedgerClient.wire(good), ["transaction": 5]]])) { r in
                XCTAssertEqual(r.status, .badRequest)
                let message = (Self.json(r)["error"] as? [String: Any])?["message"] as? String ?? ""
                XCTAssertTrue(message.contains("wrong type at transactions[1].transaction"), message)
            }

            // The good one commits once; its replay is refused, naming where the first copy committed
            // (a client resending after a timeout learns that its transaction is on the ledger).
            var first: [String: Any] = [:]
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(LedgerClient.wire(good))) { r in
                XCTAssertEqual(r.status, .ok)
                first = Self.json(r)
            }
            let goodID = good.transaction.id.hexString
            func assertNamesFirst(_ r: TestResponse, index: Int?, words: String, _ name: String) {
                XCTAssertEqual(r.status, .conflict, name)
                XCTAssertEqual(Self.errorCode(r), "replay", name)
                let error = Self.json(r)["error"] as? [String: Any] ?? [:]
                let committed = error["committed"] as? [String: Any] ?? [:]
                XCTAssertEqual(committed["id"] as? String, goodID, "\(name): \(error)")
                XCTAssertEqual(committed["height"] as? Int, first["height"] as? Int, "\(name): \(error)")
                XCTAssertEqual(committed["log_index"] as? Int, 0, "\(name): \(error)")
                XCTAssertEqual(error["index"] as? Int, index, "\(name): \(error)")
                XCTAssertTrue((error["message"] as? String ?? "").contains(words), "\(name): \(error)")
            }
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(LedgerClient.wire(good))) { r in
                assertNamesFirst(r, index: nil, words: "transaction \(goodID) is already committed", "resent")
            }
            // Same nonce, new content: still a replay of the nonce, naming the transaction that holds it.
            let sameNonce = try h.attestation(subject: "91110000600037341L", nonce: 100)
            try await client.execute(uri: "/v1/transactions", method: .post, body: Self.body(LedgerClient.wire(sameNonce))) { r in
                assertNamesFirst(r, index: nil, words: "nonce 100 was already used by dev (replayed transaction?); transaction \(goodID) holds that nonce", "same nonce")
            }
            let fresh = try h.attestation(subject: "91110000600037341L", nonce: 101)
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": [LedgerClient.wire(fresh), LedgerClient.wire(good)]])) { r in
                assertNamesFirst(r, index: 1, words: "is already committed", "batch")
            }
            // A batch of one names its index too, whichever check refuses it (a decoding error
            // did; the ledger's checks and a held nonce did not).
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": [LedgerClient.wire(good)]])) { r in
                assertNamesFirst(r, index: 0, words: "is already committed", "batch of one, replayed")
            }
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": [Self.wire(h.raw(body, nonce: 109, key: stranger), good.envelope)]])) { r in
                XCTAssertEqual(r.status, .forbidden)
                XCTAssertEqual((Self.json(r)["error"] as? [String: Any])?["index"] as? Int, 0, String(buffer: r.body))
            }
            try await client.execute(uri: "/v1/transactions/batch", method: .post,
                                     body: Self.body(["transactions": [["transaction": "***"]]])) { r in
                XCTAssertEqual(r.status, .badRequest)
                XCTAssertEqual((Self.json(r)["error"] as? [String: Any])?["index"] as? Int, 0, String(buffer: r.body))
            }
            XCTAssertEqual(h.ledger.store.head.logSize, 1)

            for (uri, status) in [("/v1/transactions/zz", HTTPResponse.Status.badRequest),
                                  ("/v1/transactions/\(String(repeating: "ab", count: 32))", .notFound),
                                  ("/v1/blocks/0", .badRequest), ("/v1/blocks/99", .notFound),
                                  ("/v1/subjects/91350100M000100Y44/history", .badRequest),
                                  ("/v1/proofs/consistency?old=5&new=2", .badRequest),
                                  ("/v1/proofs/consistency?old=x", .badRequest),
                                  // Decimal digits alone, each parameter once, path segments percent-decoded
                                  // (found by black-box testing, 2026-12-07).
                                  ("/v1/blocks/+1", .badRequest), ("/v1/proofs/consistency?old=+1", .badRequest),
                                  ("/v1/proofs/consistency?old=1&old=2", .badRequest),
                                  ("/v1/subjects/91350100M000100Y43/history?limit=1&limit=1000", .badRequest),
                                  ("/v1/subjects/91350100M000100Y43/history?limit=+5", .badRequest),
                                  // A percent-encoded name: a second "limit" to readers that decode names.
                                  ("/v1/subjects/91350100M000100Y43/history?limit=1&lim%69t=1000", .badRequest),
                                  ("/v1/subjects/91350100M000100Y43/history?limit=1", .ok),
                                  ("/v1/blocks/%31", .ok)] {
                try await client.execute(uri: uri, method: .get) { r in
                    XCTAssertEqual(r.status, status, uri)
                    if status != .ok { XCTAssertNotNil(Self.errorCode(r), uri) }
                }
            }
            // A key given twice is read as the first here, the last by most readers: refused
            // (found by black-box testing, 2026-12-07), and nothing is written.
            let logSize = h.ledger.store.head.logSize
            let twice = try await client.execute(uri: "/v1/transactions", method: .post,
                                                 body: ByteBuffer(string: #"{"transaction": "AA==", "transaction": "AA=="}"#)) { r in r }
            XCTAssertEqual(twice.status, .badRequest)
            XCTAssertEqual(Self.errorCode(twice), "malformed")
            let said = (Self.json(twice)["error"] as? [String: Any])?["message"] as? String ?? ""
            XCTAssertTrue(said.contains("request body is not JSON every reader takes alike: \"transaction\" appears twice in one object"), said)
            XCTAssertEqual(h.ledger.store.head.logSize, logSize)
            // No such endpoint: a JSON error like any other.
            for (uri, method) in [("/v1/nope", HTTPRequest.Method.get), ("/v1/transactions/ab/nope", .get), ("/v1", .post)] {
                try await client.execute(uri: uri, method: method) { r in
                    XCTAssertEqual(r.status, .notFound, uri)
                    XCTAssertEqual(Self.errorCode(r), "notFound", uri)
                }
            }
            // HEAD of the health route answers as GET, without a body (monitors probe with it).
            try await client.execute(uri: "/v1/health", method: .head) { r in
                XCTAssertEqual(r.status, .ok)
                XCTAssertEqual(r.body.readableBytes, 0)
                XCTAssertNotEqual(r.headers[.contentLength], "0", "a HEAD response states the GET body's length, or none")
            }
            // A served path with another method: 405, naming the methods it takes, in `Allow` too.
            for (uri, method, allow) in [("/v1/transactions", HTTPRequest.Method.put, "POST"), ("/v1/health", .delete, "GET, HEAD"),
                                         ("/v1/queries", .get, "POST"), ("/v1/transactions/\(String(repeating: "ab", count: 32))", .post, "GET"),
                                         // The literal wins, as in the router: POST only, not also GET of /v1/transactions/:id.
                                         ("/v1/transactions/batch", .get, "POST"), ("/v1/transactions/batch", .put, "POST"),
                                         // No route below the literal: the router backs off to /v1/transactions/:id/receipt.
                                         ("/v1/transactions/batch/receipt", .post, "GET")] {
                try await client.execute(uri: uri, method: method) { r in
                    XCTAssertEqual(r.status, .methodNotAllowed, uri)
                    XCTAssertEqual(Self.errorCode(r), "methodNotAllowed", uri)
                    XCTAssertEqual(r.headers[.allow], allow, uri)
                    let message = (Self.json(r)["error"] as? [String: Any])?["message"] as? String ?? ""
                    XCTAssertTrue(message.contains("served with \(allow.replacingOccurrences(of: ", ", with: " and ")) only, not \(method)"), message)
                }
            }
        }
    }
}
