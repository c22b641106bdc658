import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import LedgerStorage
import LedgerStore
import Policy
import Scoring
import Synchronization
import XCTest

/// 2026-11-21 12:00 China Standard Time: the clock of the test ledger and of its query service.
let nowMillis: UInt64 = UInt64(CivilCalendar.days(year: 2026, month: 11, day: 21)) * 86_400_000 + 4 * 3_600_000
/// The clock the test ledger stamps its blocks with: `nowMillis` unless a test moves it on.
let blockClock = Atomic<UInt64>(nowMillis)

enum Files {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func read(_ relative: String) throws -> [UInt8] {
        Array(try Data(contentsOf: root.appendingPathComponent(relative)))
    }
    static func directory(_ relative: String) throws -> [(source: String, bytes: [UInt8])] {
        try PolicyFiles.read(directory: root.appendingPathComponent(relative).path)
    }
}

/// A single-validator consortium (the supervision bureau validates; the data bureau is a second
/// custodian; two banks) whose genesis installs the shipped models and policies.
struct PolicyConsortium {
    let genesis: Genesis
    let keys: [String: MemberSecretKeys]
    static let roles: [(String, Set<Role>)] = [
        ("samr", [.validator, .custodian, .governmentIssuer, .scorer]),
        ("data-bureau", [.custodian, .governmentIssuer, .scorer]),
        ("bank-a", [.bank]),
        ("bank-b", [.bank]),
    ]

    /// `extraPolicies`: documents put into the genesis as they are, unchecked, as a hand-written genesis could.
    init(roles: [(String, Set<Role>)] = Self.roles, extraPolicies: [InstalledPolicy] = []) throws {
        var keys: [String: MemberSecretKeys] = [:]
        var members: [Member] = []
        for (id, roles) in roles {
            let k = MemberSecretKeys(memberID: id, signing: try Ed25519PrivateKey(seed: SHA256.hash(Array("sign:\(id)".utf8))),
                                     encryption: try X25519PrivateKey(rawRepresentation: SHA256.hash(Array("enc:\(id)".utf8))))
            keys[id] = k
            members.append(Member(id: id, name: id, roles: roles, signingKey: k.signing.publicKey, encryptionKey: k.encryption.publicKey))
        }
        let models = try ["individual-business", "enterprise", "risk-warning"].map { name -> InstalledModel in
            let bytes = try Files.read("Genesis/models/\(name).json")
            let m = try ScoringModel(document: bytes)
            return InstalledModel(name: m.name, version: m.version, document: bytes, logIndex: nil)
        }
        let render = { (policies: [InstalledPolicy]) in
            try Genesis.render(chainID: "creditledger.test/policy", genesisTime: "2026-11-21T00:00:00Z", members: members,
                               models: models, policies: policies)
        }
        let policies = try PolicyFiles.forGenesis(try Files.directory("Genesis/policies"), members: try Genesis(bytes: try render([])))
        genesis = try Genesis(bytes: try render(policies + extraPolicies))
        self.keys = keys
    }
}

final class QueryServiceTests: XCTestCase {
    var dir: String!
    var consortium: PolicyConsortium!
    var store: ChainStore!
    var ledger: Ledger!
    var service: QueryService!
    var producer: Task<Void, Never>!
    var nonce: UInt64 = 0
    var seed: UInt64 = 7

    // Subjects.
    var food: USCC!        // consented to bank-a; scored; registration names it
    var listed: USCC!      // on the serious-violation list, two recent penalties
    var blank: USCC!       // consented to bank-a; nothing else about it on the ledger
    let foodName = "杭州示例食品有限公司"
    let foodSecret = "西市监罚〔2026〕12号 食品标签不合格"

    override func setUp() async throws {
        dir = NSTemporaryDirectory() + "policy-\(UUID().uuidString.prefix(8))"
        consortium = try PolicyConsortium()
        store = try ChainStore.create(path: dir, genesis: consortium.genesis)
        blockClock.store(nowMillis, ordering: .relaxed)
        ledger = try Ledger(store: store, validatorKeys: consortium.keys["samr"]!, clock: { blockClock.load(ordering: .relaxed) }, blockInterval: .zero)
        producer = Task { [ledger] in await ledger!.runBlockProducer() }
        service = try QueryService(ledger: ledger, clock: { nowMillis })
        food = uscc(division: "330106")
        listed = uscc(division: "330106")
        blank = uscc(division: "330106")
        try await populate()
    }

    override func tearDown() async throws {
        producer.cancel()
        _ = await producer.value
        ledger.purger.waitUntilIdle()   // an erasure's purge works in the directory
        try? FileManager.default.removeItem(atPath: dir)
    }

    func uscc(division: String) -> USCC {
        USCCGenerator.make(kind: .enterprise, division: division) { n in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
    }

    func header(_ signer: String) -> TransactionHeader {
        nonce += 1
        let m = consortium.genesis.member(signer)!
        return TransactionHeader(chainID: consortium.genesis.chainID, signer: signer, keyID: m.keyID, nonce: nonce, issuedAtMillis: nowMillis)
    }

    func attestation(_ subject: USCC, _ category: Category, _ date: String, severity: Severity = .none, industry: String = "C13",
                     payload: String, by signer: String = "samr") throws -> Submission {
        let (commitment, envelope) = try PayloadSeal.seal(Array(payload.utf8), to: consortium.genesis.custodians)
        let body = AttestationBody(subject: subject, subjectKind: .enterprise, category: category, severity: severity,
                                   eventDate: try LedgerDate(iso: date), industry: industry, payloadCommitment: commitment,
                                   envelopeHash: envelope.hash)
        return Submission(transaction: Transaction.sign(header: header(signer), body: .attestation(body), key: consortium.keys[signer]!.signing),
                          envelope: envelope)
    }

    @discardableResult
    func submit(_ s: [Submission]) async throws -> [CommitResult] { try await ledger.submit(s) }

    /// Scores every subject under the enterprise scorecard (or `model`), as the bureau's node would.
    func score(_ subjects: [USCC], model name: String = "enterprise") async throws {
        let engine = ScoreEngine(genesis: consortium.genesis)
        let model = try ScoringModel(document: store.latestModel(name: name)!.document)
        var subs: [Submission] = []
        for s in subjects {
            let (records, asOf) = try store.scoreInputs(subject: s)
            let update = try engine.makeScoreUpdate(subject: s, inputs: records.map(\.transaction), model: model,
                                                    asOf: ScoreAsOf(logSize: store.head.logSize, date: asOf))
            subs.append(Submission(transaction: Transaction.sign(header: header("samr"), body: .scoreUpdate(update),
                                                                 key: consortium.keys["samr"]!.signing), envelope: nil))
        }
        try await submit(subs)
    }

    /// `issuedAt`: when the grant is signed (now unless said; a grant that has expired by now is
    /// signed before its expiry, as validators require).
    func consent(_ subject: USCC, to bank: String, _ purpose: ConsentBody.Purpose, expiresAt: UInt64, issuedAt: UInt64? = nil) async throws -> Hash {
        let s = try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys[bank]!, subject: subject, grantee: bank,
                                        purpose: purpose, expiresAt: expiresAt, evidence: SHA256.hash(Array("form".utf8)),
                                        nonce: nextNonce(), issuedAtMillis: issuedAt ?? (expiresAt > nowMillis / 1000 ? nowMillis : expiresAt * 1000 - 60_000))
        try await submit([s])
        return s.transaction.id
    }

