import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStore
import Policy
import Scoring
import Synchronization

/// Answers signed queries under installed policies (docs/PRIVACY.md): checks the request's
/// signature, time window and replay guard, evaluates the policy at the current height, puts an
/// audit record of the outcome — answer or refusal — on the ledger, and only once it is
/// committed returns the answer with inclusion proofs under a quorum-signed checkpoint.
public final class QueryService: @unchecked Sendable {
    /// Requests signed more than this far from the node's clock are refused.
    public static let timeWindowMillis: UInt64 = QueryRecordBody.requestWindowMillis
    /// Queries being evaluated or waiting for their audit record at once; more are turned away.
    public static let maxInFlight = 4_096

    let ledger: any LedgerService
    let genesis: Genesis
    let engine: PolicyEngine
    let member: Member
    let keys: MemberSecretKeys
    let clock: @Sendable () -> UInt64
    /// Random bytes (injected) for each answer's result salt (`AnswerReceipt.resultHash`).
    let randomBytes: @Sendable (Int) -> [UInt8]
    private let lock = NSLock()
    private var inFlight = Set<NonceKey>()
    private var documents: [Hash: PolicyDocument] = [:]
    private var refusals: RefusalBudget
    private var _turnedAway: UInt64 = 0
    /// Masked names already derived from registration payloads, so repeat queries about a
    /// subject do not read and decrypt its registration record again.
    let maskedNames = MaskedNameCache()

    /// Masked names the node holds, and answers that took one from there (for tests and status).
    public var maskedNamesKept: (names: Int, hits: UInt64) { maskedNames.counts }

    /// Requests turned away unrecorded because their refusal budget was spent, since start.
    public var turnedAway: UInt64 { lock.withLock { _turnedAway } }

    struct NonceKey: Hashable { let requester: String; let nonce: UInt64 }

    /// The outcome of one query: the receipt (answer or refusal), and the HTTP status to send it with.
    public struct Outcome: Sendable {
        public let receipt: AnswerReceipt
        public var answered: Bool { receipt.outcome == "answered" }
    }

