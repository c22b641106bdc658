import Foundation
import LedgerCrypto

/// A query answer (or refusal) as a self-contained receipt (docs/PRIVACY.md §7): the signed
/// request, the canonical result, the answering node's signature, a quorum-signed checkpoint
/// and inclusion proofs, under that checkpoint, of the facts the answer used and of its own
/// audit record. `credit-verify receipt` checks it offline with the genesis file alone.
public struct AnswerReceipt: Codable, Sendable, Equatable {
    public static let format = "creditledger-answer/v1"

    public struct Fact: Codable, Sendable, Equatable {
        /// audit_record, score_update, consent, policy or record.
        public var role: String
        public var transaction: String
        public var log_index: UInt64
        public var inclusion_proof: [String]
        public init(role: String, transaction: String, log_index: UInt64, inclusion_proof: [String]) {
            self.role = role; self.transaction = transaction; self.log_index = log_index; self.inclusion_proof = inclusion_proof
        }
    }

    public var format: String
    public var chain_id: String
    public var genesis_sha256: String
    /// The requester's signed query, base64.
    public var request: String
    public var outcome: String
    /// Refusal code; empty when answered.
    public var reason: String
    /// For people: why, in a sentence (not signed).
    public var message: String
    /// The canonical result text, whose salted hash (`AnswerReceipt.resultHash`) the audit record
    /// holds; empty for a refusal.
    public var result: String
    /// Hex of the 32 random bytes the result's hash is salted with; absent for a refusal, and in
    /// receipts made before 2026-12-06, whose result hash is the plain SHA-256 of the result.
    public var result_salt: String?
    public var as_of_height: UInt64
    public var answered_by: String
    public var answer_signature: String
    public var checkpoint: String
    public var tree_size: UInt64
    public var facts: [Fact]

    public init(chainID: String, genesisHash: Hash, request: [UInt8], outcome: String, reason: String, message: String,
                result: String, resultSalt: [UInt8]? = nil, asOfHeight: UInt64, answeredBy: String, answerSignature: [UInt8], checkpoint: String,
                treeSize: UInt64, facts: [Fact]) {
        format = Self.format; chain_id = chainID; genesis_sha256 = genesisHash.hexString
        self.request = request.base64String; self.outcome = outcome; self.reason = reason; self.message = message
        self.result = result; result_salt = resultSalt?.hexString; as_of_height = asOfHeight; answered_by = answeredBy
        answer_signature = answerSignature.base64String; self.checkpoint = checkpoint; tree_size = treeSize; self.facts = facts
    }

    /// The receipt as JSON with sorted keys, written directly: what `POST /v1/queries` sends.
    /// `JSONDecoder` reads it back to an equal receipt.
    public func json() -> [UInt8] {
        var w = JSONWriter(capacity: 1024 + facts.reduce(0) { $0 + $1.transaction.utf8.count + 48 * $1.inclusion_proof.count + 64 })
        w.object { o in
            o.field("answer_signature") { $0.string(answer_signature) }
            o.field("answered_by") { $0.string(answered_by) }
            o.field("as_of_height") { $0.integer(as_of_height) }
            o.field("chain_id") { $0.string(chain_id) }
            o.field("checkpoint") { $0.string(checkpoint) }
            o.field("facts") { w in
                w.array(facts) { w, f in
                    w.object { o in
                        o.field("inclusion_proof") { w in w.array(f.inclusion_proof) { $0.string($1) } }
                        o.field("log_index") { $0.integer(f.log_index) }
                        o.field("role") { $0.string(f.role) }
                        o.field("transaction") { $0.string(f.transaction) }
                    }
                }
            }
            o.field("format") { $0.string(format) }
            o.field("genesis_sha256") { $0.string(genesis_sha256) }
            o.field("message") { $0.string(message) }
            o.field("outcome") { $0.string(outcome) }
            o.field("reason") { $0.string(reason) }
            o.field("request") { $0.string(request) }
            o.field("result") { $0.string(result) }
            if let result_salt { o.field("result_salt") { $0.string(result_salt) } }
            o.field("tree_size") { $0.integer(tree_size) }
        }
        return w.bytes
    }

    public struct Verified: Sendable {
        public let request: QueryRequest
        public let record: QueryRecordBody
        public let auditRecordID: Hash
        public let checkpoint: Checkpoint
        public let checkpointSigners: [String]
        public let facts: [(role: String, transaction: Transaction, logIndex: UInt64)]
    }