    /// Records bank-a's revocation of `grant`, carrying `purpose` (the grant's, unless a test says otherwise).
    func revoke(_ subject: USCC, grant: Hash, _ purpose: ConsentBody.Purpose) async throws {
        _ = try await submit([QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-a"]!, subject: subject,
                                              grantee: "bank-a", purpose: purpose, expiresAt: 0, evidence: Hashes.zero,
                                              revoking: grant, nonce: nextNonce(), issuedAtMillis: nowMillis)])
    }

    func nextNonce() -> UInt64 { nonce += 1; return nonce }

    /// The audit record of bank-a's credit-grade query about `food`, answered under a grant for
    /// `purpose` recorded first (the record names it).
    func answeredAuditRecord(_ purpose: ConsentBody.Purpose, expiresAt: UInt64) async throws -> QueryRecordBody {
        let grant = try await consent(food, to: "bank-a", purpose, expiresAt: expiresAt)
        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: purpose.name)
        XCTAssertTrue(out.answered, out.receipt.message)
        let audit = try XCTUnwrap(out.receipt.facts.first { $0.role == "audit_record" })
        guard case .queryRecord(let record) = try Transaction.decode(try XCTUnwrap([UInt8](base64: audit.transaction)), maxBytes: 1 << 20).body else {
            throw LedgerError(.invalidValue, "the audit record is not a query record")
        }
        XCTAssertEqual(record.consent, grant)
        return record
    }

    func populate() async throws {
        var subs = [
            try attestation(food, .registration, "2019-05-01", payload: "{\"name\":\"\(foodName)\",\"capital_yuan\":500000}"),
            try attestation(food, .license, "2020-01-10", payload: "{\"license\":\"SC11233010600123\"}"),
            try attestation(food, .penalty, "2026-03-14", severity: .minor, payload: "{\"decision\":\"\(foodSecret)\"}"),
            try attestation(listed, .registration, "2018-02-02", payload: "{\"name\":\"示例贸易有限公司\"}"),
            try attestation(listed, .seriousViolationList, "2026-06-01", payload: "{\"reason\":\"虚假登记\"}"),
            try attestation(listed, .penalty, "2026-02-01", severity: .general, payload: "{\"decision\":\"罚1\"}"),
            try attestation(listed, .penalty, "2025-09-01", severity: .serious, payload: "{\"decision\":\"罚2\"}"),
            try attestation(listed, .penalty, "2023-01-01", severity: .minor, payload: "{\"decision\":\"old, outside 24 months\"}"),
        ]
        // Ten more food manufacturers (so the C13 cell can be answered) and three in I65 (too few).
        var others: [USCC] = []
        for i in 0..<13 {
            let s = uscc(division: "330106")
            others.append(s)
            subs.append(try attestation(s, .registration, "2020-0\(1 + i % 9)-01", industry: i < 10 ? "C13" : "I65", payload: "{\"name\":\"企业\(i)\"}"))
        }
        try await submit(subs)
        try await score([food, listed] + others)
        let month: UInt64 = 30 * 86_400
        _ = try await consent(food, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + month)
        _ = try await consent(food, to: "bank-b", .postLoanMonitoring, expiresAt: nowMillis / 1000 - 86_400)
        _ = try await consent(listed, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        let grant = try await consent(listed, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + month)
        try await revoke(listed, grant: grant, .loanApplication)
        // A credit-blank business that consented: nothing else about it is on the ledger.
        _ = try await consent(blank, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + month)
    }

    func policy(_ name: String) -> Hash { store.latestPolicy(name: name)!.hash }

    func ask(_ member: String, _ policyName: String, subject: String, purpose: String, params: [(name: String, value: String)] = [],
             at: UInt64 = nowMillis, signWith: String? = nil) async throws -> (bytes: [UInt8], outcome: QueryService.Outcome) {
        let bytes = signedRequest(member, policyName, subject: subject, purpose: purpose, params: params, at: at,
                                  key: consortium.keys[signWith ?? member]!.signing)
        return (bytes, try await service.handle(bytes))
    }

    /// A request from `member` (a genesis member or not), signed with `key`, with a fresh nonce.
    func signedRequest(_ member: String, _ policyName: String, subject: String, purpose: String = "loan_application",
                       params: [(name: String, value: String)] = [], at: UInt64, key: Ed25519PrivateKey) -> [UInt8] {
        var r = QueryRequest(chainID: consortium.genesis.chainID, requester: member, keyID: consortium.genesis.member(member)?.keyID ?? 1,
                             policy: policy(policyName), subject: subject, purpose: purpose, parameters: params,
                             nonce: nextNonce(), issuedAtMillis: at)
        r.sign(with: key)
        return r.encoded
    }

    /// A score update fact is one the answer used: a refusal uses none, nor does an answer that
    /// states nothing from a score (risk flags, the query log). Either verified, the update
    /// listed among the facts proven (found by black-box testing, 2026-12-07).
    func testAScoreUpdateFactIsOneTheAnswerUsed() async throws {
        let (_, graded) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        let scoreFact = try XCTUnwrap(graded.receipt.facts.first { $0.role == "score_update" })
        func withScore(_ receipt: AnswerReceipt) throws -> AnswerReceipt {
            var r = receipt
            var f = scoreFact
            f.inclusion_proof = try store.inclusionProof(index: f.log_index, size: r.tree_size).map { $0.base64String }
            r.facts.append(f)
            return r
        }
        let (_, flags) = try await ask("bank-a", "risk-flags", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(flags.answered, flags.receipt.message)
        XCTAssertNoThrow(try flags.receipt.verify(genesis: consortium.genesis))
        XCTAssertThrowsError(try withScore(flags.receipt).verify(genesis: consortium.genesis)) {
            XCTAssertTrue("\($0)".contains("risk-flags states nothing from a score update, yet the receipt holds one"), "\($0)")
        }
        let (_, refused) = try await ask("bank-b", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertFalse(refused.answered)
        XCTAssertNoThrow(try refused.receipt.verify(genesis: consortium.genesis))
        XCTAssertThrowsError(try withScore(refused.receipt).verify(genesis: consortium.genesis)) {
            XCTAssertTrue("\($0)".contains("the receipt of a refusal holds a score update fact"), "\($0)")
        }
    }

    /// A record saying a member asked is taken only from that member's own node or a
    /// custodian's: a bank's validator recorded refusals of another bank's queries that bank
    /// never sent, spending its nonces and crowding its genuine queries out of the subject's
    /// confirmed log (found by black-box testing, 2026-12-07).
    func testOnlyTheRequestersOwnNodeOrACustodiansRecordsItsQuery() async throws {
        // bank-a validates here (alone: a dev ledger runs one validator), as banks do on the shipped network.
        let mixed = try PolicyConsortium(roles: PolicyConsortium.roles.map { id, roles in
            (id, id == "bank-a" ? roles.union([.validator]) : roles.subtracting([.validator]))
        })
        let path = dir + "-mixed"
        let mixedStore = try ChainStore.create(path: path, genesis: mixed.genesis)
        let bankLedger = try Ledger(store: mixedStore, validatorKeys: mixed.keys["bank-a"]!, clock: { nowMillis }, blockInterval: .zero)
        let bankProducer = Task { await bankLedger.runBlockProducer() }
        defer { bankProducer.cancel(); try? FileManager.default.removeItem(atPath: path) }

        let validator = TransactionValidator.standard(genesis: mixed.genesis)
        func record(by node: String, requester: String, reason: String) -> Transaction {
            let body = QueryRecordBody(requester: requester, subject: food, policy: policy("credit-grade"), purpose: .loanApplication,
                                       requestHash: SHA256.hash(Array("never sent \(nextNonce())".utf8)), requestNonce: 4_242,
                                       requestedAtMillis: nowMillis, asOfHeight: 0, outcome: .refused, reason: reason,
                                       resultHash: Hashes.zero, consent: Hashes.zero)
            return Transaction.sign(header: header(node), body: .queryRecord(body), key: mixed.keys[node]!.signing)
        }
        let forged = record(by: "bank-a", requester: "bank-b", reason: "no_consent")
        XCTAssertNoThrow(try validator.checkStateless(Submission(transaction: forged, envelope: nil)))
        XCTAssertThrowsError(try validator.checkStateful(forged, state: mixedStore)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .notAuthorized)
            XCTAssertTrue("\(error)".contains("bank-a may not record that bank-b asked: a query that a member is shown to ask is answered and "
                                              + "recorded by that member's own node or a custodian's (samr, data-bureau)"), "\(error)")
        }
        XCTAssertThrowsError(try validator.checkStateful(forged, state: mixedStore, forMempool: true))
        XCTAssertNoThrow(try validator.checkStateful(forged, state: mixedStore, certified: true), "blocks certified before the rule keep theirs")
        // Its own query, a custodian's record of anyone's, and any validator's record of a
        // request that only claims its requester (which spends no nonce) are taken.
        XCTAssertNoThrow(try validator.checkStateful(record(by: "bank-b", requester: "bank-b", reason: "no_consent"), state: mixedStore))
        XCTAssertNoThrow(try validator.checkStateful(record(by: "samr", requester: "bank-b", reason: "no_consent"), state: mixedStore))
        XCTAssertNoThrow(try validator.checkStateful(record(by: "bank-a", requester: "bank-b", reason: "bad_signature"), state: mixedStore))

        // bank-a's node turns bank-b's request away unrecorded, saying where to send it; a
        // request under bank-b's name that does not verify is still recorded, as a claim.
        let bankNode = try QueryService(ledger: bankLedger, clock: { nowMillis })
        let genuine = signedRequest("bank-b", "credit-grade", subject: food.code, at: nowMillis, key: mixed.keys["bank-b"]!.signing)
        do {
            let out = try await bankNode.handle(genuine)
            XCTFail("bank-a's node recorded bank-b's query: \(out.receipt.outcome) \(out.receipt.reason)")
        } catch let e as LedgerError {
            XCTAssertEqual(e.code, .notAuthorized)
            XCTAssertTrue(e.reason.contains("bank-a's node answers its own queries only; send bank-b's queries to its own node or to a custodian's (samr, data-bureau)"), e.reason)
        }
        XCTAssertEqual(mixedStore.head.logSize, 0, "nothing recorded")
        let claimed = signedRequest("bank-b", "credit-grade", subject: food.code, at: nowMillis, key: mixed.keys["bank-a"]!.signing)
        let out = try await bankNode.handle(claimed)
        XCTAssertEqual(out.receipt.reason, "bad_signature")
        XCTAssertEqual(mixedStore.head.logSize, 1)
    }

    /// Sends a request that must be turned away past a refusal budget: `rateLimited`, with when
    /// to retry, and nothing written. Returns the error's text.
    func turnedAway(_ limited: QueryService, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        let size = store.head.logSize
        defer { XCTAssertEqual(store.head.logSize, size, "a turned-away request writes nothing", file: file, line: line) }
        do {
            let out = try await limited.handle(bytes)
            XCTFail("recorded as \(out.receipt.outcome) \(out.receipt.reason) over the budget", file: file, line: line)
            return ""
        } catch let e as LedgerError {
            XCTAssertEqual(e.code, .rateLimited, file: file, line: line)
            XCTAssertTrue(e.reason.contains("retry in"), e.reason, file: file, line: line)
            return e.reason
        }
    }

    func fields(_ receipt: AnswerReceipt) throws -> [String: Any] {
        let obj = try JSONSerialization.jsonObject(with: Data(receipt.result.utf8)) as! [String: Any]
        return obj["fields"] as! [String: Any]
    }

    /// The receipt verifies offline and its audit record is committed with the given outcome.
    func assertRecorded(_ receipt: AnswerReceipt, _ reason: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let v = try receipt.verify(genesis: consortium.genesis)
        XCTAssertEqual(v.record.reason, reason, file: file, line: line)
        XCTAssertEqual(receipt.reason, reason, file: file, line: line)
        XCTAssertNotNil(try store.location(of: v.auditRecordID), "audit record is on the ledger", file: file, line: line)
        if reason.isEmpty { XCTAssertEqual(v.record.outcome, .answered, file: file, line: line) }
        else { XCTAssertEqual(v.record.outcome, .refused, file: file, line: line); XCTAssertFalse(receipt.message.isEmpty) }
    }

    /// Writes `submissions` in a block of their own, certified by the validator alone, past the
    /// validators' checks: what a colluding quorum could put on the ledger.
    func appendPastValidators(_ submissions: [Submission]) throws {
        try store.appendBlock(submissions, timestampMillis: nowMillis, proposer: "samr",
                              signers: [(member: consortium.genesis.member("samr")!, key: consortium.keys["samr"]!.signing)])
    }

    /// What a dishonest answering node could write, with a quorum colluding: an audit record
    /// changed by `change` (for `request`, when given), signed and written in a block of its own
    /// past the validators' checks (which refuse some of these records), with the other facts
    /// proved again under the new checkpoint and the answer signed again.
    func forge(_ receipt: AnswerReceipt, request: [UInt8]? = nil, result: String? = nil, dropping roles: Set<String> = [],
               _ change: (inout QueryRecordBody) -> Void) async throws -> AnswerReceipt {
        let v = try receipt.verify(genesis: consortium.genesis)
        var record = v.record
        // Each forgery records a request of its own: validators refuse a second record of one request.
        let requestBytes: [UInt8]
        if let request { requestBytes = request } else {
            var fresh = try QueryRequest.decode([UInt8](base64: receipt.request)!)
            fresh.nonce = nextNonce()
            fresh.sign(with: consortium.keys[fresh.requester]!.signing)
            requestBytes = fresh.encoded
        }
        let r = try QueryRequest.decode(requestBytes)
        record.requestHash = SHA256.hash(requestBytes); record.requestNonce = r.nonce; record.requestedAtMillis = r.issuedAtMillis
        let salt = receipt.result_salt.flatMap { [UInt8](hex: $0) }
        if let result { record.resultHash = AnswerReceipt.resultHash(result, salt: salt) }
        change(&record)
        let key = consortium.keys["samr"]!.signing
        let tx = Transaction.sign(header: header("samr"), body: .queryRecord(record), key: key)
        let logIndex = store.head.logSize
        try appendPastValidators([Submission(transaction: tx, envelope: nil)])
        let head = store.head
        var facts = [AnswerReceipt.Fact(role: "audit_record", transaction: tx.encoded.base64String, log_index: logIndex,
                                        inclusion_proof: try store.inclusionProof(index: logIndex, size: head.logSize).map { $0.base64String })]
        for f in receipt.facts where f.role != "audit_record" && !roles.contains(f.role) {
            facts.append(AnswerReceipt.Fact(role: f.role, transaction: f.transaction, log_index: f.log_index,
                                            inclusion_proof: try store.inclusionProof(index: f.log_index, size: head.logSize).map { $0.base64String }))
        }
        let signature = key.signature(for: AnswerSignature.message(chainID: consortium.genesis.chainID, requestHash: record.requestHash,
                                                                    resultHash: record.resultHash, asOfHeight: record.asOfHeight, auditRecord: tx.id))
        return AnswerReceipt(chainID: consortium.genesis.chainID, genesisHash: consortium.genesis.hash, request: requestBytes,
                             outcome: receipt.outcome, reason: receipt.reason, message: receipt.message, result: result ?? receipt.result,
                             resultSalt: salt, asOfHeight: record.asOfHeight, answeredBy: "samr", answerSignature: signature,
                             checkpoint: try store.checkpoint(height: head.height)!, treeSize: head.logSize, facts: facts)
    }

    func assertRefused(_ receipt: AnswerReceipt, _ words: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try receipt.verify(genesis: consortium.genesis), words, file: file, line: line) {
            XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
        }
    }

    /// An answer receipt whose audit record does not record its request (subject, purpose,
    /// requester, chain), relies on a consent for another purpose or on none under a consent
    /// policy, or carries facts that are not about the subject, fails offline.
    func testForgedAnswerReceiptsAreRefused() async throws {
        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        let honest = out.receipt
        XCTAssertNoThrow(try honest.verify(genesis: consortium.genesis))
        // The forging helper itself yields a receipt that verifies when nothing is changed.
        let unchanged = try await forge(honest) { _ in }
        XCTAssertNoThrow(try unchanged.verify(genesis: consortium.genesis))

        assertRefused(try await forge(honest, dropping: ["consent"]) { $0.subject = self.listed; $0.consent = Hashes.zero },
                      "the audit record is about subject")
        assertRefused(try await forge(honest) { $0.purpose = .supervision }, "states purpose")
        assertRefused(try await forge(honest, dropping: ["consent"]) { $0.requester = "unknown"; $0.consent = Hashes.zero },
                      "names requester unknown")

        // A request for post-loan monitoring answered with the loan-application consent.
        let monitoring = signedRequest("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring", at: nowMillis,
                                       key: consortium.keys["bank-a"]!.signing)
        // (The result, which states the purpose it answered for, gives it away first.)
        assertRefused(try await forge(honest, request: monitoring) { $0.purpose = .postLoanMonitoring },
                      "the result's purpose is not the audit record's")
        // The consent policy answered with no consent at all.
        assertRefused(try await forge(honest, dropping: ["consent"]) { $0.consent = Hashes.zero }, "requires the subject's consent")
        // A request for another chain, recorded as answered.
        var other = QueryRequest(chainID: "creditledger.test/other", requester: "bank-a", keyID: consortium.genesis.member("bank-a")!.keyID,
                                 policy: policy("credit-grade"), subject: food.code, purpose: "loan_application", parameters: [],
                                 nonce: nextNonce(), issuedAtMillis: nowMillis)
        other.sign(with: consortium.keys["bank-a"]!.signing)
        assertRefused(try await forge(honest, request: other.encoded) { _ in }, "the request is for chain creditledger.test/other")

        // The score fact removed, or given twice: the stated grade is not backed by one proven update.
        var unscored = honest
        unscored.facts.removeAll { $0.role == "score_update" }
        assertRefused(unscored, "credit-grade answers from a score update, and the receipt holds none")
        var doubled = honest
        doubled.facts.append(try XCTUnwrap(honest.facts.first { $0.role == "score_update" }))
        assertRefused(doubled, "repeats transaction")

        // Facts with a role the format does not know, or a record about another subject.
        var bogus = honest
        let i = try XCTUnwrap(bogus.facts.firstIndex { $0.role == "score_update" })
        bogus.facts[i].role = "bogus"
        assertRefused(bogus, "unknown role")
        let index = try XCTUnwrap((0..<8).first { try store.transaction(at: UInt64($0))?.body.subject == listed })
        var foreign = honest
        foreign.facts.append(AnswerReceipt.Fact(role: "record", transaction: try store.transaction(at: UInt64(index))!.encoded.base64String,
                                                log_index: UInt64(index),
                                                inclusion_proof: try store.inclusionProof(index: UInt64(index), size: honest.tree_size).map { $0.base64String }))
        assertRefused(foreign, "about the queried subject before the audit record")

        // A fact labelled consent or policy is the consent, or the install of the policy, that the
        // audit record names: not any committed transaction under that label (found in review,
        // 2026-12-06: the verifier printed such a transaction as the answer's consent).
        func fact(_ role: String, at index: UInt64) throws -> AnswerReceipt.Fact {
            AnswerReceipt.Fact(role: role, transaction: try store.transaction(at: index)!.encoded.base64String, log_index: index,
                               inclusion_proof: try store.inclusionProof(index: index, size: honest.tree_size).map { $0.base64String })
        }
        let otherGrant = try XCTUnwrap((0..<honest.tree_size).first { i in
            if case .consent(let c)? = try store.transaction(at: i)?.body { return c.grantee == "bank-b" }
            return false
        })
        var dressed = honest
        dressed.facts.append(try fact("consent", at: otherGrant))
        assertRefused(dressed, "is labelled consent but is not the consent the audit record names")
        var asPolicy = honest
        asPolicy.facts.append(try fact("policy", at: UInt64(index)))
        assertRefused(asPolicy, "is labelled policy but is not the install of the policy the audit record names")
        var twice = honest
        twice.facts.append(try XCTUnwrap(honest.facts.first { $0.role == "consent" }))
        assertRefused(twice, "repeats its consent or policy fact")
        // A record fact is an attestation or a correction about the subject, each given once.
        // Found by black-box testing: the answer's own consent labelled "record" verified (and was
        // shown as a record), as did a record fact repeated 20 times.
        var consentAsRecord = honest
        var relabelled = try XCTUnwrap(honest.facts.first { $0.role == "consent" })
        relabelled.role = "record"
        consentAsRecord.facts.append(relabelled)
        assertRefused(consentAsRecord, "repeats transaction")
        let anotherConsent = try XCTUnwrap((0..<honest.tree_size).first { i in
            guard let tx = try store.transaction(at: i), case .consent = tx.body else { return false }
            return tx.body.subject == food && tx.encoded.base64String != relabelled.transaction
        }, "no second consent about the subject")
        consentAsRecord = honest
        consentAsRecord.facts.append(try fact("record", at: anotherConsent))
        assertRefused(consentAsRecord, "is not a record (an attestation or a correction) about the queried subject")
        let own = try XCTUnwrap((0..<8).first { try store.transaction(at: UInt64($0))?.body.subject == food })
        var repeated = honest
        for _ in 0..<2 { repeated.facts.append(try fact("record", at: UInt64(own))) }
        assertRefused(repeated, "repeats transaction")
        // A record about the subject that the answer did not use (credit-grade states no flag or
        // listing): it verified, listed among the facts proven (found by black-box testing).
        var unused = honest
        unused.facts.append(try fact("record", at: UInt64(own)))
        assertRefused(unused, "is not one the answer used: credit-grade's answer states no flag or listing of that category")

        // The audit record holds a salted hash of the result: replicas cannot test guesses of an
        // answer against it (a grade, a band, a custodian's decrypted payloads). The salt is the
        // receipt's, fresh for each answer; without it, or with another, the result does not verify.
        let salt = try XCTUnwrap(honest.result_salt.flatMap { [UInt8](hex: $0) })
        XCTAssertEqual(salt.count, 32)
        let audited = try XCTUnwrap(try honest.verify(genesis: consortium.genesis).record)
        XCTAssertEqual(audited.resultHash, SHA256.hash(Array("CreditLedger/v1/answer-result\n".utf8) + salt + Array(honest.result.utf8)))
        XCTAssertNotEqual(audited.resultHash, SHA256.hash(Array(honest.result.utf8)))
        let (_, again) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertNotEqual(again.receipt.result_salt, honest.result_salt, "each answer has a salt of its own")
        var unsalted = honest
        unsalted.result_salt = nil
        assertRefused(unsalted, "the result does not hash to the audit record's result hash")
        var resalted = honest
        resalted.result_salt = again.receipt.result_salt
        assertRefused(resalted, "the result does not hash to the audit record's result hash")
        var shortSalt = honest
        shortSalt.result_salt = "00ff"
        assertRefused(shortSalt, "result_salt must be 32 bytes of hex")
        // A receipt written before salting (2026-12-06): the plain SHA-256 of the result still verifies.
        let legacy = try await forge(honest, result: honest.result) { $0.resultHash = SHA256.hash(Array(honest.result.utf8)) }
        var legacyReceipt = legacy
        legacyReceipt.result_salt = nil
        XCTAssertNoThrow(try legacyReceipt.verify(genesis: consortium.genesis))

        // The result itself is bound to the audit record and the policy (found in review,
        // 2026-12-06): another subject's code, or an output left out or added, does not verify.
        func rewritten(_ text: String, _ from: String, _ to: String) throws -> String {
            XCTAssertTrue(text.contains(from), "\(from) is not in \(text)")
            return text.replacingOccurrences(of: from, with: to)
        }
        assertRefused(try await forge(honest, result: try rewritten(honest.result, "\"subject\":\"\(food.code)\"", "\"subject\":\"\(listed.code)\"")) { _ in },
                      "the result's subject is not the audit record's")
        assertRefused(try await forge(honest, result: try rewritten(honest.result, "\"as_of_height\":\(honest.as_of_height),\"consent\"",
                                                                    "\"as_of_height\":\(honest.as_of_height - 1),\"consent\"")) { _ in },
                      "the result's as_of_height is not the audit record's")
        assertRefused(try await forge(honest, result: try rewritten(honest.result, "\"fields\":{", "\"fields\":{\"aaa\":1,")) { _ in },
                      "are not credit-grade's outputs")

        // A loan pre-check's decision follows from its reasons and the requested amount.
        let (_, pre) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application",
                                     params: [(name: "amount_yuan", value: "100000000")])
        XCTAssertTrue(pre.answered, pre.receipt.message)
        XCTAssertNoThrow(try pre.receipt.verify(genesis: consortium.genesis))
        // An amount written any other way than plain digits is refused (found by black-box testing).
        for loose in ["+5", "007", " 5", "5 ", "-0"] {
            let (_, refused) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application",
                                             params: [(name: "amount_yuan", value: loose)])
            XCTAssertEqual(refused.receipt.reason, "invalid_parameters", loose)
            XCTAssertTrue(refused.receipt.message.contains("in plain decimal digits"), refused.receipt.message)
        }
        // A long value is quoted cut short, and says so.
        let long = "1234567890abcdefghijklmnopqrstuvwxyz"
        let (_, clipped) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application", params: [(name: "amount_yuan", value: long)])
        XCTAssertTrue(clipped.receipt.message.hasSuffix("got \"\(long.prefix(32))…\""), clipped.receipt.message)
        let decision = try XCTUnwrap(pre.receipt.result.firstMatch(of: /"eligible":false,"reason_codes":\[[^\]]+\]/)?.0, pre.receipt.result)
        assertRefused(try await forge(pre.receipt, result: try rewritten(pre.receipt.result, String(decision),
                                                                         String(decision).replacingOccurrences(of: "\"eligible\":false", with: "\"eligible\":true"))) { _ in },
                      "says eligible true with a reason")
        assertRefused(try await forge(pre.receipt, result: try rewritten(pre.receipt.result, String(decision), #""eligible":true,"reason_codes":[]"#)) { _ in },
                      "the answer's decision")
    }

    /// A refusal receipt says who asked, so it must show the request signed unless its reason is
    /// that the signature, the requester or the chain was wrong; and its policy must be the one
    /// the request names. An answering node cannot record a bank asking when it never did.
    func testForgedRefusalReceiptsAreRefused() async throws {
        let (_, out) = try await ask("bank-b", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertEqual(out.receipt.reason, "no_consent", out.receipt.message)
        let honest = out.receipt
        XCTAssertEqual(try honest.verify(genesis: consortium.genesis).record.requester, "bank-b")
        // A request in bank-a's name that bank-a never signed (anyone can write one), recorded
        // as refused for lack of consent: the node checks the signature before consent.
        let unsigned = signedRequest("bank-a", "credit-grade", subject: food.code, at: nowMillis, key: Ed25519PrivateKey())
        assertRefused(try await forge(honest, request: unsigned) { $0.requester = "bank-a" },
                      "the request is not signed by bank-a, and a refusal for no_consent is recorded only for a signed request")
        // The same unsigned request, honestly refused for its bad signature, verifies.
        let forgedSignature = try await service.handle(unsigned)
        XCTAssertEqual(forgedSignature.receipt.reason, "bad_signature")
        XCTAssertEqual(try forgedSignature.receipt.verify(genesis: consortium.genesis).record.requester, "bank-a")
        // A refusal recorded under a policy the request did not name.
        assertRefused(try await forge(honest) { $0.policy = self.policy("risk-flags") }, "the request names another policy than the audit record")
        // None at all is what a node records when it refuses before finding the policy.
        let unnamed = try await forge(honest) { $0.policy = Hashes.zero }
        XCTAssertNoThrow(try unnamed.verify(genesis: consortium.genesis))
    }

    /// An answer's result must be the engine's canonical text: a credit line with a fraction
    /// (which a lenient reading truncates to the right figure), a repeated key (which another
    /// parser may read the other way) or added spaces do not verify, even signed and recorded.
    func testAnswerResultsMustBeInCanonicalForm() async throws {
        let (_, pre) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(pre.answered, pre.receipt.message)
        let result = pre.receipt.result
        let line = try XCTUnwrap((try fields(pre.receipt)["decision"] as? [String: Any])?["credit_line_yuan"] as? Int)
        let stated = "\"credit_line_yuan\":\(line)"
        XCTAssertTrue(result.contains(stated), result)
        let same = try await forge(pre.receipt, result: result) { _ in }
        XCTAssertNoThrow(try same.verify(genesis: consortium.genesis))
        for (what, text) in [("a fraction", result.replacingOccurrences(of: stated, with: stated + ".9")),
                             ("a boolean", result.replacingOccurrences(of: stated, with: "\"credit_line_yuan\":" + (line == 0 ? "false" : "true"))),
                             ("a repeated key", result.replacingOccurrences(of: stated, with: stated + ",\"credit_line_yuan\":500000")),
                             ("a space", result.replacingOccurrences(of: stated, with: "\"credit_line_yuan\": \(line)"))] {
            XCTAssertNotEqual(text, result, what)
            let forged = try await forge(pre.receipt, result: text) { _ in }
            XCTAssertThrowsError(try forged.verify(genesis: consortium.genesis), what) {
                XCTAssertTrue("\($0)".contains("canonical form") || "\($0)".contains("credit line"), "\(what): \($0)")
            }
        }
    }

    // MARK: Answers

    func testCreditGradeAnswerIsDesensitizedAndVerifiable() async throws {
        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        try assertRecorded(out.receipt, "")
        let f = try fields(out.receipt)
        XCTAssertEqual(f["name"] as? String, "杭**公司")
        let latest = try store.scoreUpdates(of: food, limit: 1)[0]
        guard case .scoreUpdate(let s) = latest.transaction.body else { return XCTFail() }
        XCTAssertEqual(f["grade"] as? String, s.grade.name)
        let low = Int(s.points) / 50 * 50
        XCTAssertEqual(f["score_band"] as? String, "\(low)-\(low + 49)")
        XCTAssertEqual((f["model"] as? [String: Any])?["name"] as? String, "enterprise")
        XCTAssertFalse(out.receipt.result.contains(foodName), "the full name never leaves")
        XCTAssertFalse(out.receipt.result.contains("\"points\""), "exact points are not returned")
        let roles = Set(out.receipt.facts.map(\.role))
        XCTAssertEqual(roles, ["audit_record", "consent", "score_update"])

        // The JSON the API sends (written directly, not by JSONEncoder) reads back to the same
        // receipt, also with characters that need escaping.
        XCTAssertEqual(try JSONDecoder().decode(AnswerReceipt.self, from: Data(out.receipt.json())), out.receipt)
        var odd = out.receipt
        odd.message = "quote \" backslash \\ slash / newline \n tab \t bell \u{07} 杭州 \u{1F600}"
        XCTAssertEqual(try JSONDecoder().decode(AnswerReceipt.self, from: Data(odd.json())), odd)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(odd.json())) as? [String: Any])

        // Tampering with the result, the signature or a proof is caught offline.
        var tampered = out.receipt
        tampered.result = tampered.result.replacingOccurrences(of: "\"grade\":\"\(s.grade.name)\"", with: "\"grade\":\"S\"")
        if s.grade != .s { XCTAssertThrowsError(try tampered.verify(genesis: consortium.genesis)) }
        tampered = out.receipt
        tampered.as_of_height += 1
        XCTAssertThrowsError(try tampered.verify(genesis: consortium.genesis))
        tampered = out.receipt
        tampered.facts[0].inclusion_proof = tampered.facts[0].inclusion_proof.reversed()
        if tampered.facts[0].inclusion_proof.count > 1 { XCTAssertThrowsError(try tampered.verify(genesis: consortium.genesis)) }
    }

    /// A request's signing time goes into its audit record and the subject's query log, where it
    /// is a JSON integer. Found in review (2026-12-06): a request signed "at" 2⁶⁴ − 1 ms was
    /// recorded (refused for its time, or as forged) and every later query-log answer about that
    /// subject trapped converting it, on every node. Past 9999 the bytes are not a request.
    func testARequestSignedAfterTheYear9999IsNotRecordedAndTheQueryLogStillAnswers() async throws {
        let before = store.head.logSize
        for at in [UInt64.max, QueryRequest.latestIssuedAtMillis + 1] {
            for key in [consortium.keys["bank-a"]!.signing, consortium.keys["bank-b"]!.signing] {   // signed, and forged
                let bytes = signedRequest("bank-a", "credit-grade", subject: food.code, at: at, key: key)
                do {
                    _ = try await service.handle(bytes)
                    XCTFail("a request signed at \(at) ms was handled")
                } catch { XCTAssertTrue("\(error)".contains("after the year 9999"), "\(error)") }
            }
        }
        XCTAssertEqual(store.head.logSize, before, "nothing was recorded")
        // The latest time allowed is refused as stale and recorded; the query log shows it.
        let (_, stale) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application", at: QueryRequest.latestIssuedAtMillis)
        XCTAssertEqual(stale.receipt.reason, "outside_time_window")
        // Said to the millisecond: one just outside the window read "signed 300 s …; the window is ±300 s".
        let (_, justOutside) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application", at: nowMillis + 300_001)
        XCTAssertTrue(justOutside.receipt.message.contains("signed 300001 ms ahead of this node's clock; the window is ±300 s (300000 ms)"), justOutside.receipt.message)
        let (_, log) = try await ask("samr", "my-queries", subject: food.code, purpose: "subject_access")
        XCTAssertTrue(log.answered, log.receipt.message)
        XCTAssertTrue(log.receipt.result.contains("\"requested_at_ms\":\(QueryRequest.latestIssuedAtMillis)"), log.receipt.result)
        // Nor may a node record a later time: validators refuse the record.
        guard case .queryRecord(var record) = try Transaction.decode(try XCTUnwrap([UInt8](base64: stale.receipt.facts[0].transaction)), maxBytes: 1 << 20).body else {
            return XCTFail("the first fact is not the audit record")
        }
        record.requestedAtMillis = .max
        record.requestNonce += 1
        XCTAssertThrowsError(try record.check()) { XCTAssertTrue("\($0)".contains("after the year 9999"), "\($0)") }
    }

    /// Policies read a subject's records with amendments applied as scoring applies them
    /// (docs/SCORING.md §3.2). Found in review (2026-12-06): risk flags counted a correction made
    /// after its record was revoked, both of two corrections of one record, and a correction
    /// whose original was revoked afterwards.
    func testPoliciesApplyAmendmentsAsScoringDoes() async throws {
        func amendment(of target: Hash, replacement: Submission?) -> Submission {
            var body: AttestationBody? = nil
            if case .attestation(let b)? = replacement?.transaction.body { body = b }
            let a = AmendmentBody(action: body == nil ? .revocation : .correction, target: target, reason: "test", replacement: body)
            return Submission(transaction: Transaction.sign(header: header("samr"), body: .amendment(a), key: consortium.keys["samr"]!.signing),
                              envelope: replacement?.envelope)
        }
        func penalty(_ s: USCC, _ date: String) throws -> Submission {
            try attestation(s, .penalty, date, severity: .general, payload: "{\"decision\":\"\(date)\"}")
        }
        /// A new subject with one penalty dated `original`, then amendments of that original in
        /// turn: a correction dated so, or a revocation (nil).
        func subject(penalty original: String, amended amendments: [String?], thenRefused refused: [String?] = []) async throws -> USCC {
            let s = uscc(division: "330106")
            let first = try penalty(s, original)
            try await submit([first])
            for date in amendments {
                try await submit([amendment(of: first.transaction.id, replacement: try date.map { try penalty(s, $0) })])
            }
            // A revoked record takes no more amendments: they would change nothing (a chain
            // certified before the rule may hold such a correction: SubjectFacts ignores it,
            // `FactsTests.testCorrectionsReplaceAndRevocationsRemove`).
            for date in refused {
                do {
                    try await submit([amendment(of: first.transaction.id, replacement: try date.map { try penalty(s, $0) })])
                    XCTFail("an amendment of a revoked record was taken")
                } catch {
                    XCTAssertTrue("\(error)".contains("record \(first.transaction.id.hexString) was revoked (by "), "\(error)")
                    XCTAssertTrue("\(error)".contains("changes nothing; attest the record again instead"), "\(error)")
                }
            }
            return s
        }
        // A revoked correction ends the record as well: its original takes no further amendment
        // (the rule walks from a version to its original).
        let chained = uscc(division: "330106")
        let original = try penalty(chained, "2026-04-05")
        try await submit([original])
        let corrected = amendment(of: original.transaction.id, replacement: try penalty(chained, "2026-04-06"))
        try await submit([corrected])
        let revocation = amendment(of: corrected.transaction.id, replacement: nil)
        try await submit([revocation])
        do {
            try await submit([amendment(of: original.transaction.id, replacement: try penalty(chained, "2026-04-07"))])
            XCTFail("an amendment of a record whose correction was revoked was taken")
        } catch {
            XCTAssertTrue("\(error)".contains("record \(original.transaction.id.hexString) was revoked (by \(revocation.transaction.id.hexString))"), "\(error)")
        }
        let expected: [(USCC, String)] = [
            (chained, "0"),
            // Revoked, then a correction and a second revocation are refused.
            (try await subject(penalty: "2026-01-05", amended: [nil], thenRefused: ["2026-01-06", nil]), "0"),
            // Corrected twice: one record.
            (try await subject(penalty: "2026-02-05", amended: ["2026-02-06", "2026-02-07"]), "1"),
            // Corrected, then the original revoked: the record is gone, and a further correction
            // of it is refused.
            (try await subject(penalty: "2026-03-05", amended: ["2026-03-06", nil], thenRefused: ["2026-03-07"]), "0"),
        ]

        for (subject, bucket) in expected {
            _ = try await consent(subject, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + 30 * 86_400)
            let (_, out) = try await ask("bank-a", "risk-flags", subject: subject.code, purpose: "loan_application")
            XCTAssertTrue(out.answered, out.receipt.message)
            XCTAssertEqual(try fields(out.receipt)["penalties_24_months"] as? String, bucket, "\(subject)")
            // The score counts the same records.
            let (records, asOf) = try store.scoreInputs(subject: subject)
            let facts = try SubjectFacts(subject: subject, inputs: records.map(\.transaction), asOfDate: asOf)
            XCTAssertEqual(facts.facts.count, Int(bucket), "\(subject)")
        }
    }

    /// The engine and a query for `policy` by `member` about `subject`, evaluated directly.
    func evaluate(_ policy: String, by member: String = "bank-a", about subject: USCC, _ purpose: QueryPurpose = .loanApplication,
                  facts: some PolicyFacts) throws -> PolicyAnswer {
        let document = try PolicyDocument(bytes: store.latestPolicy(name: policy)!.document, genesis: consortium.genesis)
        let query = PolicyQuery(requester: consortium.genesis.member(member)!, subject: subject, purpose: purpose, parameters: [],
                                requestedAtMillis: nowMillis)
        return try PolicyEngine(genesis: consortium.genesis).evaluate(document, query, facts: facts)
    }

    func assertRefusal(_ code: PolicyRefusal.Code, _ words: String, file: StaticString = #filePath, line: UInt = #line,
                       _ evaluation: () throws -> PolicyAnswer) {
        XCTAssertThrowsError(try evaluation(), file: file, line: line) {
            XCTAssertEqual(($0 as? PolicyRefusal)?.code, code, "\($0)", file: file, line: line)
            XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
        }
    }

    /// With no scorecard for the subject's kind installed (or its latest version unreadable), a
    /// grade policy refuses `no_score`. Found in review (2026-12-06): it took whatever model had
    /// scored the subject last, the risk model's probability of default among them, as the grade.
    func testNoGradeComesFromAModelThatIsNotTheSubjectsScorecard() async throws {
        try await score([food], model: "risk-warning")
        let facts = try StoreFacts(store: store, head: store.head, custodianKey: consortium.keys["samr"]!)
        XCTAssertNoThrow(try evaluate("credit-grade", about: food, facts: facts))
        let riskModelOnly = ModelsLimited(facts: facts, names: ["risk-warning"])
        assertRefusal(.noScore, "no scorecard for \(food!)") { try evaluate("credit-grade", about: food, facts: riskModelOnly) }
        assertRefusal(.noScore, "no scorecard") { try evaluate("loan-pre-check", about: food, facts: riskModelOnly) }
    }

    /// A node without a custodian's key refuses a policy that decrypts payloads (the masked name)
    /// for every subject alike. Found in review (2026-12-06): it answered an empty name for a
    /// subject with no registration record and refused the rest, telling which are registered.
    func testANodeWithoutACustodianKeyRefusesPayloadPoliciesWhateverTheSubject() async throws {
        let unregistered = uscc(division: "330106")
        try await submit([try attestation(unregistered, .license, "2021-04-01", payload: "{\"license\":\"JY13301060000001\"}")])
        try await score([unregistered])
        _ = try await consent(unregistered, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + 30 * 86_400)
        let custodian = try StoreFacts(store: store, head: store.head, custodianKey: consortium.keys["samr"]!)
        XCTAssertNoThrow(try evaluate("credit-grade", about: unregistered, facts: custodian))
        let bankNode = try StoreFacts(store: store, head: store.head, custodianKey: nil)
        for subject in [food!, unregistered, blank!] {
            assertRefusal(.notCustodianNode, "holds no custodian key") { try evaluate("credit-grade", about: subject, facts: bankNode) }
        }
        // A policy that decrypts nothing is answered there.
        XCTAssertNoThrow(try evaluate("risk-flags", about: listed, .postLoanMonitoring, facts: bankNode))
    }

    /// A subject is scored under several models. The credit grade comes from the newest update
    /// under the scorecard even when many newer updates are under the risk model, and the
    /// store hands score updates over newest first, below a given log size, only as far as asked.
    func testCreditGradeFindsTheScorecardUpdateBehindNewerUpdatesOfAnotherModel() async throws {
        let scorecardUpdate = try store.scoreUpdates(of: food, limit: 1)[0]
        for _ in 0..<20 { try await score([food], model: "risk-warning") }
        let all = try store.scoreUpdates(of: food, limit: 100)
        XCTAssertEqual(all.count, 21)
        XCTAssertEqual(all.last?.transaction.id, scorecardUpdate.transaction.id)
        XCTAssertEqual(all.map(\.logIndex), all.map(\.logIndex).sorted(by: >), "newest first")

        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        XCTAssertEqual((try fields(out.receipt)["model"] as? [String: Any])?["name"] as? String, "enterprise")
        // Naming the risk model does not turn its probability of default into a grade or a credit line.
        for policy in ["credit-grade", "loan-pre-check"] {
            let (_, risk) = try await ask("bank-a", policy, subject: food.code, purpose: "loan_application",
                                          params: [("model", "risk-warning")] + (policy == "loan-pre-check" ? [("amount_yuan", "100000")] : []))
            XCTAssertFalse(risk.answered, policy)
            XCTAssertEqual(risk.receipt.reason, "invalid_parameters", policy)
            XCTAssertTrue(risk.receipt.message.contains("\"risk-warning\" is not a scorecard"), risk.receipt.message)
        }
        let proved = out.receipt.facts.first { $0.role == "score_update" }
        XCTAssertEqual(proved?.log_index, scorecardUpdate.logIndex, "the scorecard's update is the one proved")
        try assertRecorded(out.receipt, "")
        // The score fact swapped for another update about the subject (the newest, under the risk
        // model): that is no scorecard, and the stated grade and model are not backed by it.
        var swapped = out.receipt
        let riskUpdate = all[0]
        let at = try XCTUnwrap(swapped.facts.firstIndex { $0.role == "score_update" })
        swapped.facts[at] = AnswerReceipt.Fact(role: "score_update", transaction: riskUpdate.transaction.encoded.base64String,
                                               log_index: riskUpdate.logIndex,
                                               inclusion_proof: try store.inclusionProof(index: riskUpdate.logIndex, size: swapped.tree_size).map { $0.base64String })
        assertRefused(swapped, "under risk-warning, which is not a scorecard for the subject's kind")

        // Below a log size: only older updates, newest first; reading stops when the visitor says so.
        let cut = all[5].logIndex
        var visited: [UInt64] = []
        try store.visitScoreUpdates(of: food, before: cut, limit: 100) { visited.append($0.logIndex); return true }
        XCTAssertEqual(visited, all.dropFirst(6).map(\.logIndex))
        visited = []
        try store.visitScoreUpdates(of: food, before: .max, limit: 100) { visited.append($0.logIndex); return visited.count < 3 }
        XCTAssertEqual(visited, all.prefix(3).map(\.logIndex))
        visited = []
        try store.visitScoreUpdates(of: food, before: .max, limit: 4) { visited.append($0.logIndex); return true }
        XCTAssertEqual(visited.count, 4, "at most `limit` read")
        try store.visitScoreUpdates(of: food, before: 0, limit: 4) { _ in XCTFail("nothing is below log size 0"); return true }

        // A query reads the subject's index once (subjectEntries) and takes records and score
        // updates from that pass: the same as reading each kind on its own. Consents come from
        // their own index: the same as picking them out of the subject's whole history.
        for size in [cut, store.head.logSize] {
            guard let entries = try store.subjectEntries(food, before: size, max: 4_096) else { return XCTFail("\(food.code) has few entries") }
            XCTAssertEqual(try store.loggedScoreRecords(in: entries, limit: 1_000),
                           try store.loggedScoreRecords(food, before: size, limit: 1_000))
            XCTAssertEqual(try store.loggedScoreRecords(in: entries, limit: 2).map(\.logIndex),
                           try store.loggedScoreRecords(food, before: size, limit: 2).map(\.logIndex))
            for (grantee, limit) in [("bank-a", 100), ("bank-a", 1), ("bank-b", 100)] {
                let history = try store.subjectHistory(food, limit: 100_000).filter { $0.logIndex < size }.compactMap { e -> UInt64? in
                    guard let tx = try store.transaction(at: e.logIndex), case .consent(let c) = tx.body, c.grantee == grantee else { return nil }
                    return e.logIndex
                }
                XCTAssertEqual(try store.consents(of: food, grantee: grantee, before: size, limit: limit).map(\.logIndex), Array(history.suffix(limit)))
            }
            XCTAssertFalse(try store.consents(of: food, grantee: "bank-a", before: size, limit: 100).isEmpty, "bank-a's consent is found")
            var onePass: [UInt64] = [], perKind: [UInt64] = []
            try store.visitScoreUpdates(in: entries, limit: 4) { onePass.append($0.logIndex); return true }
            try store.visitScoreUpdates(of: food, before: size, limit: 4) { perKind.append($0.logIndex); return true }
            XCTAssertEqual(onePass, perKind)
            XCTAssertEqual(onePass.count, 4)
            XCTAssertNil(try store.subjectEntries(food, before: size, max: entries.count - 1), "more entries than asked for: read kind by kind")
            XCTAssertEqual(try store.subjectEntries(food, before: size, max: entries.count)?.count, entries.count)
        }
        XCTAssertEqual(try store.subjectEntries(food, before: 0, max: 10)?.count, 0)
    }

    func testLoanPreCheckRiskFlagsFullProfileStatisticsAndQueryLog() async throws {
        let (_, pre) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application",
                                     params: [("amount_yuan", "100000000")])
        XCTAssertTrue(pre.answered, pre.receipt.message)
        let decision = try fields(pre.receipt)["decision"] as! [String: Any]
        guard case .scoreUpdate(let score) = try store.scoreUpdates(of: food, limit: 1)[0].transaction.body else { return XCTFail() }
        // ¥10,000 for every 10 points above 550, capped at ¥300,000 (¥500,000 for S); nothing below grade B.
        let expectedLine = score.grade > .b ? 0 : min(score.grade == .s ? 500_000 : 300_000, max(0, (Int(score.points) - 550) / 10) * 10_000)
        XCTAssertEqual(decision["credit_line_yuan"] as? Int, expectedLine)
        XCTAssertEqual(decision["eligible"] as? Bool, false)
        XCTAssertEqual(decision["reason_codes"] as? [String], score.grade > .b ? ["grade_below_B"] : ["amount_above_line"],
                       "asking for ¥100,000,000 is above any line")
        let (_, modest) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application",
                                        params: [("amount_yuan", "10000")])
        let modestDecision = try fields(modest.receipt)["decision"] as! [String: Any]
        XCTAssertEqual(modestDecision["eligible"] as? Bool, score.grade <= .b && expectedLine >= 10_000)
        let (_, listedCheck) = try await ask("bank-a", "risk-flags", subject: listed.code, purpose: "loan_application")
        XCTAssertEqual(listedCheck.receipt.reason, "consent_revoked", "the listed company revoked its loan-application consent")

        let (_, flags) = try await ask("bank-a", "risk-flags", subject: listed.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(flags.answered, flags.receipt.message)
        try assertRecorded(flags.receipt, "")
        let f = try fields(flags.receipt)
        XCTAssertEqual(f["serious_violation_list"] as? Bool, true)
        XCTAssertEqual(f["abnormal_operation_list"] as? Bool, false)
        XCTAssertEqual(f["penalties_24_months"] as? String, "2-4", "two penalties within 24 months; the 2023 one is outside")
        XCTAssertTrue(flags.receipt.facts.contains { $0.role == "record" }, "the listing record is proven")
        // Without it, the true flag stands on nothing proven: refused (it verified).
        var unbacked = flags.receipt
        unbacked.facts.removeAll { $0.role == "record" }
        assertRefused(unbacked, "serious_violation_list is true, but the receipt proves no record behind it")
        // A refusal uses no records.
        let listedRecord = try XCTUnwrap(flags.receipt.facts.first { $0.role == "record" })
        var refusalWithRecord = listedCheck.receipt
        refusalWithRecord.facts.append(AnswerReceipt.Fact(role: "record", transaction: listedRecord.transaction, log_index: listedRecord.log_index,
                                                          inclusion_proof: try store.inclusionProof(index: listedRecord.log_index, size: listedCheck.receipt.tree_size).map { $0.base64String }))
        assertRefused(refusalWithRecord, "the receipt of a refusal holds record facts")

        let (_, profile) = try await ask("data-bureau", "full-profile", subject: food.code, purpose: "supervision")
        XCTAssertTrue(profile.answered, profile.receipt.message)
        XCTAssertTrue(profile.receipt.result.contains(foodName), "a custodian reads the raw records")
        XCTAssertTrue(profile.receipt.result.contains("西市监罚"))
        XCTAssertEqual(try fields(profile.receipt)["grade"] as? String, score.grade.name)
        XCTAssertNoThrow(try profile.receipt.verify(genesis: consortium.genesis))
        // A subject no score covers (here: registered, not yet scored) is still reviewed: the records,
        // with a null grade, and a receipt that verifies without a score fact. A bank's grade is refused.
        let unscored = uscc(division: "330106")
        try await submit([try attestation(unscored, .registration, "2026-01-05", payload: "{\"name\":\"杭州未评分商贸有限公司\"}")])
        let (_, review) = try await ask("data-bureau", "full-profile", subject: unscored.code, purpose: "supervision")
        XCTAssertTrue(review.answered, review.receipt.message)
        XCTAssertTrue(try fields(review.receipt)["grade"] is NSNull, review.receipt.result)
        XCTAssertEqual((try fields(review.receipt)["records"] as? [Any])?.count, 1, review.receipt.result)
        XCTAssertFalse(review.receipt.facts.contains { $0.role == "score_update" })
        XCTAssertNoThrow(try review.receipt.verify(genesis: consortium.genesis))
        _ = try await consent(unscored, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + 86_400)
        let (_, grade) = try await ask("bank-a", "credit-grade", subject: unscored.code, purpose: "loan_application")
        XCTAssertEqual(grade.receipt.reason, "no_score", grade.receipt.message)

        let (_, stats) = try await ask("bank-b", "industry-statistics", subject: "", purpose: "statistics",
                                       params: [("model", "enterprise"), ("industry", "C13"), ("district", "330106")])
        XCTAssertTrue(stats.answered, stats.receipt.message)
        let s = try fields(stats.receipt)
        XCTAssertEqual(s["subjects"] as? Int, 12)
        XCTAssertEqual((s["grades"] as! [String: Int]).values.reduce(0, +), 12)

        let (_, log) = try await ask("samr", "my-queries", subject: food.code, purpose: "subject_access")
        XCTAssertTrue(log.answered, log.receipt.message)
        let entries = try fields(log.receipt)["queries"] as! [[String: Any]]
        XCTAssertEqual(entries.map { $0["requester"] as? String }, ["data-bureau", "bank-a", "bank-a"], "newest first: who looked at the food company")
        XCTAssertEqual(entries.last?["policy"] as? String, "loan-pre-check@1")
    }

    /// The shortcut for the node's own audit records (no signature re-check) is refused for a
    /// transaction signed by anyone else, and it still refuses a replayed nonce.
    func testOwnSubmissionShortcutIsOnlyForTheNodesOwnKeyAndStillGuardsNonces() async throws {
        let foreign = try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-a"]!, subject: food, grantee: "bank-a",
                                              purpose: .loanApplication, expiresAt: 4_102_444_800, evidence: SHA256.hash(Array("f".utf8)),
                                              nonce: nextNonce(), issuedAtMillis: nowMillis)
        do {
            _ = try await ledger.submit([foreign], signedHere: true)
            XCTFail("a bank's transaction was admitted as the node's own")
        } catch { XCTAssertTrue("\(error)".contains("signed by bank-a"), "\(error)") }

        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        let audit = try XCTUnwrap(out.receipt.facts.first { $0.role == "audit_record" })
        let tx = try Transaction.decode(try XCTUnwrap([UInt8](base64: audit.transaction)), maxBytes: 1 << 20)
        do {
            _ = try await ledger.submit([Submission(transaction: tx, envelope: nil)], signedHere: true)
            XCTFail("a committed audit record was admitted again")
        } catch { XCTAssertTrue("\(error)".contains("already used"), "\(error)") }
    }

    /// A request is answered once on the whole ledger: a second record of the same request
    /// (another node answering the same signed copy) is refused at validation, while refusals
    /// that use no nonce (a replay, a stale copy) may be recorded again.
    func testARequestIsRecordedOnceOnTheLedgerNotOncePerNode() async throws {
        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        let audit = try XCTUnwrap(out.receipt.facts.first { $0.role == "audit_record" })
        let first = try Transaction.decode(try XCTUnwrap([UInt8](base64: audit.transaction)), maxBytes: 1 << 20)
        guard case .queryRecord(var record) = first.body else { return XCTFail("the audit record is not a query record") }
        XCTAssertEqual(record.spentRequestNonce, "bank-a/\(record.requestNonce)")
        func signed(_ body: QueryRecordBody) -> Submission {
            let samr = consortium.genesis.member("samr")!
            let header = TransactionHeader(chainID: consortium.genesis.chainID, signer: "samr", keyID: samr.keyID,
                                           nonce: nextNonce(), issuedAtMillis: nowMillis)
            return Submission(transaction: Transaction.sign(header: header, body: .queryRecord(body), key: consortium.keys["samr"]!.signing),
                              envelope: nil)
        }
        do {
            _ = try await submit([signed(record)])
            XCTFail("a second record of an answered request was committed")
        } catch { XCTAssertTrue("\(error)".contains("already answered or refused on the ledger"), "\(error)") }
        record.outcome = .refused
        record.reason = "replayed_request"
        record.resultHash = Hashes.zero
        record.consent = Hashes.zero
        XCTAssertNil(record.spentRequestNonce)
        _ = try await submit([signed(record)])

        // The other order: a copy of a request refused as a replay (sent again while the
        // request itself is being answered) or as stale is recorded first. Those refusals use
        // no nonce, so the answer is still recorded, once, and the chain verifies.
        guard case .queryRecord(var answered) = first.body else { return XCTFail("the audit record is not a query record") }
        answered.requestNonce &+= 1_000_003
        var copy = answered
        copy.outcome = .refused; copy.resultHash = Hashes.zero; copy.consent = Hashes.zero
        copy.reason = "replayed_request"
        var stale = copy
        stale.reason = "outside_time_window"
        _ = try await submit([signed(copy)])
        _ = try await submit([signed(stale)])
        XCTAssertFalse(try store.queryNonceUsed(requester: "bank-a", nonce: answered.requestNonce), "refused copies used the nonce")
        _ = try await submit([signed(answered)])
        XCTAssertTrue(try store.queryNonceUsed(requester: "bank-a", nonce: answered.requestNonce))
        do {
            _ = try await submit([signed(answered)])
            XCTFail("a second record of an answered request was committed")
        } catch { XCTAssertTrue("\(error)".contains("already answered or refused on the ledger"), "\(error)") }
        var source = StoreBlockSource(store: store)
        _ = try ChainVerifier(genesis: consortium.genesis).verify(&source)
    }

    /// An answer read from a state long out of date (a node that was down answering from before a
    /// revocation the consortium recorded) is refused by validators when its record was signed
    /// more than 3 minutes after block `as_of_height` + 1 superseded that state. Judged at signing: a
    /// record that waits many blocks for its turn is taken. Blocks certified past the rule keep
    /// such records.
    func testValidatorsRefuseAnAnswerFromAStateLongOutOfDate() async throws {
        let honest = try await answeredAuditRecord(.loanApplication, expiresAt: nowMillis / 1000 + 30 * 86_400)
        func record(asOf: UInt64, signedAt: UInt64, outcome: QueryRecordBody.Outcome = .answered) -> Submission {
            var body = honest
            body.requestNonce = nextNonce() + 2_000_000
            body.requestHash = SHA256.hash(Array("request \(body.requestNonce)".utf8))
            body.asOfHeight = asOf
            if outcome != .answered { body.outcome = outcome; body.reason = "no_consent"; body.resultHash = Hashes.zero; body.consent = Hashes.zero }
            let m = consortium.genesis.member("samr")!
            let h = TransactionHeader(chainID: consortium.genesis.chainID, signer: "samr", keyID: m.keyID, nonce: nextNonce(), issuedAtMillis: signedAt)
            return Submission(transaction: Transaction.sign(header: h, body: .queryRecord(body), key: consortium.keys["samr"]!.signing), envelope: nil)
        }
        let validator = TransactionValidator.standard(genesis: consortium.genesis)
        let old = store.head.height
        // The state at `old` is superseded by a block stamped `supersededAt`.
        let supersededAt = nowMillis + 5_000
        blockClock.store(supersededAt, ordering: .relaxed)
        try await submit([try attestation(listed, .license, "2026-01-01", payload: "filler")])
        XCTAssertEqual(try store.blockTimestamp(atHeight: old + 1), supersededAt)
        let lag = TransactionValidator.answerLagMillis
        XCTAssertNoThrow(try validator.checkStateful(record(asOf: old, signedAt: supersededAt + lag).transaction, state: store))
        let stale = record(asOf: old, signedAt: supersededAt + lag + 1)
        XCTAssertThrowsError(try validator.checkStateful(stale.transaction, state: store)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("answers from the state at height \(old), which block \(old + 1) superseded at \(supersededAt) ms, \(lag / 1000) s before the record was signed"), "\(error)")
        }
        do {
            _ = try await submit([stale])
            XCTFail("an answer from a state long out of date was committed")
        } catch { XCTAssertTrue("\(error)".contains("superseded"), "\(error)") }
        // A refusal from that state is recorded (it reveals nothing); a block certified past the rule keeps its answer.
        XCTAssertNoThrow(try validator.checkStateful(record(asOf: old, signedAt: supersededAt + lag + 1, outcome: .refused).transaction, state: store))
        XCTAssertNoThrow(try validator.checkStateful(stale.transaction, state: store, certified: true))
        // Signed in time, then waiting many blocks and minutes of block time (a busy chain): taken.
        let fresh = record(asOf: old, signedAt: supersededAt - 1_000)
        for i in 0..<20 {
            blockClock.store(supersededAt + UInt64(i) * 10_000, ordering: .relaxed)
            try await submit([try attestation(listed, .license, "2026-01-01", payload: "filler \(i)")])
        }
        XCTAssertNoThrow(try validator.checkStateful(fresh.transaction, state: store))
        _ = try await submit([fresh])
        // A record signed more than the request window before the request it answers was
        // backdated (to pass the rule, say): refused.
        let backdated = record(asOf: store.head.height, signedAt: nowMillis - QueryRecordBody.requestWindowMillis - 1)
        XCTAssertThrowsError(try validator.checkStateful(backdated.transaction, state: store)) {
            XCTAssertTrue("\($0)".contains("s before the request it answers was signed"), "\($0)")
        }
        XCTAssertNoThrow(try validator.checkStateful(record(asOf: store.head.height, signedAt: nowMillis - QueryRecordBody.requestWindowMillis).transaction, state: store))
        // A state not yet superseded here (the answering node ahead of this one) is not judged.
        _ = try await submit([record(asOf: store.head.height, signedAt: supersededAt + 10 * lag)])
    }

    /// A grant records the consent form's hash (one of zeros is refused), and a stop the subject
    /// gave at a government issuer is undone there only: the bank recording a grant for itself
    /// right after it is refused; the bureau recording one is taken, and after that the bank's own
    /// grants again. Certified blocks keep what they hold.
    func testAStopGivenAtABureauIsUndoneThereOnly() async throws {
        let expires = nowMillis / 1000 + 30 * 86_400
        let validator = TransactionValidator.standard(genesis: consortium.genesis)
        func grant(by recorder: String, evidence: Hash = SHA256.hash(Array("form".utf8)), _ purpose: ConsentBody.Purpose = .loanApplication) throws -> Submission {
            try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys[recorder]!, subject: blank, grantee: "bank-a",
                                    purpose: purpose, expiresAt: expires, evidence: evidence, nonce: nextNonce(), issuedAtMillis: nowMillis)
        }
        XCTAssertThrowsError(try validator.checkStateful(try grant(by: "bank-a", evidence: Hashes.zero).transaction, state: store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .invalidValue)
            XCTAssertTrue("\($0)".contains("a consent grant records a commitment to the signed consent form (evidence); all zeros records none"), "\($0)")
        }
        let first = try grant(by: "bank-a")
        try await submit([first])
        // The business revokes at the supervision bureau's window.
        try await submit([QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["samr"]!, subject: blank, grantee: "bank-a",
                                              purpose: .loanApplication, expiresAt: 0, evidence: Hashes.zero, revoking: first.transaction.id,
                                              nonce: nextNonce(), issuedAtMillis: nowMillis)])
        let own = try grant(by: "bank-a")
        XCTAssertThrowsError(try validator.checkStateful(own.transaction, state: store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
            XCTAssertTrue("\($0)".contains("\(blank!) revoked bank-a's loan_application consent at samr"), "\($0)")
        }
        XCTAssertNoThrow(try validator.checkStateful(own.transaction, state: store, certified: true))
        // The bank's own revocation of that grant after it (taken: every revocation is a stop)
        // does not lift the bureau's stop (the bank's grant after it was taken; found in review).
        try await submit([QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-a"]!, subject: blank, grantee: "bank-a",
                                              purpose: .loanApplication, expiresAt: 0, evidence: Hashes.zero, revoking: first.transaction.id,
                                              nonce: nextNonce(), issuedAtMillis: nowMillis)])
        XCTAssertThrowsError(try validator.checkStateful(try grant(by: "bank-a").transaction, state: store)) {
            XCTAssertTrue("\($0)".contains("\(blank!) revoked bank-a's loan_application consent at samr"), "\($0)")
        }
        // Another purpose is another consent; the bureau may record the new grant.
        XCTAssertNoThrow(try validator.checkStateful(try grant(by: "bank-a", .postLoanMonitoring).transaction, state: store))
        try await submit([try grant(by: "data-bureau")])
        let (_, out) = try await ask("bank-a", "credit-grade", subject: blank.code, purpose: "loan_application")
        XCTAssertNotEqual(out.receipt.message, "", "answered or refused, the query ran")
        // Once the bureau recorded the business's consent again, the bank's own grants are taken.
        try await submit([try grant(by: "bank-a")])
    }

    /// A bank that holds a full window of consents about one subject (1,024: the newest the
    /// rules read) cannot record another itself: an issuer's stop could lie beyond them (found in
    /// review). A government issuer still can.
    func testABankWithAFullWindowOfConsentsRecordsNoMoreItself() async throws {
        let expires = nowMillis / 1000 + 30 * 86_400
        func grant(by recorder: String, _ i: Int) throws -> Submission {
            try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys[recorder]!, subject: listed, grantee: "bank-b",
                                    purpose: .postLoanMonitoring, expiresAt: expires, evidence: SHA256.hash(Array("form \(i)".utf8)),
                                    nonce: nextNonce(), issuedAtMillis: nowMillis)
        }
        for start in stride(from: 0, to: ConsentStanding.window, by: 256) {
            try await submit(try (start..<start + 256).map { try grant(by: "bank-b", $0) })
        }
        let validator = TransactionValidator.standard(genesis: consortium.genesis)
        XCTAssertThrowsError(try validator.checkStateful(try grant(by: "bank-b", -1).transaction, state: store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
            XCTAssertTrue("\($0)".contains("bank-b holds 1024 or more consents about \(listed!), too many to tell"), "\($0)")
        }
        XCTAssertNoThrow(try validator.checkStateful(try grant(by: "samr", -2).transaction, state: store))
    }

    /// A node its peers report 10 or more blocks ahead of (catching up after a restart) turns a
    /// query away unevaluated and unrecorded with 503 `outOfDate`; 9 behind, it answers.
    func testANodeFarBehindItsPeersAnswersNoQuery() async throws {
        _ = try await consent(food, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + 30 * 86_400)
        let logSize = store.head.logSize
        let behind = try QueryService(ledger: Lagging(inner: ledger, behind: LedgerAPI.behindWarning), clock: { nowMillis })
        let request = signedRequest("bank-a", "credit-grade", subject: food.code, at: nowMillis, key: consortium.keys["bank-a"]!.signing)
        do {
            _ = try await behind.handle(request)
            XCTFail("a node far behind answered")
        } catch let e as LedgerError {
            XCTAssertEqual(e.code, .outOfDate)
            XCTAssertEqual(LedgerAPI.statusFor(e.code), .serviceUnavailable)
            XCTAssertTrue(e.reason.contains("10 blocks behind the height its validator peers report"), e.reason)
        }
        XCTAssertEqual(store.head.logSize, logSize, "nothing recorded")
        // Nor does a node that cannot write blocks (a full disk): its head is frozen.
        let full = try QueryService(ledger: Lagging(inner: ledger, behind: 0, writeFailure: "cannot write block 9: no space left"), clock: { nowMillis })
        do {
            _ = try await full.handle(request)
            XCTFail("a node that cannot write blocks answered")
        } catch let e as LedgerError {
            XCTAssertEqual(e.code, .outOfDate)
            XCTAssertTrue(e.reason.contains("cannot write blocks now") && e.reason.contains("no space left"), e.reason)
        }
        XCTAssertEqual(store.head.logSize, logSize, "nothing recorded")
        let close = try QueryService(ledger: Lagging(inner: ledger, behind: LedgerAPI.behindWarning - 1), clock: { nowMillis })
        let out = try await close.handle(request)
        XCTAssertTrue(out.answered, out.receipt.message)
    }

    /// The test ledger, as a consortium node whose peers report heights `behind` blocks above its head.
    final class Lagging: LedgerService {
        let inner: Ledger
        let behind: UInt64
        let writeFailure: String?
        init(inner: Ledger, behind: UInt64, writeFailure: String? = nil) { self.inner = inner; self.behind = behind; self.writeFailure = writeFailure }
        var writeFailureReason: String? { writeFailure }
        var store: ChainStore { inner.store }
        var genesis: Genesis { inner.genesis }
        func submit(_ submissions: [Submission], signedHere: Bool) async throws -> [CommitResult] {
            try await inner.submit(submissions, signedHere: signedHere)
        }
        func status() -> [String: any Sendable] { inner.status() }
        var nodeKeys: MemberSecretKeys { inner.nodeKeys }
        func ownNonce() -> UInt64 { inner.ownNonce() }
        var connectivity: (peers: Int, behindBy: UInt64?)? { (3, behind) }
        func isPending(_ id: Hash) -> Bool { inner.isPending(id) }
        var blockWrites: BlockWriteWatch { inner.blockWrites }
    }

    /// Validators check that the consent an audit record names stood where the answer was
    /// evaluated (the engine's own rule, `ConsentStanding`): a node that answers under a revoked
    /// or expired consent, one recorded after the height it names, or one for another purpose,
    /// gets its record refused. A block certified past them still catches up, and the offline
    /// verifier names such a record in it.
    func testValidatorsRefuseAnAnswerUnderAConsentThatDidNotStand() async throws {
        let month: UInt64 = 30 * 86_400
        let beforeGrant = store.head.height
        let honest = try await answeredAuditRecord(.postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        let grant = honest.consent
        // The same answer for another request of the bank's, as another node would record it.
        func record(asOf: UInt64, by node: String = "samr", _ change: (inout QueryRecordBody) -> Void = { _ in }) -> Submission {
            var body = honest
            body.requestNonce = nextNonce() + 1_000_000
            body.requestHash = SHA256.hash(Array("request \(body.requestNonce)".utf8))
            body.asOfHeight = asOf
            change(&body)
            return Submission(transaction: Transaction.sign(header: header(node), body: .queryRecord(body), key: consortium.keys[node]!.signing),
                              envelope: nil)
        }
        func refused(_ s: Submission, _ words: String, file: StaticString = #filePath, line: UInt = #line) async {
            do {
                _ = try await submit([s])
                XCTFail("an answer under a consent that did not stand was committed (\(words))", file: file, line: line)
            } catch { XCTAssertTrue("\(error)".contains(words), "\(error)", file: file, line: line) }
        }
        let standing = store.head.height
        _ = try await submit([record(asOf: standing)])
        await refused(record(asOf: beforeGrant), "among the newest 1024 recorded before height \(beforeGrant)")
        await refused(record(asOf: store.head.height + 5), "evaluated at height \(store.head.height + 5), which is not committed here")
        // Gossip from a node a few heights ahead waits in the mempool; a block may not hold it yet.
        let validator = TransactionValidator.standard(genesis: consortium.genesis)
        let ahead = record(asOf: store.head.height + TransactionValidator.mempoolHeightSlack).transaction
        XCTAssertNoThrow(try validator.checkStateful(ahead, state: store, forMempool: true))
        XCTAssertThrowsError(try validator.checkStateful(ahead, state: store))
        let tooFar = record(asOf: store.head.height + TransactionValidator.mempoolHeightSlack + 1).transaction
        XCTAssertThrowsError(try validator.checkStateful(tooFar, state: store, forMempool: true))
        // A serving node remembers a consent found to stand (by the record's id), and only that:
        // not a record admitted on the height slack alone, not one refused.
        var memoized = TransactionValidator.standard(genesis: consortium.genesis)
        memoized.consentChecks = CheckMemo()
        let stood = record(asOf: standing).transaction
        for _ in 0..<3 { XCTAssertNoThrow(try memoized.checkStateful(stood, state: store)) }
        XCTAssertNoThrow(try memoized.checkStateful(ahead, state: store, forMempool: true))
        XCTAssertThrowsError(try memoized.checkStateful(ahead, state: store))
        let wrongPurpose = record(asOf: standing) { $0.purpose = .loanApplication }.transaction
        for _ in 0..<2 { XCTAssertThrowsError(try memoized.checkStateful(wrongPurpose, state: store)) }
        XCTAssertEqual(memoized.consentChecks!.statistics.checked, 1, "only the record whose consent stood is remembered")
        XCTAssertEqual(memoized.consentChecks!.statistics.reused, 2)
        await refused(record(asOf: standing) { $0.purpose = .loanApplication }, "for post_loan_monitoring; the query's purpose is loan_application")
        await refused(record(asOf: standing) { $0.requestedAtMillis = (nowMillis / 1000 + month) * 1000 }, "had expired when the request was signed")
        await refused(record(asOf: standing) { $0.requester = "bank-b" }, "which is not a grant to bank-b")
        // A request time written well before the evaluated height's block (a node backdating it
        // to before a consent expired) is refused; within the hour's slack it is taken.
        let evaluatedAt = try XCTUnwrap(try store.blockTimestamp(coveringLogSize: try XCTUnwrap(try store.committedLogSize(atHeight: standing))))
        await refused(record(asOf: standing) { $0.requestedAtMillis = evaluatedAt - TransactionValidator.requestAgeSlackMillis - 1 },
                      "more than 60 minutes before the block at its as_of_height \(standing)")
        XCTAssertNoThrow(try TransactionValidator.standard(genesis: consortium.genesis).checkStateful(
            record(asOf: standing) { $0.requestedAtMillis = evaluatedAt - TransactionValidator.requestAgeSlackMillis }.transaction, state: store))
        // credit-grade states a masked name, which only a custodian's node can read: a bank's own
        // validator that records an answer to its own request made it up (found in review).
        let creditGrade = try XCTUnwrap(consortium.genesis.policy(hash: honest.policy)).document
        XCTAssertNoThrow(try PolicyRules().checkAnswered(honest, answeredBy: "samr", document: creditGrade, genesis: consortium.genesis))
        XCTAssertThrowsError(try PolicyRules().checkAnswered(honest, answeredBy: "bank-a", document: creditGrade, genesis: consortium.genesis)) {
            XCTAssertTrue("\($0)".contains("credit-grade reads payloads, which only a custodian's node can decrypt; bank-a is not a custodian"), "\($0)")
        }

        try await revoke(food, grant: grant, .postLoanMonitoring)
        let revoked = store.head.height
        await refused(record(asOf: revoked), "which \(food!) revoked before height \(revoked)")
        // Evaluated before the revocation, the answer stood: it is recorded even now.
        _ = try await submit([record(asOf: standing)])
        // And a remembered one stays true: the revocation came after the height it names.
        XCTAssertNoThrow(try memoized.checkStateful(stood, state: store))
        var source = StoreBlockSource(store: store)
        XCTAssertEqual(try ChainVerifier(genesis: consortium.genesis).verify(&source).answersWithoutStandingConsent, 0)
        // A record the validators would refuse, certified past them (as blocks certified before
        // validators checked consents may hold): catch-up takes it, and the verifier names it.
        let forged = record(asOf: revoked)
        let logIndex = store.head.logSize
        XCTAssertThrowsError(try validator.checkStateful(forged.transaction, state: store))
        XCTAssertNoThrow(try validator.checkStateful(forged.transaction, state: store, certified: true))
        try appendPastValidators([forged])
        source = StoreBlockSource(store: store)
        let summary = try ChainVerifier(genesis: consortium.genesis).verify(&source)
        XCTAssertEqual(summary.answersWithoutStandingConsent, 1)
        XCTAssertEqual(summary.answersWithoutStandingConsentFirst.first?.logIndex, logIndex)
        XCTAssertTrue(summary.answersWithoutStandingConsentFirst.first?.reason.contains("revoked before height \(revoked)") ?? false,
                      "\(summary.answersWithoutStandingConsentFirst)")
        // Certified or not, the consent must at least be a committed grant to the requester about the subject.
        let stranger = record(asOf: revoked) { $0.requester = "bank-b" }.transaction
        XCTAssertThrowsError(try validator.checkStateful(stranger, state: store, certified: true))

        // An answer is one its policy gives: it names the consent the policy requires, and its
        // caller and purpose are ones the policy allows. Found in review (2026-12-06): an answer
        // naming no consent at all passed every validator, which checked a named consent only.
        let now = store.head.height
        await refused(record(asOf: now) { $0.consent = Hashes.zero }, "credit-grade requires the subject's consent, but the answered audit record names none")
        await refused(record(asOf: now) { $0.requester = "data-bureau" }, "data-bureau may not call credit-grade")
        await refused(record(asOf: now) { $0.purpose = .supervision }, "not supervision, yet the audit record says it was answered")
        await refused(record(asOf: now) { $0.subject = nil; $0.consent = Hashes.zero }, "answers about one subject, but the answered audit record names none")
        // A validator without the policy engine cannot tell, so it takes no answer.
        XCTAssertThrowsError(try TransactionValidator(genesis: consortium.genesis).checkStateful(record(asOf: now).transaction, state: store)) {
            XCTAssertTrue("\($0)".contains("no policy engine"), "\($0)")
        }
        // Certified past the validators (as blocks certified before they checked this may hold),
        // such an answer is taken by catch-up and named by the verifier.
        let bare = record(asOf: now) { $0.consent = Hashes.zero }
        XCTAssertNoThrow(try validator.checkStateful(bare.transaction, state: store, certified: true))
        let bareIndex = store.head.logSize
        try appendPastValidators([bare])
        source = StoreBlockSource(store: store)
        let audited = try ChainVerifier(genesis: consortium.genesis).verify(&source)
        XCTAssertEqual(audited.answersWithoutStandingConsent, 2)
        XCTAssertEqual(audited.answersWithoutStandingConsentFirst.last?.logIndex, bareIndex)
        XCTAssertTrue(audited.answersWithoutStandingConsentFirst.last?.reason.contains("requires the subject's consent") ?? false,
                      "\(audited.answersWithoutStandingConsentFirst)")
    }

    /// Consents are read newest first: another bank recording over a thousand grants to itself
    /// about a subject cannot push a later revocation out of what the engine reads.
    func testARevocationIsSeenBehindAThousandOtherConsents() async throws {
        let month: UInt64 = 30 * 86_400
        let grant = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        var spam: [Submission] = []
        for i in 0..<1_030 {
            spam.append(try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-b"]!, subject: food, grantee: "bank-b",
                                                purpose: .loanApplication, expiresAt: nowMillis / 1000 + month,
                                                evidence: SHA256.hash(Array("form \(i)".utf8)), nonce: nextNonce(), issuedAtMillis: nowMillis))
        }
        _ = try await submit(spam)
        // bank-a's consents are read without bank-b's: its two grants come back, nothing else.
        let bankA = try store.consents(of: food, grantee: "bank-a", before: store.head.logSize, limit: 1_024)
        XCTAssertEqual(bankA.count, 2, "the setup's grant and this one")
        XCTAssertEqual(bankA.last?.transaction.id, grant)
        XCTAssertEqual(try store.consents(of: food, grantee: "bank-b", before: store.head.logSize, limit: 1_024).count, 1_024, "the newest 1,024")
        let (_, before) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(before.answered, before.receipt.message)
        try await revoke(food, grant: grant, .postLoanMonitoring)
        let (_, after) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertEqual(after.receipt.reason, "consent_revoked", after.receipt.message)
    }

    /// A revocation ends every earlier grant to the bank for that purpose, not only the one it
    /// names: a grant recorded twice (a retried command, a renewal) kept answering for up to 90
    /// days after the subject revoked. Other purposes keep their grants, and a grant recorded
    /// after the revocation is a new consent.
    func testARevocationEndsEveryEarlierGrantForItsPurpose() async throws {
        let month: UInt64 = 30 * 86_400
        let first = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        let second = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        XCTAssertNotEqual(first, second)
        let (_, before) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(before.answered, before.receipt.message)
        let (_, otherBefore) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(otherBefore.answered, otherBefore.receipt.message)

        try await revoke(food, grant: second, .postLoanMonitoring)
        let (_, after) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertEqual(after.receipt.reason, "consent_revoked", "the first grant must not answer once the subject revoked: \(after.receipt.message)")
        let (_, other) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(other.answered, "a loan-application grant is not touched: \(other.receipt.message)")

        let renewed = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        let (_, again) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(again.answered, again.receipt.message)
        XCTAssertEqual(again.receipt.facts.first { $0.role == "consent" }.flatMap { [UInt8](base64: $0.transaction) }.map(Transaction.id(ofEncoded:)),
                       renewed, "the answer rests on the grant recorded after the revocation")

        // The first grant revoked again, after the renewal: the subject knows the grant it gave,
        // and revoking it again means "stop" again, ending the renewed grant too. It changed
        // nothing, and the renewal answered on (found by black-box testing, 2026-12-07).
        try await revoke(food, grant: second, .postLoanMonitoring)
        let (_, afterSecondStop) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertEqual(afterSecondStop.receipt.reason, "consent_revoked", "the renewed grant answered after the subject revoked again: \(afterSecondStop.receipt.message)")
        // Validators now refuse an answer under the renewed grant evaluated after that second stop;
        // under the rule of its time it stood, so in a chain certified then the offline verifier
        // does not report it (found in review, 2026-12-07).
        let againAudit = try XCTUnwrap(again.receipt.facts.first { $0.role == "audit_record" })
        guard case .queryRecord(var late) = try Transaction.decode(try XCTUnwrap([UInt8](base64: againAudit.transaction)), maxBytes: 1 << 20).body else {
            return XCTFail("the audit record is not a query record")
        }
        late.requestNonce = nextNonce() + 2_000_000
        late.requestHash = SHA256.hash(Array("late request \(late.requestNonce)".utf8))
        late.asOfHeight = store.head.height
        let lateRecord = Submission(transaction: Transaction.sign(header: header("samr"), body: .queryRecord(late), key: consortium.keys["samr"]!.signing),
                                    envelope: nil)
        XCTAssertThrowsError(try TransactionValidator.standard(genesis: consortium.genesis).checkStateful(lateRecord.transaction, state: store)) {
            XCTAssertTrue("\($0)".contains("revoked before height \(late.asOfHeight)"), "\($0)")
        }
        try appendPastValidators([lateRecord])
        var audited = StoreBlockSource(store: store)
        XCTAssertEqual(try ChainVerifier(genesis: consortium.genesis).verify(&audited).answersWithoutStandingConsent, 0)
        let renewedAgain = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: nowMillis / 1000 + month)
        let (_, afterRenewal) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(afterRenewal.answered, afterRenewal.receipt.message)
        XCTAssertEqual(afterRenewal.receipt.facts.first { $0.role == "consent" }.flatMap { [UInt8](base64: $0.transaction) }.map(Transaction.id(ofEncoded:)),
                       renewedAgain, "a grant recorded after the second revocation is a new consent")

        // A revocation carrying another purpose than its grant's is refused (it would read as one
        // for that purpose once the grant is out of sight); nothing is revoked.
        do {
            try await revoke(food, grant: renewed, .loanApplication)
            XCTFail("a revocation naming another purpose than its grant's was taken")
        } catch {
            XCTAssertTrue("\(error)".contains("names purpose loan_application, but grant \(renewed.hexString) is for post_loan_monitoring"), "\(error)")
        }
        let (_, still) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "post_loan_monitoring")
        XCTAssertTrue(still.answered, still.receipt.message)
        // A certified block keeps the earlier rule: such a revocation ends grants of the grant's purpose.
        let mismatched = try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-a"]!, subject: food,
                                                 grantee: "bank-a", purpose: .loanApplication, expiresAt: 0, evidence: Hashes.zero,
                                                 revoking: renewed, nonce: nextNonce(), issuedAtMillis: nowMillis)
        XCTAssertNoThrow(try TransactionValidator(genesis: consortium.genesis).checkStateful(mismatched.transaction, state: store, certified: true))
        XCTAssertThrowsError(try TransactionValidator(genesis: consortium.genesis).checkStateful(mismatched.transaction, state: store))
        let (_, loan) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(loan.answered, "the loan-application grant is not what was revoked: \(loan.receipt.message)")
    }

    /// A consent runs "until an expiry" of at most ten years after it is signed; any u64 was
    /// taken, so a grant could stand for good. A certified block keeps the earlier rule.
    func testAConsentGrantRunsAtMostTenYears() async throws {
        let issued = nowMillis / 1000
        let longest = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: issued + ConsentBody.maxTermSeconds)
        XCTAssertNotEqual(longest, Hashes.zero)
        // Nor one over when signed, which would never answer (it was recorded without a word).
        for expiresAt in [issued, issued - 86_400] {
            do {
                _ = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: expiresAt, issuedAt: nowMillis)
                XCTFail("a grant expiring at \(expiresAt), signed at \(issued), was taken")
            } catch {
                XCTAssertTrue("\(error)".contains("a consent grant expires when or before it is signed (expires_at \(expiresAt), issued_at \(issued) s)"), "\(error)")
            }
        }
        for expiresAt in [issued + ConsentBody.maxTermSeconds + 1, UInt64.max] {
            do {
                _ = try await consent(food, to: "bank-a", .postLoanMonitoring, expiresAt: expiresAt)
                XCTFail("a grant expiring at \(expiresAt) was taken")
            } catch {
                XCTAssertTrue("\(error)".contains("a consent grant expires more than 3660 days after it is signed (expires_at \(expiresAt), issued_at \(issued) s)"), "\(error)")
            }
        }
        let forever = try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-a"]!, subject: food, grantee: "bank-a",
                                              purpose: .loanApplication, expiresAt: .max, evidence: Hashes.zero,
                                              nonce: nextNonce(), issuedAtMillis: nowMillis)
        XCTAssertNoThrow(try TransactionValidator(genesis: consortium.genesis).checkStateful(forever.transaction, state: store, certified: true))

        // The signer chooses issued_at: a grant signed as if a century ahead passes that check,
        // but stands at most the term past the block that recorded it (found in review).
        let century: UInt64 = 100 * 365 * 86_400_000
        let ahead = try QueryClient.consent(genesis: consortium.genesis, keys: consortium.keys["bank-b"]!, subject: food, grantee: "bank-b",
                                            purpose: .loanApplication, expiresAt: (nowMillis + century) / 1000 + ConsentBody.maxTermSeconds,
                                            evidence: SHA256.hash(Array("form".utf8)), nonce: nextNonce(), issuedAtMillis: nowMillis + century)
        let committed = try await submit([ahead])
        let recordedAt = try XCTUnwrap(try store.blockHeader(height: committed[0].height)).timestampMillis
        XCTAssertEqual(try store.blockTimestamp(holding: ahead.transaction.id, at: committed[0].logIndex), recordedAt)
        XCTAssertEqual(try store.blockTimestamp(coveringLogSize: committed[0].logIndex + 1), recordedAt)
        let end = recordedAt + ConsentBody.maxTermSeconds * 1000
        func asked(at millis: UInt64, nodeClock: UInt64? = nil) async throws -> QueryService.Outcome {
            let later = try QueryService(ledger: ledger, clock: { nodeClock ?? millis })
            return try await later.handle(signedRequest("bank-b", "credit-grade", subject: food.code, at: millis, key: consortium.keys["bank-b"]!.signing))
        }
        let within = try await asked(at: end - 1)
        XCTAssertTrue(within.answered, within.receipt.message)
        let past = try await asked(at: end)
        XCTAssertEqual(past.receipt.reason, "consent_expired", past.receipt.message)
        // Signed in time, answered after the cap: refused too.
        let answeredLate = try await asked(at: end - 1, nodeClock: end + 1_000)
        XCTAssertEqual(answeredLate.receipt.reason, "consent_expired", answeredLate.receipt.message)
        XCTAssertTrue(answeredLate.receipt.message.contains("expired after the request was signed"), answeredLate.receipt.message)
        // Validators hold an answer to the same rule.
        let audit = try XCTUnwrap(within.receipt.facts.first { $0.role == "audit_record" })
        guard case .queryRecord(var late) = try Transaction.decode(try XCTUnwrap([UInt8](base64: audit.transaction)), maxBytes: 1 << 20).body else {
            return XCTFail("the audit record is not a query record")
        }
        XCTAssertEqual(late.consent, ahead.transaction.id)
        late.requestNonce = nextNonce() + 1_000_000
        late.requestHash = SHA256.hash(Array("request \(late.requestNonce)".utf8))
        late.requestedAtMillis = end
        let tx = Transaction.sign(header: header("samr"), body: .queryRecord(late), key: consortium.keys["samr"]!.signing)
        for forMempool in [false, true] {
            XCTAssertThrowsError(try TransactionValidator.standard(genesis: consortium.genesis).checkStateful(tx, state: store, forMempool: forMempool)) {
                XCTAssertTrue("\($0)".contains("which had expired when the request was signed (at its expires_at, or 3660 days after the block that recorded it)"), "\($0)")
            }
        }
    }

    /// Industry statistics count only industry × district cells of at least 10 subjects, so
    /// nested answers cannot be subtracted to expose a small group (docs/PRIVACY.md §9).
    func testIndustryStatisticsLeaveSmallIndustryDistrictCellsOutOfEveryAnswer() async throws {
        // District 330106 already holds 12 C13 subjects and 3 I65 subjects. One F51 subject
        // joins them, and 15 E48 subjects are spread over three other districts, five in each.
        let f51 = uscc(division: "330106")
        var subs = [try attestation(f51, .registration, "2021-04-01", industry: "F51", payload: "{\"name\":\"茶叶贸易\"}")]
        var e48: [USCC] = []
        for district in ["330108", "330110", "320506"] {
            for i in 0..<5 {
                let s = uscc(division: district)
                e48.append(s)
                subs.append(try attestation(s, .registration, "2021-0\(1 + i)-01", industry: "E48", payload: "{\"name\":\"建设\(i)\"}"))
            }
        }
        try await submit(subs)
        try await score([f51] + e48)

        func stats(_ params: [(name: String, value: String)]) async throws -> AnswerReceipt {
            let (_, out) = try await ask("bank-b", "industry-statistics", subject: "", purpose: "statistics",
                                         params: [("model", "enterprise")] + params)
            return out.receipt
        }
        func counts(_ receipt: AnswerReceipt, line: UInt = #line) throws -> (subjects: Int, grades: [String: Int]) {
            XCTAssertEqual(receipt.outcome, "answered", receipt.message, line: line)
            try assertRecorded(receipt, "", line: line)
            let f = try fields(receipt)
            return (try XCTUnwrap(f["subjects"] as? Int, line: line), try XCTUnwrap(f["grades"] as? [String: Int], line: line))
        }
        let c13 = try counts(try await stats([("industry", "C13"), ("district", "330106")]))
        XCTAssertEqual(c13.subjects, 12)
        XCTAssertEqual(c13.grades.values.reduce(0, +), 12)
        // The district's answer is its C13 cell's: the F51 and I65 subjects are in no count, so
        // subtracting the two answers gives nothing.
        let district = try counts(try await stats([("district", "330106")]))
        XCTAssertEqual(district.subjects, c13.subjects)
        XCTAssertEqual(district.grades, c13.grades)
        // With no filter, only that cell counts too: the E48 subjects are in cells of five.
        let all = try counts(try await stats([]))
        XCTAssertEqual(all.subjects, 12)
        XCTAssertEqual(all.grades, c13.grades)
        // Asked again (a later height), the same counts.
        let again = try counts(try await stats([("industry", "C13")]))
        XCTAssertEqual(again.subjects, 12)
        XCTAssertEqual(again.grades, c13.grades)

        // Cells made only of small fine cells are refused, the 15 E48 subjects among them; the
        // message gives the parameters and the threshold, no count.
        let small: [([(name: String, value: String)], String)] = [
            ([("industry", "F51"), ("district", "330106")], "5133010610"), ([("industry", "E48")], "4810"),
            ([("district", "330108")], "33010810"), ([("industry", "I65"), ("district", "330106")], "6533010610"),
        ]
        for (params, digits) in small {
            let refused = try await stats(params)
            XCTAssertEqual(refused.reason, "cell_under_k", "\(params): \(refused.message)")
            XCTAssertEqual(refused.result, "")
            XCTAssertEqual(refused.message.filter(\.isNumber), digits, refused.message)
            try assertRecorded(refused, "cell_under_k")
        }
    }

    // MARK: Refusals

    func testEveryRefusalHasAReasonAndAnAuditRecord() async throws {
        let listedCode = listed.code, foodCode = food.code
        let cases: [(String, String, String, String, [(name: String, value: String)], UInt64, String?, String)] = [
            ("bank-b", "credit-grade", foodCode, "loan_application", [], nowMillis, nil, "no_consent"),
            ("bank-b", "credit-grade", foodCode, "post_loan_monitoring", [], nowMillis, nil, "consent_expired"),
            ("bank-a", "credit-grade", listedCode, "loan_application", [], nowMillis, nil, "consent_revoked"),
            ("bank-a", "full-profile", foodCode, "supervision", [], nowMillis, nil, "wrong_role"),
            ("bank-a", "credit-grade", foodCode, "loan_application", [], nowMillis, "bank-b", "bad_signature"),
            ("bank-a", "credit-grade", foodCode, "loan_application", [], nowMillis - 600_000, nil, "outside_time_window"),
            ("bank-a", "credit-grade", foodCode, "loan_application", [("model", String(repeating: "x", count: 100))], nowMillis, nil, "parameters_too_large"),
            ("bank-a", "credit-grade", blank.code, "loan_application", [], nowMillis, nil, "unknown_subject"),
            ("bank-b", "credit-grade", blank.code, "loan_application", [], nowMillis, nil, "no_consent"),
            ("bank-a", "credit-grade", "91330106MA27XKT2X5", "loan_application", [], nowMillis, nil, "invalid_uscc"),
            ("bank-a", "industry-statistics", "", "statistics", [("model", "enterprise"), ("industry", "I65")], nowMillis, nil, "cell_under_k"),
            ("bank-a", "credit-grade", foodCode, "statistics", [], nowMillis, nil, "purpose_not_allowed"),
            ("bank-a", "credit-grade", foodCode, "lending", [], nowMillis, nil, "purpose_not_allowed"),
        ]
        for (member, policyName, subject, purpose, params, at, signer, reason) in cases {
            let (_, out) = try await ask(member, policyName, subject: subject, purpose: purpose, params: params, at: at, signWith: signer)
            XCTAssertFalse(out.answered, "\(reason): should be refused")
            XCTAssertEqual(out.receipt.reason, reason, out.receipt.message)
            XCTAssertEqual(out.receipt.result, "", "a refusal carries no result")
            if reason == "cell_under_k" {
                // The size of a cell too small to show is not told: only the threshold is.
                XCTAssertEqual(out.receipt.message.filter(\.isNumber), "6510", out.receipt.message)
            }
            try assertRecorded(out.receipt, reason)
        }
        // A replayed request: the same signed bytes twice.
        let (bytes, first) = try await ask("bank-a", "credit-grade", subject: foodCode, purpose: "loan_application")
        XCTAssertTrue(first.answered)
        let replay = try await service.handle(bytes)
        XCTAssertEqual(replay.receipt.reason, "replayed_request")
        try assertRecorded(replay.receipt, "replayed_request")
        // The refusal names the record that used the nonce, so a client whose answer was lost learns where it went.
        let audit = try XCTUnwrap(first.receipt.facts.first { $0.role == "audit_record" })
        let auditID = try Transaction.decode(XCTUnwrap([UInt8](base64: audit.transaction))).id
        XCTAssertTrue(replay.receipt.message.contains("by query record \(auditID.hexString) at log index \(audit.log_index)"), replay.receipt.message)
        XCTAssertTrue(replay.receipt.message.contains("which recorded it answered"), replay.receipt.message)
        // An unknown requester is refused on the record too.
        var stranger = QueryRequest(chainID: consortium.genesis.chainID, requester: "bank-z", keyID: 1, policy: policy("credit-grade"),
                                    subject: foodCode, purpose: "loan_application", parameters: [], nonce: 1, issuedAtMillis: nowMillis)
        stranger.sign(with: Ed25519PrivateKey())
        let s = try await service.handle(stranger.encoded)
        XCTAssertEqual(s.receipt.reason, "unknown_requester")
        // A member's request naming another key id says so, not that its signature failed.
        let bankA = try XCTUnwrap(consortium.genesis.member("bank-a"))
        var wrongKeyID = QueryRequest(chainID: consortium.genesis.chainID, requester: "bank-a", keyID: bankA.keyID &+ 1, policy: policy("credit-grade"),
                                      subject: foodCode, purpose: "loan_application", parameters: [], nonce: nextNonce(), issuedAtMillis: nowMillis)
        wrongKeyID.sign(with: consortium.keys["bank-a"]!.signing)
        let k = try await service.handle(wrongKeyID.encoded)
        XCTAssertEqual(k.receipt.reason, "bad_signature")
        XCTAssertTrue(k.receipt.message.contains("names key id \(bankA.keyID &+ 1), but bank-a's key in genesis has key id \(bankA.keyID)"), k.receipt.message)
        // Bytes that are not a query are an error, not a record.
        do { _ = try await service.handle([1, 2, 3]); XCTFail("garbage accepted") } catch {}
        // The subject can see every refused look at it.
        let (_, log) = try await ask("samr", "my-queries", subject: foodCode, purpose: "subject_access")
        let reasons = (try fields(log.receipt)["queries"] as! [[String: Any]]).compactMap { $0["reason"] as? String }
        XCTAssertTrue(Set(["no_consent", "consent_expired", "wrong_role", "bad_signature", "replayed_request"]).isSubset(of: Set(reasons)), "\(reasons)")
    }

    /// A consent must stand when the node answers as well as when the request was signed: a
    /// request signed 200 s ago (inside the 300 s window) under a consent that expired 100 s ago
    /// is refused, and one whose consent still stands is answered.
    func testAConsentThatExpiredSinceTheRequestWasSignedDoesNotAnswer() async throws {
        _ = try await consent(blank, to: "bank-b", .loanApplication, expiresAt: (nowMillis - 100_000) / 1000)
        let (_, late) = try await ask("bank-b", "credit-grade", subject: blank.code, purpose: "loan_application", at: nowMillis - 200_000)
        XCTAssertEqual(late.receipt.reason, "consent_expired", late.receipt.message)
        try assertRecorded(late.receipt, "consent_expired")
        _ = try await consent(blank, to: "bank-b", .loanApplication, expiresAt: (nowMillis + 100_000) / 1000)
        let (_, inTime) = try await ask("bank-b", "credit-grade", subject: blank.code, purpose: "loan_application", at: nowMillis - 200_000)
        XCTAssertNotEqual(inTime.receipt.reason, "consent_expired", inTime.receipt.message)
        XCTAssertNotEqual(inTime.receipt.reason, "no_consent", inTime.receipt.message)
    }

    /// The consent an answer names is chosen at the request's signed time, as validators check it,
    /// not at the answering node's clock: with an older grant that still stands and a newer one
    /// that expired between signing and answering, the node refuses rather than answer under the
    /// older one, which another node (or a re-run) would not have named (found in review).
    func testTheConsentAnAnswerNamesIsChosenAtTheSignedTime() async throws {
        let older = try await consent(food, to: "bank-b", .loanApplication, expiresAt: (nowMillis + 600_000) / 1000)
        _ = try await consent(food, to: "bank-b", .loanApplication, expiresAt: (nowMillis - 100_000) / 1000)
        let (_, late) = try await ask("bank-b", "credit-grade", subject: food.code, purpose: "loan_application", at: nowMillis - 200_000)
        XCTAssertEqual(late.receipt.reason, "consent_expired", late.receipt.message)
        XCTAssertTrue(late.receipt.message.contains("expired after the request was signed"), late.receipt.message)
        // Signed now, the newer grant has expired at the signed time: the older one answers.
        let (_, now) = try await ask("bank-b", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(now.answered, now.receipt.message)
        XCTAssertTrue(now.receipt.result.contains("\"consent\":\"\(older.hexString)\""), now.receipt.result)
    }

    /// Refusals reach the ledger within a budget: per member for requests it signed, one shared
    /// bucket for requests that prove no member's key. Over it, a request is turned away with
    /// `rateLimited` and nothing is recorded; answers are never limited; time refills the budget.
    func testRefusalsAreRecordedWithinABudgetAndAnswersAreNotLimited() async throws {
        let clock = ManualClock(nowMillis)
        let limited = try QueryService(ledger: ledger, clock: { clock.now }, refusalBudget: RefusalBudget(
            authenticated: .init(burst: 3, perSecond: 1), unauthenticated: .init(burst: 2, perSecond: 1)))
        let foodCode = food.code, listedCode = listed.code
        func request(_ member: String, _ subject: String, signWith: String?) -> [UInt8] {
            signedRequest(member, "credit-grade", subject: subject, at: clock.now,
                          key: signWith.map { consortium.keys[$0]!.signing } ?? Ed25519PrivateKey())
        }
        func send(_ member: String, _ subject: String, signWith: String? = nil) async throws -> QueryService.Outcome {
            try await limited.handle(request(member, subject, signWith: signWith))
        }
        @discardableResult
        func assertTurnedAway(_ member: String, _ subject: String, signWith: String?, naming: String, line: UInt = #line) async throws -> String {
            let reason = try await turnedAway(limited, request(member, subject, signWith: signWith), line: line)
            XCTAssertTrue(reason.contains(naming), reason, line: line)
            return reason
        }

        // Forgeries (bank-a's name, bank-b's key) and strangers share the unauthenticated bucket of 2.
        for _ in 0..<2 { let r = try await send("bank-a", foodCode, signWith: "bank-b").receipt.reason; XCTAssertEqual(r, "bad_signature") }
        try await assertTurnedAway("bank-a", foodCode, signWith: "bank-b", naming: "bad_signature")
        try await assertTurnedAway("bank-z", foodCode, signWith: nil, naming: "unknown_requester")
        // That does not touch bank-b's budget for refusals of requests it signed (3)...
        for _ in 0..<3 { let r = try await send("bank-b", foodCode, signWith: "bank-b").receipt.reason; XCTAssertEqual(r, "no_consent") }
        try await assertTurnedAway("bank-b", foodCode, signWith: "bank-b", naming: "signed by bank-b")
        // ...nor bank-a's, and answers are never counted.
        for _ in 0..<5 { let answered = try await send("bank-a", foodCode, signWith: "bank-a").answered; XCTAssertTrue(answered) }
        let revoked = try await send("bank-a", listedCode, signWith: "bank-a").receipt.reason
        XCTAssertEqual(revoked, "consent_revoked")
        // A second refills one of each.
        clock.advance(1_000)
        let forged = try await send("bank-a", foodCode, signWith: "bank-b").receipt.reason
        XCTAssertEqual(forged, "bad_signature")
        try await assertTurnedAway("bank-a", foodCode, signWith: "bank-b", naming: "bad_signature")
        let refused = try await send("bank-b", foodCode, signWith: "bank-b").receipt.reason
        XCTAssertEqual(refused, "no_consent")
        // Past its budget a member's request is turned away before evaluation: the reply does
        // not say what the refusal would have been, since it would not be on the record.
        let withheld = try await assertTurnedAway("bank-b", foodCode, signWith: "bank-b", naming: "was not evaluated or recorded")
        XCTAssertFalse(withheld.contains("no_consent") || withheld.contains("consent"), withheld)
    }

    /// Anyone can have a refusal recorded about any subject: by sending a request that does not
    /// verify, or a copy of a genuine one late or twice. Found by black-box testing: 200 such
    /// refusals pushed every real query out of the subject's query log; and in review, that
    /// stale copies of a genuine request were not counted among them, and that a flood past the
    /// records the log read still hid everything. Now the rows are the confirmed queries (from
    /// their own index), with at most a tenth given to the newest other refusals, which say
    /// so; what is left out is stated beside them; the receipt still verifies.
    func testForgedRequestsCannotPushRealQueriesOutOfTheQueryLog() async throws {
        let clock = ManualClock(nowMillis)
        let open = try QueryService(ledger: ledger, clock: { clock.now }, refusalBudget: RefusalBudget(
            authenticated: .init(burst: 1_000, perSecond: 1), unauthenticated: .init(burst: 3_000, perSecond: 1)))
        let foodCode = food.code
        var copy: [UInt8] = []
        for i in 0..<2 {
            let request = signedRequest("bank-a", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-a"]!.signing)
            if i == 0 { copy = request }
            let answered = try await open.handle(request).answered
            XCTAssertTrue(answered)
        }
        // bank-b asks without consent: refused, but bank-b did ask: a confirmed row.
        let refused = try await open.handle(signedRequest("bank-b", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-b"]!.signing))
        XCTAssertEqual(refused.receipt.reason, "no_consent")
        // More forged and copied requests than the log has rows, and more than ten times that.
        let flood = 2_300
        for i in 0..<flood {
            if i % 2 == 0 {
                let r = try await open.handle(signedRequest("bank-a", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-b"]!.signing)).receipt.reason
                XCTAssertEqual(r, "bad_signature")
            } else {
                let r = try await open.handle(copy).receipt.reason
                XCTAssertEqual(r, "replayed_request")
            }
        }
        let log = try await open.handle(signedRequest("samr", "my-queries", subject: foodCode, purpose: "subject_access", at: clock.now,
                                                      key: consortium.keys["samr"]!.signing))
        XCTAssertTrue(log.answered, log.receipt.message)
        XCTAssertNoThrow(try log.receipt.verify(genesis: consortium.genesis))
        let f = try fields(log.receipt)
        let rows = try XCTUnwrap(f["queries"] as? [[String: Any]])
        let unconfirmed = rows.filter { $0["requester_confirmed"] as? Bool == false }
        XCTAssertEqual(unconfirmed.count, 20, "a tenth of the 200 rows")
        XCTAssertEqual(Set(unconfirmed.compactMap { $0["reason"] as? String }), ["bad_signature", "replayed_request"])
        let real = rows.filter { $0["requester_confirmed"] as? Bool == true }
        XCTAssertEqual(real.filter { $0["outcome"] as? String == "answered" && $0["requester"] as? String == "bank-a" }.count, 2,
                       "bank-a's two answered queries were pushed out: \(rows.count) rows")
        XCTAssertTrue(real.contains { $0["reason"] as? String == "no_consent" && $0["requester"] as? String == "bank-b" }, "bank-b's refused query is missing")
        XCTAssertEqual(Array(rows.prefix(20).map { $0["requester_confirmed"] as? Bool }), Array(repeating: false, count: 20), "newest first")
        let notListed = try XCTUnwrap(f["queries/not_listed"] as? [String: Any], log.receipt.result)
        XCTAssertEqual(notListed["unconfirmed_refusals"] as? Int, 200 - 20, "among the newest 200 records")
        XCTAssertEqual(notListed["older_confirmed_queries"] as? Bool, false)
    }

    /// A member's own signed requests, refused and recorded, are confirmed rows (the member did
    /// ask), so 205 of them from bank-b pushed bank-a's two answers off the 200-row page of
    /// my-queries version 1 (found in review, 2026-12-07). Version 2 pages back: the first page
    /// says where the next starts, and the second lists the answers and the rest of the burst.
    func testTheQueryLogPagesBackPastABurstOfAMembersOwnRefusals() async throws {
        let clock = ManualClock(nowMillis)
        let open = try QueryService(ledger: ledger, clock: { clock.now }, refusalBudget: RefusalBudget(
            authenticated: .init(burst: 1_000, perSecond: 1), unauthenticated: .init(burst: 1_000, perSecond: 1)))
        let foodCode = food.code
        for _ in 0..<2 {
            let answered = try await open.handle(signedRequest("bank-a", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-a"]!.signing))
            XCTAssertTrue(answered.answered, answered.receipt.message)
        }
        let burst = 205
        for _ in 0..<burst {
            let r = try await open.handle(signedRequest("bank-b", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-b"]!.signing))
            XCTAssertEqual(r.receipt.reason, "no_consent")
        }
        func page(before: String?) async throws -> (rows: [[String: Any]], notListed: [String: Any], result: String) {
            let log = try await open.handle(signedRequest("samr", "my-queries", subject: foodCode, purpose: "subject_access",
                                                          params: before.map { [("before_log_index", $0)] } ?? [], at: clock.now,
                                                          key: consortium.keys["samr"]!.signing))
            XCTAssertTrue(log.answered, log.receipt.message)
            XCTAssertNoThrow(try log.receipt.verify(genesis: consortium.genesis))
            let f = try fields(log.receipt)
            return (try XCTUnwrap(f["queries"] as? [[String: Any]]), try XCTUnwrap(f["queries/not_listed"] as? [String: Any]), log.receipt.result)
        }
        func answers(_ rows: [[String: Any]]) -> Int { rows.filter { $0["outcome"] as? String == "answered" && $0["requester"] as? String == "bank-a" }.count }
        let first = try await page(before: nil)
        XCTAssertEqual(first.rows.count, 200)
        XCTAssertEqual(answers(first.rows), 0, "the burst fills the newest page")
        XCTAssertEqual(first.notListed["older_confirmed_queries"] as? Bool, true)
        let next = try XCTUnwrap(first.notListed["next_before"] as? Int, "\(first.notListed)")
        XCTAssertEqual(PolicyEngine.nextBefore(inResult: first.result), UInt64(next), "what credit-node query tells its user")
        let second = try await page(before: String(next))
        XCTAssertEqual(answers(second.rows), 2, "bank-a's answers are on the second page")
        XCTAssertEqual(second.rows.filter { $0["requester"] as? String == "bank-b" }.count, burst - 200)
        // The first page's own record (samr asking) is newer than the bound: not on the second.
        XCTAssertFalse(second.rows.contains { $0["requester"] as? String == "samr" })
        XCTAssertEqual(second.notListed["older_confirmed_queries"] as? Bool, false)
        XCTAssertTrue(second.notListed["next_before"] is NSNull, "\(second.notListed)")
        XCTAssertNil(PolicyEngine.nextBefore(inResult: second.result))
        XCTAssertNil(PolicyEngine.nextBefore(inResult: #"{"fields":{"q/not_listed":{"next_before":true}}}"#))
        // A bound of 0 lists nothing; one past the log lists the newest page, as no bound does.
        let none = try await page(before: "0")
        XCTAssertTrue(none.rows.isEmpty)
        let beyond = try await page(before: "999999999999")
        XCTAssertEqual(beyond.rows.count, 200)
        // The bound is checked as the integer parameter it is.
        let bad = try await open.handle(signedRequest("samr", "my-queries", subject: foodCode, purpose: "subject_access",
                                                      params: [("before_log_index", "-1")], at: clock.now, key: consortium.keys["samr"]!.signing))
        XCTAssertEqual(bad.receipt.reason, "invalid_parameters", bad.receipt.message)
    }

    /// Pages of the query log list each record once: a forged request's refusal (unconfirmed)
    /// older than a page's oldest confirmed row waits for the next page. It was listed on both
    /// (found in review, 2026-12-07).
    func testQueryLogPagesListEachRefusalOnce() async throws {
        let clock = ManualClock(nowMillis)
        let open = try QueryService(ledger: ledger, clock: { clock.now }, refusalBudget: RefusalBudget(
            authenticated: .init(burst: 1_000, perSecond: 1), unauthenticated: .init(burst: 1_000, perSecond: 1)))
        let foodCode = food.code
        func bankB() async throws {
            let r = try await open.handle(signedRequest("bank-b", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-b"]!.signing))
            XCTAssertEqual(r.receipt.reason, "no_consent")
        }
        for _ in 0..<5 { try await bankB() }
        for _ in 0..<3 {
            let forged = try await open.handle(signedRequest("bank-a", "credit-grade", subject: foodCode, at: clock.now, key: consortium.keys["bank-b"]!.signing))
            XCTAssertEqual(forged.receipt.reason, "bad_signature")
        }
        for _ in 0..<197 { try await bankB() }
        var seen: [String: Int] = [:]
        var uncounted = 0
        var before: String? = nil
        var pages = 0
        repeat {
            let log = try await open.handle(signedRequest("samr", "my-queries", subject: foodCode, purpose: "subject_access",
                                                          params: before.map { [("before_log_index", $0)] } ?? [], at: clock.now,
                                                          key: consortium.keys["samr"]!.signing))
            XCTAssertTrue(log.answered, log.receipt.message)
            let f = try fields(log.receipt)
            for row in try XCTUnwrap(f["queries"] as? [[String: Any]]) where row["requester"] as? String != "samr" {
                seen[row["audit_record"] as! String, default: 0] += 1
            }
            uncounted += (f["queries/not_listed"] as? [String: Any])?["unconfirmed_refusals"] as? Int ?? 0
            before = PolicyEngine.nextBefore(inResult: log.receipt.result).map(String.init)
            pages += 1
        } while before != nil && pages < 5
        XCTAssertEqual(pages, 2)
        XCTAssertEqual(seen.count, 5 + 3 + 197, "every record about the subject, over the two pages")
        XCTAssertEqual(seen.filter { $0.value > 1 }.count, 0, "listed twice: \(seen.filter { $0.value > 1 })")
        XCTAssertEqual(uncounted, 0, "every refusal was listed, so none is left to count (a deferred one was counted on the first page too)")
    }

    /// A copy of a member's signed request, replayed or sent late, is charged to the shared
    /// bucket, so whoever holds one (a receipt carries the request) cannot spend the member's
    /// budget. A member with an empty budget is turned away even for a query that would be
    /// answered; an answered query gives its reserved refusal back.
    func testReplaysUseTheSharedBudgetAndAnswersGiveTheirReservationBack() async throws {
        let clock = ManualClock(nowMillis)
        let limited = try QueryService(ledger: ledger, clock: { clock.now }, refusalBudget: RefusalBudget(
            authenticated: .init(burst: 1, perSecond: 1), unauthenticated: .init(burst: 2, perSecond: 1)))
        func request(_ subject: String, issuedAt: UInt64? = nil) -> [UInt8] {
            signedRequest("bank-a", "credit-grade", subject: subject, at: issuedAt ?? clock.now, key: consortium.keys["bank-a"]!.signing)
        }
        func rateLimited(_ bytes: [UInt8], line: UInt = #line) async throws -> String { try await self.turnedAway(limited, bytes, line: line) }
        let answerable = request(food.code)
        let answered = try await limited.handle(answerable).answered
        XCTAssertTrue(answered)
        // Someone replays it, and sends one signed long ago: the shared bucket (2) pays.
        let replayed = try await limited.handle(answerable).receipt.reason
        XCTAssertEqual(replayed, "replayed_request")
        let stale = try await limited.handle(request(food.code, issuedAt: clock.now - 3_600_000)).receipt.reason
        XCTAssertEqual(stale, "outside_time_window")
        let turnedAway = try await rateLimited(answerable)
        XCTAssertTrue(turnedAway.contains("replayed_request") && turnedAway.contains("do not show a member asking"), turnedAway)
        // bank-a's own budget (1) is untouched: its refused query is recorded...
        let revoked = try await limited.handle(request(listed.code)).receipt.reason
        XCTAssertEqual(revoked, "consent_revoked")
        // ...and now empty, so even an answerable query waits for the refill.
        let waiting = try await rateLimited(request(food.code))
        XCTAssertTrue(waiting.contains("signed by bank-a") && waiting.contains("retry in 1000 ms"), waiting)
        clock.advance(1_000)
        // Answers reserve a refusal and give it back: any number of them leave the budget whole.
        for _ in 0..<3 { let a = try await limited.handle(request(food.code)).answered; XCTAssertTrue(a) }
        let refusedAgain = try await limited.handle(request(listed.code)).receipt.reason
        XCTAssertEqual(refusedAgain, "consent_revoked")
        _ = try await rateLimited(request(listed.code))
        XCTAssertEqual(limited.turnedAway, 3)
    }

    func testRefusalBudgetArithmetic() {
        var b = RefusalBudget(authenticated: .init(burst: 2, perSecond: 4), unauthenticated: .init(burst: 1, perSecond: 1))
        let t: UInt64 = 1_000_000
        XCTAssertNil(b.take(.member("bank-a"), nowMillis: t))
        XCTAssertNil(b.take(.member("bank-a"), nowMillis: t))
        XCTAssertEqual(b.take(.member("bank-a"), nowMillis: t), 250, "4 a second: one every 250 ms")
        XCTAssertEqual(b.take(.member("bank-a"), nowMillis: t + 100), 150)
        XCTAssertNil(b.take(.member("bank-a"), nowMillis: t + 250))
        XCTAssertNil(b.take(.member("bank-b"), nowMillis: t), "members have buckets of their own")
        XCTAssertNil(b.take(.unauthenticated, nowMillis: t))
        XCTAssertEqual(b.take(.unauthenticated, nowMillis: t), 1_000)
        XCTAssertEqual(b.take(.unauthenticated, nowMillis: t - 5_000), 1_000, "a clock stepping back refills nothing")
        XCTAssertNil(b.take(.unauthenticated, nowMillis: t + 1_000))
        // A long pause refills to the burst, no further.
        XCTAssertNil(b.take(.member("bank-a"), nowMillis: .max / 2))
        XCTAssertNil(b.take(.member("bank-a"), nowMillis: .max / 2))
        XCTAssertNotNil(b.take(.member("bank-a"), nowMillis: .max / 2))
    }

    /// A policy that would leak, put into a hand-written genesis, is not loaded by a node (its
    /// queries answer 503, naming it) and fails the offline chain check: it was "intact" there
    /// (found by black-box testing, 2026-12-07).
    func testALeakingPolicyInTheGenesisFailsTheChainCheck() throws {
        let leaky = Array("""
        {"format": "creditledger-policy/v1", "name": "bank-raw", "version": 1, "scope": "subject",
         "callers": {"roles": ["bank"]}, "purposes": ["loan_application"], "consent": {"required": true},
         "outputs": [{"name": "records", "from": "records"}]}
        """.utf8)
        let bad = try PolicyConsortium(extraPolicies: [InstalledPolicy(name: "bank-raw", version: 1, document: leaky, logIndex: nil)])
        let path = dir + "-leaky"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let badStore = try ChainStore.create(path: path, genesis: bad.genesis)
        var source = StoreBlockSource(store: badStore)
        XCTAssertThrowsError(try ChainVerifier(genesis: bad.genesis).verify(&source)) { error in
            XCTAssertTrue("\(error)".contains("genesis policy bank-raw version 1 is not one validators would install") && "\(error)".contains("raw payload"), "\(error)")
        }
        let badLedger = try Ledger(store: badStore, validatorKeys: bad.keys["samr"]!, clock: { nowMillis }, blockInterval: .zero)
        XCTAssertThrowsError(try QueryService(ledger: badLedger, clock: { nowMillis })) { error in
            XCTAssertTrue("\(error)".contains("genesis policy bank-raw v1 is not valid"), "\(error)")
        }
        // The shipped genesis passes.
        var good = StoreBlockSource(store: store)
        XCTAssertNoThrow(try ChainVerifier(genesis: consortium.genesis).verify(&good))
    }

    /// A listing dated after the as-of date counts nowhere yet: the loan pre-check refused a
    /// loan for it while risk flags said "false" and the score had no veto (found by
    /// black-box testing, 2026-12-07).
    func testAListingDatedAfterTheAsOfDateDecidesNoLoan() async throws {
        try await submit([try attestation(food, .seriousViolationList, "2999-12-31", payload: "listed some day")])
        let (_, pre) = try await ask("bank-a", "loan-pre-check", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(pre.answered, pre.receipt.message)
        XCTAssertFalse(pre.receipt.result.contains("listed_serious_violation_list"), pre.receipt.result)
        let (_, flags) = try await ask("bank-a", "risk-flags", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(flags.receipt.result.contains(#""serious_violation_list":false"#), flags.receipt.result)
    }

    func testPolicyThatWouldLeakRawFieldsToBanksIsRejectedAtInstallation() async throws {
        let leaky = """
        {"format": "creditledger-policy/v1", "name": "bank-raw", "version": 1, "scope": "subject",
         "callers": {"roles": ["bank"]}, "purposes": ["loan_application"], "consent": {"required": true},
         "outputs": [{"name": "records", "from": "records"}]}
        """
        let noConsent = """
        {"format": "creditledger-policy/v1", "name": "bank-peek", "version": 1, "scope": "subject",
         "callers": {"roles": ["bank"]}, "purposes": ["supervision"], "outputs": [{"name": "grade", "from": "grade"}]}
        """
        let smallCells = """
        {"format": "creditledger-policy/v1", "name": "tiny-cells", "version": 1, "scope": "aggregate",
         "callers": {"roles": ["bank"]}, "purposes": ["statistics"], "min_cell_subjects": 3,
         "outputs": [{"name": "n", "from": "subject_count"}]}
        """
        for (doc, expected) in [(leaky, "raw payload"), (noConsent, "consent"), (smallCells, "at least 10")] {
            let bytes = Array(doc.utf8)
            let p = try? PolicyDocument(bytes: bytes, genesis: consortium.genesis)
            XCTAssertNil(p)
            let s = try QueryClient.installPolicy(genesis: consortium.genesis, document: bytes, name: "x", version: 1,
                                                  submitter: consortium.keys["samr"]!,
                                                  approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                  nonce: nextNonce(), issuedAtMillis: nowMillis)
            do {
                try await submit([s])
                XCTFail("installed a policy that must be refused: \(expected)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        // A parameter no value could meet (max below 0), or a max on a parameter that is not an
        // integer: refused by the tools before approval, and by validators (a dated rule: a
        // certified block keeps such an install).
        let negative = """
        {"format": "creditledger-policy/v1", "name": "lp-negative", "version": 1, "scope": "subject",
         "callers": {"roles": ["bank"]}, "purposes": ["loan_application"], "consent": {"required": true},
         "parameters": [{"name": "amount_yuan", "type": "integer", "max": -5}],
         "outputs": [{"name": "grade", "from": "grade"}]}
        """
        let maxOnModel = negative.replacingOccurrences(of: #""type": "integer", "max": -5"#, with: #""type": "model_name", "max": 5"#)
            .replacingOccurrences(of: "lp-negative", with: "lp-model-max")
        // A flag with a minimum severity over a category that carries none (it could never be
        // true, and told banks a listed subject was not), and a purpose listed twice.
        let neverTrue = """
        {"format": "creditledger-policy/v1", "name": "lp-never", "version": 1, "scope": "subject",
         "callers": {"roles": ["bank"]}, "purposes": ["loan_application"], "consent": {"required": true},
         "outputs": [{"name": "listed", "from": "flag", "categories": ["serious_violation_list"], "min_severity": "serious"}]}
        """
        let listedTwice = negative.replacingOccurrences(of: #""purposes": ["loan_application"]"#, with: #""purposes": ["loan_application", "loan_application"]"#)
            .replacingOccurrences(of: #", "max": -5"#, with: "").replacingOccurrences(of: "lp-negative", with: "lp-twice")
        for (doc, name, expected) in [(negative, "lp-negative", "max -5 is negative"), (maxOnModel, "lp-model-max", "max applies to integer parameters only"),
                                      (neverTrue, "lp-never", "output listed: min_severity applies only to categories that carry a severity, and serious_violation_list carries none"),
                                      (listedTwice, "lp-twice", "purpose loan_application is listed twice")] {
            let bytes = Array(doc.utf8)
            XCTAssertNotNil(try? PolicyDocument(bytes: bytes, genesis: consortium.genesis), "it parses, so ledgers holding one still load")
            XCTAssertThrowsError(try QueryClient.policyProposal(genesis: consortium.genesis, document: bytes)) {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
            XCTAssertThrowsError(try PolicyFiles.forGenesis([(source: "p.json", bytes: bytes)], members: consortium.genesis), "a new genesis too") {
                XCTAssertTrue("\($0)".contains(expected), "\($0)")
            }
            let s = try QueryClient.installPolicy(genesis: consortium.genesis, document: bytes, name: name, version: 1,
                                                  submitter: consortium.keys["samr"]!,
                                                  approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                  nonce: nextNonce(), issuedAtMillis: nowMillis)
            do { try await submit([s]); XCTFail("installed: \(expected)") } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
            let validator = TransactionValidator(genesis: consortium.genesis, policyRules: PolicyRules())
            XCTAssertNoThrow(try validator.checkStateful(s.transaction, state: store, certified: true))
        }
        // A sound policy installs by governance with both bureaus' approval, and is then usable.
        var doc = try Files.read("Genesis/policies/credit-grade.json")
        doc = Array(String(decoding: doc, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2").utf8)
        let missing = try QueryClient.installPolicy(genesis: consortium.genesis, document: doc, name: "credit-grade", version: 2,
                                                    submitter: consortium.keys["samr"]!, approvers: [consortium.keys["samr"]!],
                                                    nonce: nextNonce(), issuedAtMillis: nowMillis)
        do { try await submit([missing]); XCTFail("one bureau alone installed a policy") } catch {
            XCTAssertTrue("\(error)".contains("data-bureau"), "\(error)")
        }
        let ok = try QueryClient.installPolicy(genesis: consortium.genesis, document: doc, name: "credit-grade", version: 2,
                                               submitter: consortium.keys["samr"]!,
                                               approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                               nonce: nextNonce(), issuedAtMillis: nowMillis)
        try await submit([ok])
        XCTAssertEqual(store.latestPolicy(name: "credit-grade")?.version, 2)
        let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        XCTAssertTrue(out.receipt.facts.contains { $0.role == "policy" }, "a governance-installed policy is proven too")
        _ = try out.receipt.verify(genesis: consortium.genesis)
        // `credit-verify receipt` names it from its verified install fact (it printed the bare hash).
        do {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("policy-name-\(UUID())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try JSONEncoder().encode(out.receipt).write(to: URL(fileURLWithPath: dir + "/answer.json"))
            try Data(consortium.genesis.bytes).write(to: URL(fileURLWithPath: dir + "/genesis.json"))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try XCTUnwrap(BuiltTools.path("credit-verify")))
            process.arguments = ["receipt", dir + "/answer.json", "--genesis", dir + "/genesis.json"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, text)
            XCTAssertTrue(text.contains("under credit-grade@2 for loan_application"), text)
        }
        // The policy fact is checked like the others, signature first: a copy whose signature
        // does not verify is named for it (it used to be checked for inclusion only).
        var forged = out.receipt
        let at = forged.facts.firstIndex { $0.role == "policy" }!
        var txBytes = [UInt8](base64: forged.facts[at].transaction)!
        txBytes[txBytes.count - 1] ^= 0x01
        forged.facts[at].transaction = txBytes.base64String
        XCTAssertThrowsError(try forged.verify(genesis: consortium.genesis)) {
            XCTAssertTrue("\($0)".contains("(policy): badSignature: signature does not verify with samr's key"), "\($0)")
        }
        // A receipt for the install_policy transaction itself verifies offline, with the policy engine.
        let installReceipt = try store.receipt(for: ok.transaction.id)
        XCTAssertEqual(try installReceipt.verify(genesis: consortium.genesis, policyRules: PolicyRules()).transaction.id, ok.transaction.id)
        // The chain with query records and a policy install verifies end to end.
        var source = StoreBlockSource(store: store)
        _ = try ChainVerifier(genesis: consortium.genesis).verify(&source)

        // Two installs of one name and version in one block (each new to the committed state,
        // which is all the stateful rules see) are refused, by consensus and by the verifier.
        let v3 = String(decoding: doc, as: UTF8.self).replacingOccurrences(of: "\"version\": 2", with: "\"version\": 3")
        let installs = try [v3, v3.replacingOccurrences(of: "\"width\": 50", with: "\"width\": 100")].map {
            try QueryClient.installPolicy(genesis: consortium.genesis, document: Array($0.utf8), name: "credit-grade", version: 3,
                                          submitter: consortium.keys["samr"]!, approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                          nonce: nextNonce(), issuedAtMillis: nowMillis)
        }
        XCTAssertNotEqual(installs[0].transaction.id, installs[1].transaction.id)
        XCTAssertTrue(installs[0].transaction.blockExclusiveClaims.contains("policy credit-grade version 3"))
        let twice = try ChainStore.create(path: dir + "-twice", genesis: consortium.genesis)
        defer { try? FileManager.default.removeItem(atPath: dir + "-twice") }
        try twice.appendBlock(installs, timestampMillis: nowMillis, proposer: "samr", signers: [(consortium.genesis.member("samr")!, consortium.keys["samr"]!.signing)])
        var twiceSource = StoreBlockSource(store: twice)
        XCTAssertThrowsError(try ChainVerifier(genesis: consortium.genesis).verify(&twiceSource)) { error in
            XCTAssertTrue("\(error)".contains("policy credit-grade version 3 is claimed twice in the block"), "\(error)")
        }
    }

    /// A registration whose envelope does not open (validators cannot decrypt, so an issuer's
    /// bug can commit one) does not break queries about the subject: the grade is answered and
    /// names nobody, and the bureau's full profile marks that record unreadable.
    func testARecordWhoseEnvelopeDoesNotOpenLeavesTheAnswerNamingNobody() async throws {
        let broken = uscc(division: "330106")
        let good = try attestation(broken, .registration, "2021-03-01", payload: "{\"name\":\"无法解密的公司\"}")
        var bytes = try XCTUnwrap(good.envelope).encoded
        bytes[1 + 24 + 4 + 40] ^= 0x01   // a ciphertext byte: authentication fails for every custodian
        let damaged = try Envelope.decode(bytes)
        guard case .attestation(var body) = good.transaction.body else { return XCTFail("not an attestation") }
        body.envelopeHash = damaged.hash
        let record = Submission(transaction: Transaction.sign(header: header("samr"), body: .attestation(body), key: consortium.keys["samr"]!.signing),
                                envelope: damaged)
        try await submit([record])
        try await score([broken])
        _ = try await consent(broken, to: "bank-a", .loanApplication, expiresAt: nowMillis / 1000 + 30 * 86_400)
        let (_, out) = try await ask("bank-a", "credit-grade", subject: broken.code, purpose: "loan_application")
        XCTAssertTrue(out.answered, out.receipt.message)
        XCTAssertEqual(try fields(out.receipt)["name"] as? String, "", "an unreadable registration names nobody")
        let (_, profile) = try await ask("samr", "full-profile", subject: broken.code, purpose: "supervision")
        XCTAssertTrue(profile.answered, profile.receipt.message)
        XCTAssertTrue(profile.receipt.result.contains("\"unreadable\":true"), profile.receipt.result)
    }

    /// A record committed from a catch-up block whose server stripped its envelope is not
    /// shredded: the envelope is only not here yet. The bureau's full profile must say the record
    /// is unreadable for now, never that it was erased.
    func testARecordWhoseEnvelopeHasNotArrivedIsNotReportedShredded() async throws {
        let late = uscc(division: "330106")
        let record = try attestation(late, .registration, "2021-03-01", payload: "{\"name\":\"迟到的公司\"}")
        let path = dir + "-late"
        let lateStore = try ChainStore.create(path: path, genesis: consortium.genesis)
        let samr = (consortium.genesis.member("samr")!, consortium.keys["samr"]!.signing)
        try lateStore.appendBlock([Submission(transaction: record.transaction, envelope: nil)], timestampMillis: nowMillis,
                                  proposer: "samr", signers: [samr])
        XCTAssertTrue(try lateStore.isMissingEnvelope(record.transaction.id))
        let lateLedger = try Ledger(store: lateStore, validatorKeys: consortium.keys["samr"]!, clock: { nowMillis }, blockInterval: .zero)
        let lateProducer = Task { await lateLedger.runBlockProducer() }
        let (savedStore, savedService) = (store, service)
        store = lateStore
        service = try QueryService(ledger: lateLedger, clock: { nowMillis })
        defer {
            lateProducer.cancel()
            (store, service) = (savedStore, savedService)
            try? FileManager.default.removeItem(atPath: path)
        }
        let (_, profile) = try await ask("samr", "full-profile", subject: late.code, purpose: "supervision")
        XCTAssertTrue(profile.answered, profile.receipt.message)
        XCTAssertTrue(profile.receipt.result.contains("\"unreadable\":true"), profile.receipt.result)
        XCTAssertFalse(profile.receipt.result.contains("shredded"), profile.receipt.result)
        lateProducer.cancel()
        _ = await lateProducer.value
    }

    /// The node keeps masked names it derived from registration payloads; erasing the
    /// registration record must end that: the next answer cannot name the subject any more.
    func testErasingTheRegistrationRecordEndsTheKeptMaskedName() async throws {
        for _ in 0..<2 {
            let (_, out) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
            XCTAssertTrue(out.answered, out.receipt.message)
            XCTAssertEqual(try fields(out.receipt)["name"] as? String, "杭**公司")
        }
        XCTAssertEqual(service.maskedNamesKept.names, 1)
        XCTAssertEqual(service.maskedNamesKept.hits, 1, "the second answer took the kept name")
        let registration = try store.subjectRecords(food, before: store.head.logSize, limit: 10).first {
            if case .attestation(let a) = $0.transaction.body { return a.category == .registration } else { return false }
        }!
        let erase = try QueryClient.eraseRecords(genesis: consortium.genesis, records: [registration.transaction.id], submitter: consortium.keys["samr"]!,
                                                 approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                 nonce: nextNonce(), issuedAtMillis: nowMillis)
        try await submit([erase])
        let (_, after) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(after.answered, after.receipt.message)
        XCTAssertEqual(try fields(after.receipt)["name"] as? String, "", "an erased registration names nobody")
        try assertRecorded(after.receipt, "")
    }

    /// The files under `directory` whose bytes contain `probe`.
    func filesHolding(_ probe: [UInt8], under directory: String) throws -> [String] {
        var found: [String] = []
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: directory))
        while let name = enumerator.nextObject() as? String {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            if data.range(of: Data(probe)) != nil { found.append(name) }
        }
        return found
    }

    /// A payload is sealed for one record: a bank that puts a committed record's commitment and
    /// envelope in a record of its own is refused, and so is a second record with one commitment
    /// in the same batch. The copy was taken, and kept the wrapped keys after the original was
    /// erased: a custodian's full-profile query still decrypted the erased payload (found in
    /// review, 2026-12-06).
    func testARecordCannotCarryAnotherRecordsSealedPayload() async throws {
        let penalty = try store.subjectRecords(food, before: store.head.logSize, limit: 10).first {
            if case .attestation(let a) = $0.transaction.body { return a.category == .penalty } else { return false }
        }!.transaction
        guard case .attestation(let original) = penalty.body, let envelope = try store.envelope(of: penalty.id) else { return XCTFail() }
        func copy(by signer: String, category: Category) -> Submission {
            let body = AttestationBody(subject: food, subjectKind: .enterprise, category: category, eventDate: original.eventDate,
                                       industry: "C13", payloadCommitment: original.payloadCommitment, envelopeHash: envelope.hash)
            return Submission(transaction: Transaction.sign(header: header(signer), body: .attestation(body), key: consortium.keys[signer]!.signing),
                              envelope: envelope)
        }
        do { try await submit([copy(by: "bank-a", category: .loanRepayment)]); XCTFail("a bank recorded a copy of a bureau's sealed payload") } catch {
            XCTAssertTrue("\(error)".contains("replay: payload commitment"), "\(error)")
            XCTAssertTrue("\(error)".contains("is already that of record \(penalty.id.hexString)"), "\(error)")
        }
        // Two new records sharing one commitment, in one batch or one after the other.
        let fresh = try attestation(food, .license, "2026-10-01", payload: "licence 2026-77")
        guard case .attestation(let body) = fresh.transaction.body else { return XCTFail() }
        var twin = body
        twin.category = .honor
        let second = Submission(transaction: Transaction.sign(header: header("samr"), body: .attestation(twin), key: consortium.keys["samr"]!.signing),
                                envelope: fresh.envelope)
        do { try await submit([fresh, second]); XCTFail("two records with one payload commitment in one batch") } catch {
            XCTAssertTrue("\(error)".contains("is already that of a pending record"), "\(error)")
        }
        try await submit([fresh])
        do { try await submit([second]); XCTFail("a second record with a committed payload commitment") } catch {
            XCTAssertTrue("\(error)".contains("is already that of record \(fresh.transaction.id.hexString)"), "\(error)")
        }
        // The offline verifier holds a chain to the same rule: a copy in a certified block fails it.
        XCTAssertTrue(Transaction.sign(header: header("samr"), body: .attestation(twin), key: consortium.keys["samr"]!.signing)
            .blockExclusiveClaims.contains("payload commitment \(body.payloadCommitment.hexString)"))
    }

    /// Every version of a record is erased together: a correction carries a sealed copy of the
    /// payload of its own, which an erasure of the original alone left readable (found in review,
    /// 2026-12-06). An erasure that leaves a committed correction is refused, naming it; one that
    /// would commit beside a pending correction of its record waits; naming every version works.
    func testErasingARecordNeedsEveryCorrectionOfIt() async throws {
        let penalty = try store.subjectRecords(food, before: store.head.logSize, limit: 10).first {
            if case .attestation(let a) = $0.transaction.body { return a.category == .penalty } else { return false }
        }!.transaction
        func correction(of target: Hash, _ payload: String) throws -> Submission {
            let fresh = try attestation(food, .penalty, "2026-03-14", severity: .minor, payload: payload)
            guard case .attestation(let replacement) = fresh.transaction.body else { preconditionFailure() }
            let body = AmendmentBody(action: .correction, target: target, reason: "decision_number_corrected", replacement: replacement)
            return Submission(transaction: Transaction.sign(header: header("samr"), body: .amendment(body), key: consortium.keys["samr"]!.signing),
                              envelope: fresh.envelope)
        }
        func erasure(_ ids: [Hash]) throws -> Submission {
            try QueryClient.eraseRecords(genesis: consortium.genesis, records: ids, submitter: consortium.keys["samr"]!,
                                         approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                         nonce: nextNonce(), issuedAtMillis: nowMillis)
        }
        let firstSecret = "西市监罚〔2026〕12号之一 更正"
        let secondSecret = "西市监罚〔2026〕12号之二 再更正"
        let first = try correction(of: penalty.id, "{\"decision\":\"\(firstSecret)\"}")
        // The reason is in the clear on every node: a code, not free text.
        guard case .amendment(var freeText) = first.transaction.body else { return XCTFail() }
        freeText.reason = "decision number corrected at the request of 张三"
        let prose = Submission(transaction: Transaction.sign(header: header("samr"), body: .amendment(freeText), key: consortium.keys["samr"]!.signing),
                               envelope: first.envelope)
        do { try await submit([prose]); XCTFail("free text in the clear") } catch {
            XCTAssertTrue("\(error)".contains("an amendment's reason is a code"), "\(error)")
        }
        // A code-shaped reason carrying an ID and a phone number (it passed until 2026-12-07).
        freeText.reason = "owner_zhang_id_330106199001011234_tel_13800138000"
        let numbers = Submission(transaction: Transaction.sign(header: header("samr"), body: .amendment(freeText), key: consortium.keys["samr"]!.signing),
                                 envelope: first.envelope)
        do { try await submit([numbers]); XCTFail("an ID number in the clear") } catch {
            XCTAssertTrue("\(error)".contains("no digits, so no ID, licence or phone number"), "\(error)")
        }
        XCTAssertTrue(AmendmentBody.isReasonCode("court_overturned") && AmendmentBody.isReasonCode("data-error.v"))
        XCTAssertFalse(AmendmentBody.isReasonCode("rule_2"))
        try await submit([first])
        let second = try correction(of: first.transaction.id, "{\"decision\":\"\(secondSecret)\"}")
        try await submit([second])
        do { try await submit([erasure([penalty.id])]); XCTFail("an erasure left a correction's copy of the payload") } catch {
            XCTAssertTrue("\(error)".contains("leaves 2 corrections of the records it names: \(first.transaction.id.hexString), \(second.transaction.id.hexString);"), "\(error)")
            // The records exist; the erasure is incomplete (it was unknownReference).
            XCTAssertEqual(((error as? BatchError)?.error as? LedgerError)?.code, .invalidValue, "\(error)")
        }
        do { try await submit([erasure([penalty.id, first.transaction.id])]); XCTFail("an erasure left a correction of a correction") } catch {
            XCTAssertTrue("\(error)".contains("leaves 1 correction of the records it names: \(second.transaction.id.hexString);"), "\(error)")
        }
        // The full profile lists every version of a record, so a custodian knows what to name.
        let (_, before) = try await ask("data-bureau", "full-profile", subject: food.code, purpose: "supervision")
        XCTAssertTrue(before.receipt.result.contains("\"versions\":[\"\(penalty.id.hexString)\",\"\(first.transaction.id.hexString)\",\"\(second.transaction.id.hexString)\"]"),
                      before.receipt.result)
        // A correction pending beside the erasure of its record: the erasure cannot see it.
        let third = try correction(of: penalty.id, "{\"decision\":\"third\"}")
        do { try await submit([third, erasure([penalty.id, first.transaction.id, second.transaction.id])]); XCTFail("erased beside a pending correction") } catch {
            XCTAssertTrue("\(error)".contains("versions of record \(penalty.id.hexString): a pending transaction corrects, revokes or erases that record"), "\(error)")
        }
        try await submit([erasure([penalty.id, first.transaction.id, second.transaction.id])])
        for id in [penalty.id, first.transaction.id, second.transaction.id] { XCTAssertNil(try store.envelope(of: id)) }
        let (_, profile) = try await ask("data-bureau", "full-profile", subject: food.code, purpose: "supervision")
        XCTAssertTrue(profile.answered, profile.receipt.message)
        for secret in [foodSecret, firstSecret, secondSecret] { XCTAssertFalse(profile.receipt.result.contains(secret), secret) }
        var source = StoreBlockSource(store: store)
        XCTAssertEqual(try ChainVerifier(genesis: consortium.genesis).verify(&source).envelopesShredded, 3)
    }

    func testErasingARecordShredsItsPayloadEverywhereAndTheChainStillVerifies() async throws {
        let penalty = try store.subjectRecords(food, before: store.head.logSize, limit: 10).first {
            if case .attestation(let a) = $0.transaction.body { return a.category == .penalty } else { return false }
        }!
        XCTAssertNotNil(try store.envelope(of: penalty.transaction.id))
        // The envelope's bytes are in a table file (flushed), before the erasure.
        let envelopeBytes = try XCTUnwrap(try store.rawEnvelope(of: penalty.transaction.id))
        let probe = Array(envelopeBytes[(envelopeBytes.count / 2 - 24)..<(envelopeBytes.count / 2 + 24)])
        try store.database.flush()
        XCTAssertFalse(try filesHolding(probe, under: dir).isEmpty, "the envelope is in no file of the store before the erasure")
        let one = try QueryClient.eraseRecords(genesis: consortium.genesis, records: [penalty.transaction.id], submitter: consortium.keys["samr"]!,
                                               approvers: [consortium.keys["samr"]!], nonce: nextNonce(), issuedAtMillis: nowMillis)
        do { try await submit([one]); XCTFail("one custodian alone erased a record") } catch {}
        let erase = try QueryClient.eraseRecords(genesis: consortium.genesis, records: [penalty.transaction.id], submitter: consortium.keys["samr"]!,
                                                 approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                 nonce: nextNonce(), issuedAtMillis: nowMillis)
        try await submit([erase])
        let erasedAt = store.head.height
        XCTAssertNil(try store.envelope(of: penalty.transaction.id), "the envelope and its wrapped keys are gone")
        // And off the disk once the purge that follows the erasure is done, not only hidden.
        ledger.purger.waitUntilIdle()
        XCTAssertEqual(try filesHolding(probe, under: dir), [], "the erased envelope's bytes are still in the store's files")
        let (_, profile) = try await ask("data-bureau", "full-profile", subject: food.code, purpose: "supervision")
        XCTAssertTrue(profile.answered, profile.receipt.message)
        XCTAssertFalse(profile.receipt.result.contains(foodSecret), "an erased payload cannot be read, even by a custodian")
        XCTAssertTrue(profile.receipt.result.contains("\"shredded\":true"))
        XCTAssertTrue(profile.receipt.result.contains(foodName), "the other records are still readable")
        let (_, grade) = try await ask("bank-a", "credit-grade", subject: food.code, purpose: "loan_application")
        XCTAssertTrue(grade.answered, "scores come from clear metadata and survive erasure")
        var source = StoreBlockSource(store: store)
        let summary = try ChainVerifier(genesis: consortium.genesis).verify(&source)
        XCTAssertEqual(summary.envelopesShredded, 1)
        XCTAssertEqual(summary.envelopesMissing, 0, "an erased envelope is not a missing one")
        // A copy that kept the envelope (a node that did not carry the erasure out, an export
        // made from one) fails verification at the erasing transaction, in both forms.
        let exportPath = dir + "-kept.export"
        defer { try? FileManager.default.removeItem(atPath: exportPath) }
        let restore = WriteBatch(for: store.database)
        try restore.put("envelopes", penalty.transaction.id, envelopeBytes)
        try store.database.write(restore)
        _ = try ChainExport.write(store: store, to: exportPath)
        var kept = StoreBlockSource(store: store)
        var keptExport = try ExportBlockSource(path: exportPath)
        for result in [Result { try ChainVerifier(genesis: consortium.genesis).verify(&kept) },
                       Result { try ChainVerifier(genesis: consortium.genesis).verify(&keptExport) }] {
            XCTAssertThrowsError(try result.get()) { error in
                XCTAssertTrue("\(error)".contains("record \(penalty.transaction.id.hexString) is erased by this transaction, but this copy still holds its payload envelope"), "\(error)")
                XCTAssertEqual((error as? ChainFailure)?.height, erasedAt, "\(error)")
            }
        }
        let remove = WriteBatch(for: store.database)
        try remove.delete("envelopes", penalty.transaction.id)
        try store.database.write(remove)
        // An id that is not a record is refused.
        let bogus = try QueryClient.eraseRecords(genesis: consortium.genesis, records: [SHA256.hash([1])], submitter: consortium.keys["samr"]!,
                                                 approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                 nonce: nextNonce(), issuedAtMillis: nowMillis)
        do { try await submit([bogus]); XCTFail("erased a record that does not exist") } catch {
            XCTAssertTrue("\(error)".contains("not a committed record"), "\(error)")
        }
    }
}

/// A clock that moves only when told, for refusal budgets.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var millis: UInt64
    init(_ millis: UInt64) { self.millis = millis }
    var now: UInt64 { lock.withLock { millis } }
    func advance(_ by: UInt64) { lock.withLock { millis += by } }
}

/// Facts that show only the named models installed: a consortium that installed no scorecard for
/// a kind of subject.
struct ModelsLimited<Base: PolicyFacts>: PolicyFacts {
    let facts: Base
    let names: Set<String>
    var height: UInt64 { facts.height }
    var logSize: UInt64 { facts.logSize }
    var asOfDate: LedgerDate { facts.asOfDate }
    var readsPayloads: Bool { facts.readsPayloads }
    func models() -> [InstalledModel] { facts.models().filter { names.contains($0.name) } }
    func policy(hash: Hash) -> InstalledPolicy? { facts.policy(hash: hash) }
    func records(of subject: USCC, limit: Int) throws -> [LoggedScoreRecord] { try facts.records(of: subject, limit: limit) }
    func transaction(at logIndex: UInt64) throws -> LoggedTransaction { try facts.transaction(at: logIndex) }
    func newestScoreUpdate(of subject: USCC, limit: Int, where matches: (LoggedTransaction) throws -> Bool) throws -> LoggedTransaction? {
        try facts.newestScoreUpdate(of: subject, limit: limit, where: matches)
    }
    func consents(of subject: USCC, grantee: String, limit: Int) throws -> [LoggedTransaction] { try facts.consents(of: subject, grantee: grantee, limit: limit) }
    func blockTimestamp(holding transaction: LoggedTransaction) throws -> UInt64 { try facts.blockTimestamp(holding: transaction) }
    func payload(of record: LoggedTransaction) throws -> [UInt8]? { try facts.payload(of: record) }
    func gradeCells(model: String, limit: Int) throws -> [GradeCell] { try facts.gradeCells(model: model, limit: limit) }
    func queryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] { try facts.queryLog(of: subject, before: before, limit: limit) }
    func confirmedQueryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] {
        try facts.confirmedQueryLog(of: subject, before: before, limit: limit)
    }
    func maskedName(registrationAt logIndex: UInt64, compute: () throws -> String) throws -> String {
        try facts.maskedName(registrationAt: logIndex, compute: compute)
    }
}