    public init(ledger: any LedgerService, clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) },
                refusalBudget: RefusalBudget = RefusalBudget(),
                randomBytes: @escaping @Sendable (Int) -> [UInt8] = { SecureRandom.bytes($0) }) throws {
        self.randomBytes = randomBytes
        self.ledger = ledger
        self.refusals = refusalBudget
        self.genesis = ledger.genesis
        self.keys = ledger.nodeKeys
        guard let m = ledger.genesis.member(ledger.nodeKeys.memberID) else {
            throw LedgerError(.unknownSigner, "node key \(ledger.nodeKeys.memberID) is not a member of this consortium")
        }
        self.member = m
        self.clock = clock
        self.engine = PolicyEngine(genesis: ledger.genesis)
        for p in ledger.genesis.policies {
            do { documents[p.hash] = try PolicyDocument(bytes: p.document, genesis: genesis) } catch {
                throw LedgerError(.invalidGenesis, "genesis policy \(p.name) v\(p.version) is not valid: \(error)")
            }
        }
    }

    var store: ChainStore { ledger.store }

    func document(_ installed: InstalledPolicy) throws -> PolicyDocument {
        if let d = lock.withLock({ documents[installed.hash] }) { return d }
        let d = try PolicyDocument(bytes: installed.document, genesis: genesis)
        lock.withLock { documents[installed.hash] = d }
        return d
    }

    /// Handles one signed request. Throws only for requests that cannot be recorded at all
    /// (undecodable bytes, a busy node, a requester over its refusal budget); every other
    /// refusal is recorded and returned.
    public func handle(_ requestBytes: [UInt8]) async throws -> Outcome {
        guard member.has(.validator) else {
            throw LedgerError(.notAuthorized, "\(member.id) is not a validator; send queries to your own validator node, or a custodian's (a custodian's for policies that read payloads)")
        }
        // A node far behind its peers (restarted, or cut off for a while) would answer from a
        // state before revocations and erasures the consortium has recorded; validators refuse
        // the record of such an answer (`TransactionValidator.answerLagMillis`), and the node
        // turns the query away first, unevaluated and unrecorded (found in review). So does a
        // node that cannot write blocks (a full disk): its head is frozen, and its audit record
        // would commit elsewhere while its client waited in vain.
        if let reason = ledger.writeFailureReason {
            throw LedgerError(.outOfDate, "this node cannot write blocks now, so it answers no query (its answer would come from a frozen head, and its audit record "
                + "could not be recorded here): \(reason)")
        }
        if let (_, known) = ledger.connectivity, let behind = known, behind >= LedgerAPI.behindWarning {
            throw LedgerError(.outOfDate, "this node is \(behind) blocks behind the height its validator peers report and is catching up: "
                + "its answers would be out of date; retry in a moment, or ask another node that answers for you")
        }
        let req = try QueryRequest.decode(requestBytes)
        let requestHash = SHA256.hash(requestBytes)
        let key = NonceKey(requester: req.requester, nonce: req.nonce)
        var reserved = false
        defer { if reserved { _ = lock.withLock { inFlight.remove(key) } } }

        // Everything from here on ends in an audit record.
        var record = QueryRecordBody(requester: Genesis.recordedRequester(req.requester), subject: nil,
                                     policy: Hashes.zero, purpose: QueryPurpose(name: req.purpose) ?? .unspecified,
                                     requestHash: requestHash, requestNonce: req.nonce, requestedAtMillis: req.issuedAtMillis,
                                     asOfHeight: store.head.height, outcome: .refused, reason: "", resultHash: Hashes.zero, consent: Hashes.zero)
        // The subject is recorded whenever the request names a valid one, so the subject's query
        // log shows forged and replayed attempts too.
        record.subject = try? USCC(req.subject)
        var answer: PolicyAnswer? = nil
        var salt: [UInt8]? = nil
        var policyTx: LoggedTransaction? = nil
        // Set once a refusal is reserved from the requester's own budget (below).
        var reservedRefusal = false
        do {
            guard req.chainID == genesis.chainID else {
                throw PolicyRefusal(.wrongChain, "the request is for chain \(req.chainID), this is \(genesis.chainID)")
            }
            guard let requester = genesis.member(req.requester) else {
                throw PolicyRefusal(.unknownRequester, "\"\(req.requester)\" is not a member of this consortium")
            }
            guard requester.keyID == req.keyID else {
                throw PolicyRefusal(.badSignature, "the request names key id \(req.keyID), but \(requester.id)'s key in genesis has key id \(requester.keyID)")
            }
            guard requester.signingKey.isValidSignature(req.signature, for: req.signingBytes) else {
                throw PolicyRefusal(.badSignature, "the request's signature does not verify with \(requester.id)'s key")
            }
            // Validators take the record of a member's query only from its own node or a
            // custodian's (`TransactionValidator.mayRecordQuery`): turned away unrecorded, like a
            // query sent to a node that is no validator.
            guard TransactionValidator.mayRecordQuery(of: requester.id, signer: member.id, genesis: genesis) else {
                throw LedgerError(.notAuthorized, "\(member.id)'s node answers its own queries only; send \(requester.id)'s queries to its own node "
                    + "or to a custodian's (\(genesis.custodians.map(\.id).joined(separator: ", "))): validators take the record of a member's query from no other node")
            }
            let now = clock()
            let skew = now > req.issuedAtMillis ? now - req.issuedAtMillis : req.issuedAtMillis - now
            guard skew <= Self.timeWindowMillis else {
                // In milliseconds: 300.9 s read "300 s", against a window of ±300 s (found by black-box testing).
                throw PolicyRefusal(.outsideTimeWindow, "the request was signed \(skew) ms \(req.issuedAtMillis > now ? "ahead of" : "behind") this node's clock; "
                    + "the window is ±\(Self.timeWindowMillis / 1000) s (\(Self.timeWindowMillis) ms)")
            }
            let fresh = try lock.withLock { () throws -> Bool in
                guard inFlight.count < Self.maxInFlight else {
                    throw LedgerError(.mempoolFull, "\(Self.maxInFlight) queries are in flight; retry shortly")
                }
                return inFlight.insert(key).inserted
            }
            guard fresh else { throw PolicyRefusal(.replayedRequest, "nonce \(req.nonce) of \(req.requester) is being answered already") }
            reserved = true
            if let id = try store.queryNonceHolder(requester: req.requester, nonce: req.nonce) {
                // The record is named, so that a client whose answer was lost (the node died after
                // recording it, or the wait ran out) learns what became of its request (found by
                // black-box testing: a resend said only "replayed"). Best effort: a record whose
                // block is still being appended is not readable yet, and is refused all the same.
                var named = ""
                if let location = try? store.location(of: id), let record = try? store.transaction(at: location.logIndex) {
                    var what = ""
                    if case .queryRecord(let q) = record.body {
                        what = q.outcome == .answered ? ", which recorded it answered" : ", which recorded it refused (\(q.reason))"
                    }
                    named = ": by query record \(id.hexString) at log index \(location.logIndex), block \(location.height)\(what), "
                        + "signed by \(record.header.signer); its proof: GET /v1/transactions/\(id.hexString)/receipt on that member's node"
                }
                throw PolicyRefusal(.replayedRequest, "nonce \(req.nonce) of \(req.requester) was already used (replayed request)\(named); for a new answer, sign a new request")
            }
            // A fresh request from the member itself. Its possible refusal is reserved before
            // anything is evaluated, and given back if the query is answered: a member past its
            // budget is turned away unevaluated, so it learns nothing that goes unrecorded.
            // Refusals above (forged, stale or replayed requests, which anyone holding a copy
            // of a signed request can send) go to the shared bucket instead.
            try reserveRefusal(for: req.requester)
            reservedRefusal = true
            guard let installed = store.policy(hash: req.policy) else {
                throw PolicyRefusal(.unknownPolicy, "no policy with hash \(req.policy.hexString.prefix(16))… is installed (GET /v1/policies lists them)")
            }
            record.policy = installed.hash
            if let i = installed.logIndex, let tx = try store.transaction(at: i) { policyTx = LoggedTransaction(logIndex: i, transaction: tx) }
            let policy = try document(installed)
            guard let purpose = QueryPurpose(name: req.purpose), purpose != .unspecified else {
                throw PolicyRefusal(.purposeNotAllowed, "purpose \"\(req.purpose.clipped())\" is unknown (known: \(QueryPurpose.allCases.dropFirst().map(\.name).joined(separator: ", ")))")
            }
            var subject: USCC? = nil
            if policy.scope == .aggregate {
                guard req.subject.isEmpty else { throw PolicyRefusal(.invalidParameters, "\(policy.name) is an aggregate; it takes no subject") }
            } else {
                do { subject = try USCC(req.subject) } catch {
                    throw PolicyRefusal(.invalidUSCC, "\"\(req.subject.clipped())\" is not a valid USCC: \(error)")
                }
            }
            let query = PolicyQuery(requester: requester, subject: subject, purpose: purpose,
                                    parameters: req.parameters, requestedAtMillis: req.issuedAtMillis, answeredAtMillis: now)
            // A refusal inside the evaluation names the height it was decided at, like an answer.
            let a = try evaluate(policy, query, height: &record.asOfHeight)
            record.outcome = .answered
            salt = randomBytes(AnswerReceipt.resultSaltBytes)
            record.resultHash = AnswerReceipt.resultHash(a.result, salt: salt)
            record.consent = a.consent?.transaction.id ?? Hashes.zero
            answer = a
            giveBackRefusal(.member(req.requester))
        } catch let r as PolicyRefusal {
            if !reservedRefusal { try checkSharedRefusalBudget(refusal: r) }
            record.reason = r.code.rawValue
            do {
                return try await finish(record, request: requestBytes, answer: nil, policyTx: policyTx, message: r.message)
            } catch {
                // The refusal's audit record was not committed (a full mempool, a failed write): it used no budget.
                giveBackRefusal(reservedRefusal ? .member(req.requester) : .unauthenticated)
                throw error
            }
        } catch {
            // Not a refusal: nothing is recorded, so the reserved refusal was not used.
            if reservedRefusal { giveBackRefusal(.member(req.requester)) }
            throw error
        }
        return try await finish(record, request: requestBytes, answer: answer, salt: salt, policyTx: policyTx, message: "")
    }

    /// Takes a refusal from the shared bucket of requests that do not show a member asking
    /// now (forged, stale, replayed), or turns the request away unrecorded. Nothing about the
    /// subject was read, so the reply may name the refusal.
    func checkSharedRefusalBudget(refusal: PolicyRefusal) throws {
        let (wait, rate) = takeRefusal(.unauthenticated)
        guard let wait else { return }
        throw LedgerError(.rateLimited, "too many refused queries that do not show a member asking (wrong chain, unknown requester, "
            + "bad signature, outside the time window, replayed): \(rate.burst) are recorded at once, then \(rate.perSecond) a second; "
            + "this request (\(refusal.code.rawValue): \(refusal.message)) was not recorded; retry in \(wait) ms", retryAfterMillis: wait)
    }

    /// Reserves one refusal from `member`'s budget before its query is evaluated, or turns the
    /// query away unevaluated and unrecorded.
    func reserveRefusal(for member: String) throws {
        let (wait, rate) = takeRefusal(.member(member))
        guard let wait else { return }
        throw LedgerError(.rateLimited, "too many refused queries signed by \(member): \(rate.burst) are recorded at once, then "
            + "\(rate.perSecond) a second; this request was not evaluated or recorded; retry in \(wait) ms", retryAfterMillis: wait)
    }

    /// A refusal taken but not used (the query was answered, or its refusal not recorded) goes back to its bucket.
    func giveBackRefusal(_ key: RefusalBudget.Key) {
        lock.withLock { refusals.giveBack(key) }
    }

    private func takeRefusal(_ key: RefusalBudget.Key) -> (wait: UInt64?, rate: RefusalBudget.Rate) {
        let now = clock()
        return lock.withLock {
            let wait = refusals.take(key, nowMillis: now)
            if wait != nil { _turnedAway += 1 }
            return (wait, refusals.rate(key))
        }
    }

    /// Evaluates at the current head; `height` is set to the height of the head the answer or the
    /// refusal comes from. An aggregate reads its cells from one snapshot of the store; if that
    /// snapshot is of a newer block than the head (one was written in between), it starts again,
    /// so the stated height is the state that was read. After `evaluationAttempts` such starts the
    /// query is turned away unrecorded (503 `busy`, Retry-After 1 s): it was refused `cost_limit`
    /// and recorded, spending the requester's nonce and refusal budget on the node's own load,
    /// under a code that means the policy reads too much (found by black-box testing: 1 in about
    /// 8,000 industry-statistics queries under load). Three, as before: more would let a member
    /// make the node evaluate more per request without any budget (found in review).
    static let evaluationAttempts = 3

    func evaluate(_ policy: PolicyDocument, _ query: PolicyQuery, height: inout UInt64) throws -> PolicyAnswer {
        for _ in 0..<Self.evaluationAttempts {
            let head = store.head
            height = head.height
            let facts = try StoreFacts(store: store, head: head, custodianKey: member.has(.custodian) ? keys : nil,
                                       maskedNames: maskedNames)
            do {
                return try engine.evaluate(policy, query, facts: facts)
            } catch is StoreFacts.HeadMoved {
                continue
            }
        }
        throw LedgerError(.busy, "blocks were written while \(policy.name) read its cells, \(Self.evaluationAttempts) times over: the query was not answered "
            + "or recorded, and its nonce is unused; send it again", retryAfterMillis: 1_000)
    }

    /// Signs the audit record, waits until it is committed, and builds the receipt.
    func finish(_ record: QueryRecordBody, request: [UInt8], answer: PolicyAnswer?, salt: [UInt8]? = nil, policyTx: LoggedTransaction?,
                message: String) async throws -> Outcome {
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID,
                                       nonce: ledger.ownNonce(), issuedAtMillis: clock())
        let tx = Transaction.sign(header: header, body: .queryRecord(record), key: keys.signing)
        let committed = try await ledger.submit([Submission(transaction: tx, envelope: nil)], signedHere: true)[0]
        // Prove everything under the newest checkpoint: `submit` returns once the block holding
        // the audit record is stored, so the head covers it.
        let head = store.head
        guard head.logSize > committed.logIndex, let note = try store.checkpoint(height: head.height) else {
            throw LedgerError(.notFound, "no checkpoint covers the audit record at log index \(committed.logIndex)")
        }
        var facts: [AnswerReceipt.Fact] = []
        func add(_ role: String, _ t: Transaction, _ index: UInt64) throws {
            facts.append(AnswerReceipt.Fact(role: role, transaction: t.encoded.base64String, log_index: index,
                                            inclusion_proof: try store.inclusionProof(index: index, size: head.logSize).map { $0.base64String }))
        }
        try add("audit_record", tx, committed.logIndex)
        if let p = policyTx { try add("policy", p.transaction, p.logIndex) }
        if let a = answer {
            if let c = a.consent { try add("consent", c.transaction, c.logIndex) }
            if let s = a.score { try add("score_update", s.transaction, s.logIndex) }
            for r in a.records { try add("record", r.transaction, r.logIndex) }
        }
        let result = answer?.result ?? ""
        let signature = keys.signing.signature(for: AnswerSignature.message(
            chainID: genesis.chainID, requestHash: record.requestHash, resultHash: record.resultHash,
            asOfHeight: record.asOfHeight, auditRecord: tx.id))
        return Outcome(receipt: AnswerReceipt(
            chainID: genesis.chainID, genesisHash: genesis.hash, request: request,
            outcome: record.outcome == .answered ? "answered" : "refused", reason: record.reason, message: message,
            result: result, resultSalt: answer == nil ? nil : salt, asOfHeight: record.asOfHeight, answeredBy: member.id, answerSignature: signature,
            checkpoint: note, treeSize: head.logSize, facts: facts))
    }
}