    /// What an audit record's `result_hash` holds: zero for a refusal (no result); for an answer,
    /// SHA-256("CreditLedger/v1/answer-result\n" ‖ salt ‖ result) with 32 random bytes of salt
    /// that only the receipt carries. Every member's replica holds the audit record, and results
    /// are short (a grade, a band, a masked name): unsalted, any member could test guesses
    /// against another bank's answer, or a custodian's full-profile answer (decrypted payloads)
    /// even after the records were erased. Receipts made before 2026-12-06 carry no salt: their
    /// hash is the plain SHA-256 of the result.
    public static func resultHash(_ result: String, salt: [UInt8]?) -> Hash {
        if result.isEmpty { return Hashes.zero }
        guard let salt else { return SHA256.hash(Array(result.utf8)) }
        return SHA256.hash(Domain.answerResult + salt + Array(result.utf8))
    }

    /// Bytes of salt in a result hash.
    public static let resultSaltBytes = 32

    /// The roles a fact may have.
    public static let factRoles: Set<String> = ["audit_record", "score_update", "consent", "policy", "record"]
    /// The most records an answer proves (`PolicyEngine`: the records behind its flags and reasons).
    public static let maxRecordFacts = 16

    /// Checks everything against `genesis`; throws naming the first thing that fails.
    /// `policyRules` reads policy documents (whether a policy requires consent): `Policy.PolicyRules`,
    /// which `verify(genesis:)` in the Policy module passes.
    public func verify(genesis: Genesis, policyRules: any PolicyRules) throws -> Verified {
        func bad(_ s: String) -> LedgerError { LedgerError(.invalidProof, "answer: \(s)") }
        guard format == Self.format else { throw bad("format is \(format), expected \(Self.format)") }
        guard chain_id == genesis.chainID, genesis_sha256 == genesis.hash.hexString else {
            throw bad("it is for chain \(chain_id) with genesis \(genesis_sha256.prefix(64)), not this genesis (\(genesis.chainID), \(genesis.hash.hexString))")
        }
        let (cp, signers): (Checkpoint, [String])
        do { (cp, signers) = try Checkpoint.verify(signedNote: checkpoint, genesis: genesis) } catch { throw bad("checkpoint: \(error)") }
        guard cp.size == tree_size else { throw bad("tree size \(tree_size) is not the checkpoint's size \(cp.size)") }
        // With the policy rules, so that a policy fact (the install, a governance transaction)
        // has its signature and every custodian's approval checked like any other fact.
        let validator = TransactionValidator(genesis: genesis, policyRules: policyRules)
        var checked: [(String, Transaction, UInt64)] = []
        for (i, f) in facts.enumerated() {
            guard Self.factRoles.contains(f.role) else {
                throw bad("facts[\(i)] has unknown role \"\(f.role.clipped())\" (known: \(Self.factRoles.sorted().joined(separator: ", ")))")
            }
            guard let bytes = [UInt8](base64: f.transaction) else { throw bad("facts[\(i)] transaction is not base64") }
            let tx: Transaction
            do {
                tx = try Transaction.decode(bytes, maxBytes: genesis.limits.maxTransactionBytes)
                try validator.checkStateless(Submission(transaction: tx, envelope: nil), envelopeMayBeShredded: true)
            } catch { throw bad("facts[\(i)] (\(f.role)): \(error)") }
            let proof: [Hash]
            do { proof = try Merkle.proofHashes(base64: f.inclusion_proof) } catch { throw bad("facts[\(i)] (\(f.role)): \(error)") }
            guard Merkle.verifyInclusion(leafHash: tx.id, index: f.log_index, size: cp.size, proof: proof, root: cp.rootHash) else {
                throw bad("facts[\(i)] (\(f.role)): inclusion proof of log index \(f.log_index) does not verify against the checkpoint")
            }
            checked.append((f.role, tx, f.log_index))
        }
        guard let audit = checked.first(where: { $0.0 == "audit_record" }), case .queryRecord(let record) = audit.1.body else {
            throw bad("no audit record among the facts: an answer is only valid once its query is on the ledger")
        }
        guard checked.filter({ $0.0 == "audit_record" }).count == 1 else { throw bad("more than one audit record among the facts") }
        // Every fact is one the answer used, so that a label cannot dress an unrelated transaction
        // up (found in review, 2026-12-06: any committed transaction labelled "consent" passed,
        // and the verifier printed it as one): the one consent the audit record names, the install
        // of the policy it names, and records and a score update checked below.
        for (i, f) in checked.enumerated() {
            switch f.0 {
            case "consent" where f.1.id != record.consent:
                throw bad("facts[\(i)] is labelled consent but is not the consent the audit record names (\(record.consent == Hashes.zero ? "none" : record.consent.hexString.prefix(16) + "…"))")
            case "policy":
                guard case .governance(let g) = f.1.body, g.action == .installPolicy, g.documentHash == record.policy else {
                    throw bad("facts[\(i)] is labelled policy but is not the install of the policy the audit record names")
                }
            default: break
            }
        }
        guard checked.filter({ $0.0 == "consent" }).count <= 1, checked.filter({ $0.0 == "policy" }).count <= 1 else {
            throw bad("the receipt repeats its consent or policy fact")
        }
        // Nor may a transaction appear twice, or more records than an answer proves: a record
        // fact repeated 20 times verified (found by black-box testing).
        var ids = Set<HashKey>()
        for (i, f) in checked.enumerated() where !ids.insert(HashKey(f.1.id)).inserted {
            throw bad("facts[\(i)] (\(f.0)) repeats transaction \(f.1.id.hexString.prefix(16))…, an earlier fact")
        }
        let recordFacts = checked.filter { $0.0 == "record" }.count
        guard recordFacts <= Self.maxRecordFacts else {
            throw bad("the receipt holds \(recordFacts) record facts; an answer proves at most \(Self.maxRecordFacts)")
        }
        guard audit.1.header.signer == answered_by, let node = genesis.member(answered_by) else {
            throw bad("the audit record is signed by \(audit.1.header.signer), not by the answering node \(answered_by)")
        }
        guard let requestBytes = [UInt8](base64: request) else { throw bad("request is not base64") }
        let req: QueryRequest
        do { req = try QueryRequest.decode(requestBytes) } catch { throw bad("request: \(error)") }
        guard SHA256.hash(requestBytes) == record.requestHash, req.requester == record.requester || record.requester == Genesis.unknownRequester,
              req.nonce == record.requestNonce, req.issuedAtMillis == record.requestedAtMillis else {
            throw bad("the audit record does not record this request")
        }
        // The record must say what the request asked, as the answering node records it.
        let expectedRequester = Genesis.recordedRequester(req.requester)
        guard record.requester == expectedRequester, !(record.outcome == .answered && record.requester != req.requester) else {
            throw bad("the audit record names requester \(record.requester), the request is from \(req.requester.prefix(64))")
        }
        let requestSubject = try? USCC(req.subject)
        guard record.subject == requestSubject else {
            throw bad("the audit record is about subject \(record.subject?.code ?? "none"), the request asks about \"\(req.subject.clipped())\"")
        }
        let requestPurpose = QueryPurpose(name: req.purpose) ?? .unspecified
        guard record.purpose == requestPurpose else {
            throw bad("the audit record states purpose \(record.purpose.name), the request states \"\(req.purpose.clipped())\"")
        }
        // A request for another chain can only have been refused for that reason.
        guard req.chainID == genesis.chainID || (record.outcome == .refused && record.reason == "wrong_chain") else {
            throw bad("the request is for chain \(req.chainID.prefix(64)), not \(genesis.chainID)")
        }
        var salt: [UInt8]? = nil
        if let result_salt {
            guard !result.isEmpty, let bytes = [UInt8](hex: result_salt), bytes.count == Self.resultSaltBytes else {
                throw bad("result_salt must be \(Self.resultSaltBytes) bytes of hex beside a result")
            }
            salt = bytes
        }
        let resultHash = Self.resultHash(result, salt: salt)
        guard resultHash == record.resultHash else { throw bad("the result does not hash to the audit record's result hash (with its salt)") }
        guard (record.outcome == .answered ? "answered" : "refused") == outcome, record.reason == reason, record.asOfHeight == as_of_height else {
            throw bad("outcome, reason or height differ from the audit record")
        }
        let message = AnswerSignature.message(chainID: genesis.chainID, requestHash: record.requestHash, resultHash: resultHash,
                                              asOfHeight: as_of_height, auditRecord: audit.1.id)
        guard let sig = [UInt8](base64: answer_signature), node.signingKey.isValidSignature(sig, for: message) else {
            throw bad("the answer signature does not verify with \(answered_by)'s key")
        }
        // The node answers, and refuses for any reason but these three, only once the request's
        // signature verified (docs/PRIVACY.md §6). Otherwise the answering node alone could make
        // a refusal receipt that names as requester a member who never asked.
        if record.outcome == .answered || !QueryRecordBody.unauthenticatedRefusals.contains(record.reason) {
            guard let requester = genesis.member(req.requester), requester.keyID == req.keyID,
                  requester.signingKey.isValidSignature(req.signature, for: req.signingBytes) else {
                throw bad("the request is not signed by \(req.requester), and a \(record.outcome == .answered ? "query is answered" : "refusal for \(record.reason) is recorded") only for a signed request")
            }
        }
        // The node records the policy the request names, or none (an unknown policy, or a refusal
        // before the policy was looked up).
        guard record.policy == req.policy || (record.outcome == .refused && record.policy == Hashes.zero) else {
            throw bad("the request names another policy than the audit record")
        }
        var answeredUnder: [UInt8]? = nil   // the policy document of an answer
        if record.outcome == .answered {
            guard record.policy != Hashes.zero else { throw bad("the answered audit record names no policy") }
            if record.policy != Hashes.zero && genesis.policy(hash: record.policy) == nil {
                let installed = checked.contains { f in
                    if case .governance(let g) = f.1.body { return g.action == .installPolicy && g.documentHash == record.policy }
                    return false
                }
                guard installed else { throw bad("policy \(record.policy.hexString.prefix(16))… is neither in genesis nor among the facts") }
            }
            let document = genesis.policy(hash: record.policy)?.document ?? checked.lazy.compactMap { f -> [UInt8]? in
                if case .governance(let g) = f.1.body, g.action == .installPolicy, g.documentHash == record.policy { return g.document }
                return nil
            }.first
            // Its caller, purpose, subject and consent (the rule validators hold the record to).
            if let document {
                do { try policyRules.checkAnswered(record, answeredBy: audit.1.header.signer, document: document, genesis: genesis) } catch { throw bad("\(error)") }
            }
            // The grade, band, credit line and model stated come from the one score update proven
            // here: a receipt with its score fact removed, or swapped for another update about the
            // subject, does not verify.
            let scores = checked.filter { $0.0 == "score_update" }
            guard scores.count <= 1 else { throw bad("the receipt holds \(scores.count) score update facts; an answer relies on one") }
            var score: ScoreUpdateBody? = nil
            if let f = scores.first {
                guard case .scoreUpdate(let s) = f.1.body else { throw bad("the score update fact is not a score update") }
                score = s
            }
            if let document {
                do {
                    try policyRules.checkResult(document, genesis: genesis, record: record, parameters: req.parameters, result: result, score: score)
                } catch { throw bad("\(error)") }
                answeredUnder = document
            }
        }
        if record.consent != Hashes.zero {
            guard let c = checked.first(where: { $0.0 == "consent" && $0.1.id == record.consent }), case .consent(let grant) = c.1.body,
                  grant.action == .grant, grant.subject == record.subject, grant.grantee == record.requester,
                  grant.expiresAtMillis > record.requestedAtMillis else {
                throw bad("the consent the answer relied on is missing, not a grant to \(record.requester) about this subject, or expired at the request's time")
            }
            guard let purpose = record.purpose.consentPurpose, grant.purpose == purpose else {
                throw bad("the consent is for \(grant.purpose.name), the query's purpose is \(record.purpose.name)")
            }
            guard c.2 < audit.2 else { throw bad("the consent is not before the audit record in the log") }
        }
        for f in checked where f.0 == "score_update" {
            guard case .scoreUpdate(let s) = f.1.body, s.subject == record.subject, f.2 < audit.2 else {
                throw bad("the score update fact is not a score update about the queried subject before the audit record")
            }
        }
        if record.outcome == .refused, checked.contains(where: { $0.0 == "record" }) {
            throw bad("the receipt of a refusal holds record facts; a refusal uses no records")
        }
        if record.outcome == .refused, checked.contains(where: { $0.0 == "score_update" }) {
            throw bad("the receipt of a refusal holds a score update fact; a refusal uses none")
        }
        var categories: [Category] = []   // of the record facts, for the check below
        for f in checked where f.0 == "record" {
            // An attestation or a correction (which carries the corrected record): a consent
            // about the subject labelled "record" verified, and was shown as one (found by
            // black-box testing).
            let isRecord: Bool
            switch f.1.body {
            case .attestation(let a):
                isRecord = true
                categories.append(a.category)
            case .amendment(let a):
                isRecord = a.action == .correction
                if let r = a.replacement { categories.append(r.category) }
            default: isRecord = false
            }
            guard isRecord, record.subject != nil, f.1.body.subject == record.subject, f.2 < audit.2 else {
                throw bad("the record fact at log index \(f.2) is not a record (an attestation or a correction) about the queried subject before the audit record")
            }
        }
        // The records proven are those behind what the answer states: a record the answer did
        // not use, appended under a newer checkpoint, verified and was listed among the facts
        // proven; and a true flag with its record removed verified too (found by black-box
        // testing, 2026-12-07).
        if let document = answeredUnder {
            do {
                try policyRules.checkRecordFacts(document, genesis: genesis, result: result, categories: categories,
                                                 complete: categories.count < Self.maxRecordFacts)
            } catch { throw bad("\(error)") }
        }
        return Verified(request: req, record: record, auditRecordID: audit.1.id, checkpoint: cp, checkpointSigners: signers,
                        facts: checked.map { (role: $0.0, transaction: $0.1, logIndex: $0.2) })
    }
}
