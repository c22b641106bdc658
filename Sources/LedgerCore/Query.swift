import LedgerCrypto

// Queries, their audit records and installed query policies (docs/PRIVACY.md, FORMAT.md §4.7, §15).

/// Why a member asks. The first two are the purposes a subject consents to.
public enum QueryPurpose: UInt8, Sendable, CaseIterable, Hashable {
    /// Recorded for refused requests whose purpose is not one of the others.
    case unspecified = 0
    case loanApplication = 1, postLoanMonitoring = 2, supervision = 3, statistics = 4, subjectAccess = 5

    public var name: String {
        switch self {
        case .unspecified: return "unspecified"
        case .loanApplication: return "loan_application"
        case .postLoanMonitoring: return "post_loan_monitoring"
        case .supervision: return "supervision"
        case .statistics: return "statistics"
        case .subjectAccess: return "subject_access"
        }
    }

    public init?(name: String) {
        guard let p = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = p
    }

    /// The consent purpose this query purpose needs, if subjects consent to it.
    public var consentPurpose: ConsentBody.Purpose? {
        switch self {
        case .loanApplication: return .loanApplication
        case .postLoanMonitoring: return .postLoanMonitoring
        default: return nil
        }
    }
}

/// The kind of `InstalledPolicy`: a query policy (`install_policy`).
public enum QueryPolicyDocument {}
/// A query policy installed in genesis or by an `install_policy` governance transaction.
public typealias InstalledPolicy = Installed<QueryPolicyDocument>

/// The policy engine as validation sees it. Implemented by `Policy.PolicyRules`.
public protocol PolicyRules: Sendable {
    /// Parses and checks a policy document against the consortium (callers, leak rules);
    /// returns the name and version it declares. Throws naming the problem.
    func policyIdentity(_ document: [UInt8], genesis: Genesis) throws -> (name: String, version: UInt32)
    /// What a new install of the document is refused for beyond parsing (dated rules), or nil.
    func installProblem(_ document: [UInt8], genesis: Genesis) -> String?
    /// Checks an answered audit record against the document of the policy it names: the
    /// requester may call the policy, the purpose is one it answers for, a subject policy's answer
    /// names a subject, and one that requires the subject's consent names a consent. The engine
    /// answers only so, and validators and the receipt check hold every answer to it. Throws
    /// naming the first that fails. `document` is the one whose SHA-256 `record.policy` is.
    /// `answeredBy`: the member whose node answered (the audit record's signer); a policy that
    /// reads payloads is answered only by a custodian's node, which can decrypt them.
    func checkAnswered(_ record: QueryRecordBody, answeredBy: String, document: [UInt8], genesis: Genesis) throws
    /// Checks an answer's score outputs against the score update fact its receipt holds (`score`,
    /// nil when it holds none): every grade, score band and credit line the result states must be
    /// what that update gives, and a stated model must be the update's. Throws naming the first
    /// that is not.
    func checkScoreOutputs(_ document: [UInt8], genesis: Genesis, result: String, score: ScoreUpdateBody?) throws
    /// Checks an answer's whole result: `checkScoreOutputs`, and that the result is the policy's
    /// answer to this request as the audit record `record` records it (policy, version, height,
    /// purpose, subject and consent; a field for each of the policy's outputs and no other), with
    /// an eligibility decision that follows from its reasons and the request's `parameters`.
    func checkResult(_ document: [UInt8], genesis: Genesis, record: QueryRecordBody, parameters: [(name: String, value: String)],
                     result: String, score: ScoreUpdateBody?) throws
    /// Checks a receipt's record facts against the result (`categories`: each record fact's
    /// category): every one is of a category the answer states a flag or listing true for (any,
    /// for a policy that returns records), and, unless the receipt holds as many record facts as
    /// an answer proves (`complete` false: the engine may have cut it short), every true flag and
    /// listing has one of its records among them.
    func checkRecordFacts(_ document: [UInt8], genesis: Genesis, result: String, categories: [Category], complete: Bool) throws
}