/// Ledger state for policy evaluation, fixed at one head.
struct StoreFacts: PolicyFacts {
    let store: ChainStore
    let head: ChainStore.Head
    let custodianKey: MemberSecretKeys?
    let asOfDate: LedgerDate
    let maskedNames: MaskedNameCache?
    /// The last subject's index entries, read once for its records and score updates (consents have their own index).
    private let read = SubjectRead()
    /// More entries than this and each kind is read with its own pass (FieldLimits.scoreInputs is 1,024 records).
    static let maxSubjectEntries = 4_096

    private final class SubjectRead {
        var entries: SubjectEntries?
        var tooMany: USCC?
    }

    /// The subject's entries below the head, or nil when it has too many to hold at once.
    private func entries(of subject: USCC) throws -> SubjectEntries? {
        if let e = read.entries, e.subject == subject { return e }
        if read.tooMany == subject { return nil }
        let e = try store.subjectEntries(subject, before: head.logSize, max: Self.maxSubjectEntries)
        if let e { read.entries = e } else { read.tooMany = subject }
        return e
    }

    init(store: ChainStore, head: ChainStore.Head, custodianKey: MemberSecretKeys?, maskedNames: MaskedNameCache? = nil) throws {
        self.store = store
        self.head = head
        self.custodianKey = custodianKey
        self.maskedNames = maskedNames
        let millis = head.logSize == 0 ? 0 : (try store.blockTimestamp(coveringLogSize: head.logSize) ?? 0)
        asOfDate = try LedgerDate(chinaStandardTimeMillis: millis)
    }

    var height: UInt64 { head.height }
    var logSize: UInt64 { head.logSize }

    func models() -> [InstalledModel] {
        store.allModels().filter { $0.logIndex.map { $0 < head.logSize } ?? true }
    }

    func policy(hash: Hash) -> InstalledPolicy? { store.policy(hash: hash) }

    func records(of subject: USCC, limit: Int) throws -> [LoggedScoreRecord] {
        if let e = try entries(of: subject) { return try store.loggedScoreRecords(in: e, limit: limit) }
        return try store.loggedScoreRecords(subject, before: head.logSize, limit: limit)
    }

    func blockTimestamp(holding transaction: LoggedTransaction) throws -> UInt64 {
        guard transaction.logIndex < head.logSize,
              let millis = try store.blockTimestamp(holding: transaction.transaction.id, at: transaction.logIndex) else {
            throw LedgerError(.notFound, "transaction \(transaction.transaction.id.hexString) is in no block below log size \(head.logSize)")
        }
        return millis
    }

    func transaction(at logIndex: UInt64) throws -> LoggedTransaction {
        guard logIndex < head.logSize, let tx = try store.transaction(at: logIndex) else {
            throw LedgerError(.notFound, "log index \(logIndex) holds no transaction below log size \(head.logSize)")
        }
        return LoggedTransaction(logIndex: logIndex, transaction: tx)
    }