/// The audit record of one query: who asked what about whom, under which policy, why, and
/// what came of it. Signed by the node that answered or refused. The result itself is not on
/// the ledger, only its hash.
public struct QueryRecordBody: Hashable, Sendable {
    public enum Outcome: UInt8, Sendable { case answered = 1, refused = 2 }

    /// How far a request's signed time may be from the answering node's clock (±5 minutes).
    public static let requestWindowMillis: UInt64 = 300_000

    /// Refusals of requests that do not show their requester asking: the requester named is only a claim.
    public static let unauthenticatedRefusals: Set<String> = ["bad_signature", "unknown_requester", "wrong_chain"]

    /// The (requester, nonce) this record uses up, or nil when it uses none: a request is
    /// answered or refused once on the whole ledger, not once per node. Refusals of requests
    /// not shown to come from their requester, and the refusals of replays and of stale
    /// requests (which may be recorded again when the same copy is sent again), use none.
    public var spentRequestNonce: String? {
        if outcome == .refused, Self.unauthenticatedRefusals.contains(reason) || reason == "replayed_request" || reason == "outside_time_window" {
            return nil
        }
        return "\(requester)/\(requestNonce)"
    }
    /// The member the request names. For a refusal for a bad signature it is only a claim.
    public var requester: String
    /// Nil for aggregate queries and for requests naming an invalid USCC.
    public var subject: USCC?
    /// SHA-256 of the policy document; zero when the request named an unknown policy.
    public var policy: Hash
    public var purpose: QueryPurpose
    /// SHA-256 of the signed request bytes.
    public var requestHash: Hash
    public var requestNonce: UInt64
    /// The requester's clock (ms since 1970) as signed in the request.
    public var requestedAtMillis: UInt64
    /// The ledger height the policy was evaluated at.
    public var asOfHeight: UInt64
    public var outcome: Outcome
    /// Refusal code (docs/PRIVACY.md §6); empty when answered.
    public var reason: String
    /// SHA-256 of the canonical result text; zero when refused.
    public var resultHash: Hash
    /// The consent grant the answer relied on; zero if none.
    public var consent: Hash

    public init(requester: String, subject: USCC?, policy: Hash, purpose: QueryPurpose, requestHash: Hash,
                requestNonce: UInt64, requestedAtMillis: UInt64, asOfHeight: UInt64, outcome: Outcome,
                reason: String, resultHash: Hash, consent: Hash) {
        self.requester = requester; self.subject = subject; self.policy = policy; self.purpose = purpose
        self.requestHash = requestHash; self.requestNonce = requestNonce; self.requestedAtMillis = requestedAtMillis
        self.asOfHeight = asOfHeight; self.outcome = outcome; self.reason = reason; self.resultHash = resultHash
        self.consent = consent
    }

    func encode(_ w: inout ByteWriter) {
        w.string8(requester)
        if let subject { w.u8(1); w.raw(Array(subject.code.utf8)) } else { w.u8(0) }
        w.raw(policy)
        w.u8(purpose.rawValue)
        w.raw(requestHash)
        w.u64(requestNonce)
        w.u64(requestedAtMillis)
        w.u64(asOfHeight)
        w.u8(outcome.rawValue)
        w.string8(reason)
        w.raw(resultHash)
        w.raw(consent)
    }

    static func decode(_ r: inout ByteReader) throws -> QueryRecordBody {
        let requester = try r.string8("requester", max: FieldLimits.memberID)
        let has = try r.u8("has_subject")
        var subject: USCC? = nil
        switch has {
        case 0: break
        case 1:
            guard let text = String(validating: try r.raw(18, "subject"), as: UTF8.self) else {
                throw LedgerError(.invalidUSCC, "subject is not 18 ASCII characters")
            }
            subject = try USCC(text)
        default: throw LedgerError(.invalidValue, "has_subject must be 0 or 1, got \(has)")
        }
        let policy = try r.raw(32, "policy")
        let p = try r.u8("purpose")
        guard let purpose = QueryPurpose(rawValue: p) else {
            throw LedgerError(.invalidValue, "query purpose \(p) is unknown (0-\(QueryPurpose.allCases.count - 1))")
        }
        let requestHash = try r.raw(32, "request_hash")
        let nonce = try r.u64("request_nonce")
        let at = try r.u64("requested_at")
        let height = try r.u64("as_of_height")
        let o = try r.u8("outcome")
        guard let outcome = Outcome(rawValue: o) else { throw LedgerError(.invalidValue, "query outcome \(o) is unknown (1 answered, 2 refused)") }
        let body = QueryRecordBody(requester: requester, subject: subject, policy: policy, purpose: purpose,
                                   requestHash: requestHash, requestNonce: nonce, requestedAtMillis: at, asOfHeight: height,
                                   outcome: outcome, reason: try r.string8("reason", max: FieldLimits.memberID),
                                   resultHash: try r.raw(32, "result_hash"), consent: try r.raw(32, "consent"))
        try body.check()
        return body
    }