    func newestScoreUpdate(of subject: USCC, limit: Int, where matches: (LoggedTransaction) throws -> Bool) throws -> LoggedTransaction? {
        // Only those below the head this evaluation is fixed at.
        var found: LoggedTransaction? = nil
        func visit(_ l: LoggedTransaction) throws -> Bool {
            guard try matches(l) else { return true }
            found = l
            return false
        }
        if let e = try entries(of: subject) {
            try store.visitScoreUpdates(in: e, limit: limit, visit)
        } else {
            try store.visitScoreUpdates(of: subject, before: head.logSize, limit: limit, visit)
        }
        return found
    }

    func consents(of subject: USCC, grantee: String, limit: Int) throws -> [LoggedTransaction] {
        // Their own index, by subject and grantee: other members' consents are not read.
        try store.consents(of: subject, grantee: grantee, before: head.logSize, limit: limit)
    }

    var readsPayloads: Bool { custodianKey != nil }

    func payload(of record: LoggedTransaction) throws -> [UInt8]? {
        guard let key = custodianKey else {
            throw PolicyRefusal(.notCustodianNode, "this node holds no custodian key and cannot read payloads; ask a custodian's node")
        }
        guard let a = record.transaction.body.envelopedRecord else { return nil }
        // Gone by erasure is shredded; committed from a catch-up block without it is only not here
        // yet. The mark is read first: it goes only as the envelope arrives (or is erased), so no
        // mark and then no envelope means erased, even while the envelope is being restored.
        let notArrived = try store.isMissingEnvelope(record.transaction.id)
        guard let envelope = try store.envelope(of: record.transaction.id) else {
            if notArrived {
                throw PolicyEngine.PayloadUnreadable("record \(record.transaction.id.hexString.prefix(16))…: its envelope has not reached this node yet (it is fetched from peers)")
            }
            return nil
        }
        do {
            return try PayloadSeal.open(envelope, commitment: a.payloadCommitment, custodianID: key.memberID, key: key.encryption)
        } catch let e as LedgerError where e.code == .notFound {
            return nil // this custodian's wrapped key was destroyed: shredded for it
        } catch where error is CryptoError || error is LedgerError {
            throw PolicyEngine.PayloadUnreadable("record \(record.transaction.id.hexString.prefix(16))…: \(error)")
        }
    }

    /// Thrown when the cells read are of a newer block than this evaluation's head.
    struct HeadMoved: Error {}

    func gradeCells(model: String, limit: Int) throws -> [GradeCell] {
        let (at, cells) = try store.gradeCellsWithHead(model: model, limit: limit)
        guard at == head else { throw HeadMoved() }
        return cells.map { GradeCell(subject: $0.subject, industry: $0.industry, grade: $0.grade) }
    }

    func queryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] {
        try store.queryRecords(about: subject, before: logBound(before), limit: limit)
    }

    func confirmedQueryLog(of subject: USCC, before: UInt64?, limit: Int) throws -> [LoggedTransaction] {
        try store.queryRecords(about: subject, before: logBound(before), limit: limit, confirmedOnly: true)
    }

    /// A caller's bound on the log, within the log at this height.
    private func logBound(_ before: UInt64?) -> UInt64 { min(before ?? head.logSize, head.logSize) }

    func maskedName(registrationAt logIndex: UInt64, compute: () throws -> String) throws -> String {
        guard let cache = maskedNames, logIndex < head.logSize else { return try compute() }
        // Read before the payload is: a name derived under it is kept only if no envelope was deleted since.
        let generation = store.envelopeGeneration
        if let name = cache.name(registrationAt: logIndex, generation: generation) { return name }
        let name = try compute()
        // An empty name may only mean the payload is not readable here yet or any more; it is not kept.
        if !name.isEmpty { cache.keep(name, registrationAt: logIndex, readUnder: generation, generation: store.envelopeGeneration) }
        return name
    }
}

/// Masked names by the log index of the registration record they were read from. A record's
/// payload never changes, but it can be erased: the store's envelope generation moves around
/// every erasure, and the cache then forgets everything it holds. Bounded: at most `capacity`
/// names of at most `maxNameBytes` each (longer ones are not kept); it starts over when full.
final class MaskedNameCache: Sendable {
    static let capacity = 131_072
    static let maxNameBytes = 256

    private struct State {
        var generation: UInt64 = 0
        var names: [UInt64: String] = [:]
        var hits: UInt64 = 0

        /// False for a generation older than the cache's: its caller read before an erasure.
        mutating func align(to generation: UInt64) -> Bool {
            if generation > self.generation { names.removeAll(); self.generation = generation }
            return generation == self.generation
        }
    }
    private let state = Mutex(State())

    var counts: (names: Int, hits: UInt64) { state.withLock { ($0.names.count, $0.hits) } }

    func name(registrationAt logIndex: UInt64, generation: UInt64) -> String? {
        state.withLock { s in
            guard s.align(to: generation), let name = s.names[logIndex] else { return nil }
            s.hits += 1
            return name
        }
    }

    /// Keeps a name derived while the generation was `readUnder`, unless envelopes were deleted since.
    func keep(_ name: String, registrationAt logIndex: UInt64, readUnder: UInt64, generation: UInt64) {
        guard readUnder == generation, name.utf8.count <= Self.maxNameBytes else { return }
        state.withLock { s in
            guard s.align(to: generation) else { return }
            if s.names.count >= Self.capacity { s.names.removeAll(keepingCapacity: true) }
            s.names[logIndex] = name
        }
    }
}