    /// Rules that need no ledger state.
    public func check() throws {
        guard Genesis.isValidName(requester, max: FieldLimits.memberID) else {
            throw LedgerError(.invalidValue, "query requester \"\(requester)\" must be 1-32 characters of a-z 0-9 . _ -")
        }
        guard requestedAtMillis <= QueryRequest.latestIssuedAtMillis else {
            throw LedgerError(.invalidValue, "query record's requested_at \(requestedAtMillis) ms is after the year 9999, later than any request may be signed")
        }
        switch outcome {
        case .answered:
            guard reason.isEmpty, resultHash != Hashes.zero, policy != Hashes.zero else {
                throw LedgerError(.invalidValue, "an answered query names its policy and result hash and no refusal reason")
            }
        case .refused:
            guard Genesis.isValidName(reason, max: FieldLimits.memberID), resultHash == Hashes.zero else {
                throw LedgerError(.invalidValue, "a refused query carries a refusal code (a-z 0-9 _) and no result hash")
            }
        }
    }
}

/// A member's signed query (not a transaction: it travels to one node, which records its
/// outcome in a `QueryRecordBody`). Canonical bytes in FORMAT.md §15.
public struct QueryRequest: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let domain: [UInt8] = Array("CreditLedger/v1/query\n".utf8)
    public static let maxBytes = 4_096
    public static let maxParameters = 8
    /// The latest signing time a request may state, 9999-12-31T23:59:59.999Z. Audit records carry
    /// it and query logs show it as a JSON integer, so it must fit one: a request stating 2⁶⁴ − 1
    /// was recorded (refused for its time) and then crashed every node that showed that subject's
    /// query log (found in review, 2026-12-06).
    public static let latestIssuedAtMillis: UInt64 = 253_402_300_799_999

    public var chainID: String
    public var requester: String
    public var keyID: UInt32
    public var policy: Hash
    /// The subject's USCC as typed (checked by the node, so an invalid code is refused on the record); empty for aggregates.
    public var subject: String
    public var purpose: String
    public var parameters: [(name: String, value: String)]
    public var nonce: UInt64
    public var issuedAtMillis: UInt64
    public var signature: [UInt8]

    public init(chainID: String, requester: String, keyID: UInt32, policy: Hash, subject: String, purpose: String,
                parameters: [(name: String, value: String)], nonce: UInt64, issuedAtMillis: UInt64, signature: [UInt8] = []) {
        self.chainID = chainID; self.requester = requester; self.keyID = keyID; self.policy = policy
        self.subject = subject; self.purpose = purpose; self.parameters = parameters; self.nonce = nonce
        self.issuedAtMillis = issuedAtMillis; self.signature = signature
    }

    public static func == (a: QueryRequest, b: QueryRequest) -> Bool { a.encoded == b.encoded }

    /// Throws, naming the field, when the request cannot be encoded or would be refused
    /// undecoded for its size (the limits `decode` applies). Call before signing: encoding a
    /// field past its length byte stopped the client on a precondition (exit 132) when a
    /// parameter or the subject ran past 255 bytes (found by black-box testing, 2026-12-07).
    public func checkFields() throws {
        func check(_ value: String, _ field: String, max: Int) throws {
            let n = value.utf8.count
            guard n <= max else { throw LedgerError(.fieldTooLarge, "\(field) is \(n) bytes; a query request takes at most \(max)") }
        }
        try check(chainID, "chain_id", max: FieldLimits.chainID)
        try check(requester, "requester", max: FieldLimits.memberID)
        try check(subject, "subject", max: 255)
        try check(purpose, "purpose", max: 32)
        guard parameters.count <= Self.maxParameters else {
            throw LedgerError(.fieldTooLarge, "the query has \(parameters.count) parameters; a query request takes at most \(Self.maxParameters)")
        }
        for p in parameters {
            try check(p.name, "parameter name \"\(p.name.clipped())\"", max: 32)
            try check(p.value, "the value of parameter \(p.name)", max: 255)
        }
        let size = unsignedBytes.count + 64
        guard size <= Self.maxBytes else { throw LedgerError(.fieldTooLarge, "the query request is \(size) bytes; the limit is \(Self.maxBytes)") }
    }

    public var unsignedBytes: [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.u8(Self.version)
        w.string8(chainID)
        w.string8(requester)
        w.u32(keyID)
        w.raw(policy)
        w.string8(subject)
        w.string8(purpose)
        w.u8(UInt8(parameters.count))
        for p in parameters { w.string8(p.name); w.string8(p.value) }
        w.u64(nonce)
        w.u64(issuedAtMillis)
        return w.bytes
    }

    public var signingBytes: [UInt8] { Self.domain + unsignedBytes }
    public var encoded: [UInt8] { unsignedBytes + signature }
    public var hash: Hash { SHA256.hash(encoded) }

    public mutating func sign(with key: Ed25519PrivateKey) { signature = key.signature(for: signingBytes) }

    public func parameter(_ name: String) -> String? { parameters.first { $0.name == name }?.value }

    /// Decodes the signed bytes. Checks structure and limits only: the signature is the node's to check.
    public static func decode(_ bytes: [UInt8]) throws -> QueryRequest {
        guard bytes.count <= maxBytes else {
            throw LedgerError(.fieldTooLarge, "query request is \(bytes.count) bytes, limit \(maxBytes)")
        }
        var r = ByteReader(bytes, context: "query request")
        let v = try r.u8("version")
        guard v == version else { throw LedgerError(.unsupportedVersion, "query request version \(v) is not supported (this node reads \(version))") }
        let chain = try r.string8("chain_id", max: FieldLimits.chainID)
        let requester = try r.string8("requester", max: FieldLimits.memberID)
        let keyID = try r.u32("key_id")
        let policy = try r.raw(32, "policy")
        let subject = try r.string8("subject", max: 255)
        let purpose = try r.string8("purpose", max: 32)
        let count = Int(try r.u8("parameters.count"))
        guard count <= maxParameters else {
            throw LedgerError(.fieldTooLarge, "query has \(count) parameters, limit \(maxParameters)")
        }
        var params: [(String, String)] = []
        for i in 0..<count {
            params.append((try r.string8("parameters[\(i)].name", max: 32), try r.string8("parameters[\(i)].value", max: 255)))
        }
        let nonce = try r.u64("nonce")
        let at = try r.u64("issued_at")
        guard at <= latestIssuedAtMillis else {
            throw LedgerError(.invalidValue, "issued_at \(at) ms is after the year 9999; sign a request with the time it is sent")
        }
        let sig = try r.raw(64, "signature")
        try r.expectEnd()
        return QueryRequest(chainID: chain, requester: requester, keyID: keyID, policy: policy, subject: subject,
                            purpose: purpose, parameters: params, nonce: nonce, issuedAtMillis: at, signature: sig)
    }
}

/// What the answering node signs over an answer: it binds the request, the result, the height
/// it was evaluated at and the audit record that put it on the ledger.
public enum AnswerSignature {
    public static let domain: [UInt8] = Array("CreditLedger/v1/answer\n".utf8)

    public static func message(chainID: String, requestHash: Hash, resultHash: Hash, asOfHeight: UInt64, auditRecord: Hash) -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.raw(domain)
        w.string8(chainID)
        w.raw(requestHash)
        w.raw(resultHash)
        w.u64(asOfHeight)
        w.raw(auditRecord)
        return w.bytes
    }
}
