import LedgerCrypto

/// What validation needs to know about committed (and pending) ledger state.
public protocol LedgerStateReader {
    func isNonceUsed(signer: String, nonce: UInt64) throws -> Bool
    func committedTransaction(id: Hash) throws -> Transaction?
    // Score updates and model installs (defaults that refuse are in ScoringHooks.swift).
    /// Size of the committed log a new transaction is checked against.
    func committedLogSize() throws -> UInt64
    /// The subject's attestations and amendments (revocations under their target's subject)
    /// with log index below `logSize`, oldest first, at most `limit`.
    func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction]
    /// Timestamp (ms since 1970) of the block holding log entry `logSize − 1`.
    func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64?
    /// Timestamp (ms since 1970) of the committed block at `height`, or nil when it is not
    /// committed (height 0 has no block). By default from `committedLogSize(atHeight:)` and
    /// `blockTimestamp(coveringLogSize:)`; a store reads the header instead.
    func blockTimestamp(atHeight height: UInt64) throws -> UInt64?
    /// Timestamp (ms since 1970) of the block holding the committed transaction `id`, at
    /// `logIndex`. By default `blockTimestamp(coveringLogSize: logIndex + 1)`; a store can find
    /// the block through its transaction index instead of searching heights.
    func blockTimestamp(holding id: Hash, at logIndex: UInt64) throws -> UInt64?
    /// The amendments among the subject's first `limit` records below `logSize` (the window
    /// `subjectRecords` reads), oldest first: each one's id, its target, and whether it revokes.
    /// By default read from `subjectRecords`; a store reads its subject index instead of every
    /// transaction.
    func amendmentLinks(of subject: USCC, before logSize: UInt64, limit: Int) throws -> [AmendmentLink]
    /// A model installed by a committed governance transaction (genesis models are not included).
    func installedModel(hash: Hash) throws -> InstalledModel?
    /// Every model installed by committed governance transactions.
    func installedModels() throws -> [InstalledModel]
    /// A query policy installed by a committed governance transaction (genesis policies are not included).
    func installedPolicy(hash: Hash) throws -> InstalledPolicy?
    /// Every policy installed by committed governance transactions.
    func installedPolicies() throws -> [InstalledPolicy]
    /// Whether a committed query record already used this request nonce of `requester`.
    func queryNonceUsed(requester: String, nonce: UInt64) throws -> Bool
    /// Log size after the committed block at `height` (0 at height 0), or nil when that block is not committed.
    func committedLogSize(atHeight height: UInt64) throws -> UInt64?
    /// The newest `limit` consents (grants and revocations) about `subject` to `grantee` with
    /// log index below `logSize`, oldest first.
    func consents(of subject: USCC, grantee: String, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction]
    /// The committed record (attestation or correction) whose payload commitment this is, if any.
    func payloadCommitmentHolder(_ commitment: Hash) throws -> Hash?
    /// Ids of up to `limit` committed corrections whose target is `record`.
    func corrections(of record: Hash, limit: Int) throws -> [Hash]
    /// The committed erasure (erase_records) that first named `record`, if any.
    func erasure(of record: Hash) throws -> Hash?
}

/// An amendment as the revoked-record rule reads it (`LedgerStateReader.amendmentLinks`).
public struct AmendmentLink: Sendable, Equatable {
    public let id: Hash
    public let target: Hash
    public let revokes: Bool
    public init(id: Hash, target: Hash, revokes: Bool) {
        self.id = id; self.target = target; self.revokes = revokes
    }
}

/// A transaction and, for attestations and corrections, its payload envelope.
public struct Submission: Sendable {
    public let transaction: Transaction
    public let envelope: Envelope?
    public init(transaction: Transaction, envelope: Envelope?) {
        self.transaction = transaction
        self.envelope = envelope
    }
    /// Bytes held for it while it waits: the encoded transaction and envelope.
    public var byteCount: Int { transaction.encoded.count + (envelope?.encoded.count ?? 0) }
}

/// The rules a transaction must meet to enter the ledger. Pure: genesis and state are given.
public struct TransactionValidator: Sendable {
    public let genesis: Genesis
    /// The scoring engine that rechecks score updates and model documents. Without one,
    /// score updates and `install_model` governance are refused.
    public let scoreRules: (any ScoreRules)?
    /// The policy engine that checks policy documents at installation. Without one,
    /// `install_policy` governance is refused.
    public let policyRules: (any PolicyRules)?
    /// Score updates already checked against committed state on this node (a serving node sets
    /// one; verifiers and tests check each update as they meet it).
    public var scoreChecks: CheckMemo? = nil
    /// Audit records whose consent was found to stand (`checkConsent`) on this node, likewise.
    public var consentChecks: CheckMemo? = nil

    public init(genesis: Genesis, scoreRules: (any ScoreRules)? = nil, policyRules: (any PolicyRules)? = nil) {
        self.genesis = genesis
        self.scoreRules = scoreRules
        self.policyRules = policyRules
    }

    /// Checks needing no ledger state: chain, signer, key, signature, role, body rules,
    /// and the envelope. Safe to run in parallel. A verifier of a committed chain passes
    /// `envelopeMayBeShredded`: an envelope may then be absent (crypto-shredded), but one
    /// that is present must still match.
    /// `signedHere`: the caller signed this transaction itself a moment ago with the signer's
    /// key (a node's own audit records), so the Ed25519 check is skipped; every other rule still runs.
    public func checkStateless(_ submission: Submission, envelopeMayBeShredded: Bool = false, signedHere: Bool = false) throws {
        let tx = submission.transaction
        let h = tx.header
        guard h.chainID == genesis.chainID else {
            throw LedgerError(.wrongChain, "transaction is for chain \"\(h.chainID)\", this ledger is \"\(genesis.chainID)\"")
        }
        guard let signer = genesis.member(h.signer) else {
            throw LedgerError(.unknownSigner, "signer \"\(h.signer)\" is not a member of this consortium")
        }
        guard h.keyID == signer.keyID else {
            throw LedgerError(.unknownKey, "key id \(String(h.keyID, radix: 16)) is not the current key of \(h.signer)")
        }
        guard signedHere || signer.signingKey.isValidSignature(tx.signature, for: tx.signingBytes) else {
            throw LedgerError(.badSignature, "signature does not verify with \(h.signer)'s key")
        }
        switch tx.body {
        case .attestation, .amendment:
            // A revocation needs no role: only the record's issuer may amend it (checkStateful).
            if let record = tx.body.envelopedRecord { try checkIssuer(signer, for: record) }
        case .scoreUpdate(let s):
            try require(signer, .scorer, "submit score updates")
            try checkEndorsements(s, signer: signer)
        case .consent(let c):
            guard signer.has(.bank) || signer.has(.governmentIssuer) else {
                throw LedgerError(.notAuthorized, "\(signer.id) may not record consent: needs role bank or government_issuer")
            }
            guard let grantee = genesis.member(c.grantee), grantee.has(.bank) else {
                throw LedgerError(.invalidValue, "consent grantee \"\(c.grantee)\" is not a bank member")
            }
            if signer.has(.bank) && !signer.has(.governmentIssuer) && c.grantee != signer.id {
                throw LedgerError(.notAuthorized, "bank \(signer.id) may record consent only for itself, not for \(c.grantee)")
            }
        case .governance(let g):
            try require(signer, .custodian, "propose governance")
            // Nothing reads a parameter in this version, and approvals bind no nonce: accepted, one
            // custodian could record the same approved body again and again, and a later version
            // giving parameters a meaning would find them already "set" on the chain.
            guard g.action != .setParameter else {
                throw LedgerError(.invalidValue, "set_parameter is reserved: this version defines no parameter that governance can set")
            }
            try checkApprovals(g)
            if g.action == .installPolicy { try checkPolicyDocument(g) }
            if g.action == .eraseRecords {
                guard !g.document.isEmpty, g.document.count % 32 == 0, g.document.count <= 32 * FieldLimits.erasedRecords else {
                    throw LedgerError(.invalidValue, "erase_records lists 1-\(FieldLimits.erasedRecords) record ids of 32 bytes each; the document is \(g.document.count) bytes")
                }
            }
        case .evidence(let e):
            guard signer.has(.validator) || signer.has(.auditor) else {
                throw LedgerError(.notAuthorized, "\(signer.id) may not record evidence: needs role validator or auditor")
            }
            try e.verify(genesis: genesis)
        case .queryRecord(let q):
            guard signer.has(.validator) else {
                throw LedgerError(.notAuthorized, "\(signer.id) may not record query outcomes: needs role validator (the answering node)")
            }
            try q.check()
        }
        if let record = tx.body.envelopedRecord {
            try checkEnvelope(submission.envelope, for: record, mayBeShredded: envelopeMayBeShredded)
        } else if submission.envelope != nil {
            throw LedgerError(.invalidValue, "only attestations and corrections carry a payload envelope")
        }
    }

    /// Whether `signer`'s node may answer, and record, a query `requester` is shown to ask:
    /// its own, or any member's on a custodian's node.
    public static func mayRecordQuery(of requester: String, signer: String, genesis: Genesis) -> Bool {
        requester == signer || genesis.member(signer)?.has(.custodian) == true
    }

    /// How many heights past this node's head a query record's `as_of_height` may be when it is
    /// admitted to the mempool (`forMempool`): the answering node committed that height a moment
    /// before this one did. Its consent is checked once the height is committed here, and always
    /// when a block holding it is checked.
    public static let mempoolHeightSlack: UInt64 = 4

    /// How long before the block at a query record's `as_of_height` the request under a consent
    /// may have been signed: the node's 5-minute time window, and room for block times (the
    /// proposers' clocks) ahead of the answering node's clock. One hour.
    public static let requestAgeSlackMillis: UInt64 = 3_600_000

    /// Checks against committed state: replay guard and references. `forMempool`: the check of
    /// a gossiped transaction waiting for a block, which may name a height not committed here yet.
    /// `certified`: a block a quorum already certified (catch-up, the offline verifier). Rules
    /// added after blocks were certified are not applied to them, or a chain recorded under the
    /// earlier rules could not be caught up with: a query record's consent need only be a
    /// committed grant to the requester about the subject (`consentStood` tells the rest).
    public func checkStateful(_ tx: Transaction, state: some LedgerStateReader, forMempool: Bool = false, certified: Bool = false) throws {
        try checkNonce(tx, state: state)
        // An envelope is sealed for one record. Any issuer could put a committed record's
        // commitment and envelope (its wrapped keys reordered, even) in a record of its own; the
        // copy kept the wrapped keys after the original was erased, and a custodian's
        // full-profile query still decrypted the erased payload (found in review, 2026-12-06).
        if let record = tx.body.envelopedRecord, let holder = try state.payloadCommitmentHolder(record.payloadCommitment) {
            throw LedgerError(.replay, "payload commitment \(record.payloadCommitment.hexString.prefix(16))… is already that of record \(holder.hexString): a payload is sealed for one record only")
        }
        // A record's industry is a GB/T 4754-2017 code (rule added 2026-12-07: any code of up to
        // 8 of A-Z 0-9 was taken before; earlier certified blocks keep theirs).
        if !certified, let record = tx.body.envelopedRecord, !record.industry.isEmpty { try IndustryCode.check(record.industry) }
        switch tx.body {
        case .amendment(let a):
            // The reason is in the clear on every node, banks' included: a code, never free text
            // that could name a person (rule added 2026-12-06, digits refused since 2026-12-07;
            // earlier certified blocks keep theirs).
            if !certified, !AmendmentBody.isReasonCode(a.reason) {
                throw LedgerError(.invalidValue, "an amendment's reason is a code (\(AmendmentBody.reasonCodeRule)), "
                    + "not free text: it is in the clear on every node; the corrected record's payload says the rest. Got \"\(a.reason.clipped())\"")
            }
            guard let target = try state.committedTransaction(id: a.target) else {
                throw LedgerError(.unknownReference, "amendment target \(a.target.hexString) is not a committed transaction")
            }
            let targetSubject: USCC
            switch target.body {
            case .attestation(let t): targetSubject = t.subject
            case .amendment(let t) where t.replacement != nil: targetSubject = t.replacement!.subject
            default:
                throw LedgerError(.unknownReference, "amendment target \(a.target.hexString) is \(target.kind.withArticle), not an attestation")
            }
            guard target.header.signer == tx.header.signer else {
                throw LedgerError(.notAuthorized, "only the issuer \(target.header.signer) may amend its record \(a.target.hexString)")
            }
            if let r = a.replacement, r.subject != targetSubject {
                throw LedgerError(.invalidValue, "a correction must keep the subject \(targetSubject) of the record it corrects")
            }
            // A revocation of any version ends the record for good, also against a correction
            // recorded after it (SCORING.md §3.2): such an amendment was taken and changed nothing
            // (found by black-box testing; rule added 2026-12-06, certified blocks keep theirs).
            if !certified, let revocation = try revocation(ofRecordOf: a.target, subject: targetSubject, state: state) {
                throw LedgerError(.invalidValue, "record \(a.target.hexString) was revoked (by \(revocation.hexString)): "
                    + "a \(a.action == .correction ? "correction" : "revocation") of it changes nothing; attest the record again instead")
            }
        case .scoreUpdate(let s):
            // Before the memo: an install committed since the update was checked can supersede it.
            if !certified { try checkModelIsCurrent(s, state: state) }
            if let memo = scoreChecks, memo.reuse(tx.id) { break }
            try checkScoreUpdate(s, state: state)
            scoreChecks?.remember(tx.id)
        case .governance(let g) where g.action == .installModel:
            try checkModelInstall(g, state: state, certified: certified)
        case .governance(let g) where g.action == .installPolicy:
            // Rule added 2026-12-07, for what is not yet certified, as the other dated rules.
            if !certified, let problem = policyRules?.installProblem(g.document, genesis: genesis) {
                throw LedgerError(.invalidValue, "policy rejected: \(problem)")
            }
            let all = genesis.policies + (try state.installedPolicies())
            if let clash = all.first(where: { $0.hash == g.documentHash || ($0.name == g.name && $0.version == g.version) }) {
                throw LedgerError(.conflict, "policy \(clash.name) version \(clash.version) is already installed")
            }
        case .governance(let g) where g.action == .eraseRecords:
            // Each record once: the tools write the ids sorted and distinct, and a repeated id made
            // the erasure's count of records wrong (rule added 2026-12-07, for what is not yet
            // certified, as the other dated rules).
            if !certified {
                var seen = Set<HashKey>()
                if let twice = g.erasedRecords.first(where: { !seen.insert(HashKey($0)).inserted }) {
                    throw LedgerError(.invalidValue, "erase_records names record \(twice.hexString) twice: name each record once")
                }
            }
            for id in g.erasedRecords {
                guard let t = try state.committedTransaction(id: id), t.body.envelopedRecord != nil else {
                    throw LedgerError(.unknownReference, "erase_records names \(id.hexString), which is not a committed record with a payload")
                }
            }
            // An erasure sent again (approvals carry no nonce) was committed, and its purge run,
            // once more (found by black-box testing; rule added 2026-12-06, for what is not yet
            // certified, as the other dated rules).
            // Only when every record it names was erased: an erasure of a record must also name its
            // corrections, erased on their own before or not (found in review).
            if !certified, let first = try state.erasure(of: g.erasedRecords[0]),
               try g.erasedRecords.dropFirst().allSatisfy({ try state.erasure(of: $0) != nil }) {
                throw LedgerError(.conflict, "erase_records names only records erased already (\(g.erasedRecords[0].hexString) by erasure \(first.hexString)); nothing is left to erase")
            }
            // Every version below a named record goes with it: a correction carries a sealed copy
            // of a payload of its own, with wrapped keys of its own (found in review, 2026-12-06).
            let missed = try uncorrectedVersions(below: g.erasedRecords, state: state)
            if !missed.isEmpty {
                throw LedgerError(.invalidValue, "erase_records leaves \(missed.count) correction\(missed.count == 1 ? "" : "s") of the records it names: "
                    + "\(missed.prefix(8).map(\.hexString).joined(separator: ", "))\(missed.count > 8 ? " and \(missed.count - 8) more" : ""); "
                    + "every version of a record is erased together: approve and submit the erasure again with those ids added")
            }
        case .queryRecord(let q):
            // A record saying a member asked (one that spends its nonce: "requester_confirmed")
            // is the word of the node that signs it; validators see only the request's hash. Any
            // validator, a bank among them, could record that another bank asked about a
            // business, spend that bank's nonces and crowd its genuine queries out of the
            // subject's confirmed log (found by black-box testing). Only the requester's own node
            // or a custodian's answers a member's query (rule added 2026-12-07; earlier certified
            // blocks keep theirs).
            if !certified, q.spentRequestNonce != nil, !Self.mayRecordQuery(of: q.requester, signer: tx.header.signer, genesis: genesis) {
                throw LedgerError(.notAuthorized, "\(tx.header.signer) may not record that \(q.requester) asked: a query that a member is shown to ask is "
                    + "answered and recorded by that member's own node or a custodian's (\(genesis.custodians.map(\.id).joined(separator: ", ")))")
            }
            if q.spentRequestNonce != nil, try state.queryNonceUsed(requester: q.requester, nonce: q.requestNonce) {
                throw LedgerError(.replay, "request nonce \(q.requestNonce) of \(q.requester) is already answered or refused on the ledger (the same request sent to two nodes?)")
            }
            let policy = q.policy == Hashes.zero ? nil : try policyDocument(q.policy, state: state)
            if let policy, q.outcome == .answered, !certified { try checkAnswered(q, answeredBy: tx.header.signer, document: policy) }
            if q.consent != Hashes.zero {
                if certified {
                    guard let t = try state.committedTransaction(id: q.consent), case .consent(let grant) = t.body,
                          grant.action == .grant, grant.subject == q.subject, grant.grantee == q.requester else {
                        throw LedgerError(.unknownReference, "query record relies on consent \(q.consent.hexString), which is not a grant to \(q.requester) about this subject")
                    }
                } else if consentChecks?.reuse(tx.id) != true, try checkConsent(of: q, state: state, forMempool: forMempool) {
                    consentChecks?.remember(tx.id)
                }
            }
            // An answer read from a state long out of date is not taken: a node that was down or
            // cut off answered from before a revocation or an erasure the consortium had
            // recorded, and the subject's log showed an ordinary answer (found in review; rule
            // added 2026-12-07, for what is not yet certified, as the other dated rules).
            if !certified, q.outcome == .answered, let stale = try staleAnswer(q, signedAtMillis: tx.header.issuedAtMillis, state: state) {
                throw LedgerError(.invalidValue, stale)
            }
        case .consent(let c) where c.action == .grant && !certified:
            // A consent runs "until an expiry": one at the end of time (any u64 was taken) is
            // consent for good. Measured from the signed `issued_at`, so every validator agrees
            // (rule added 2026-12-06; earlier certified blocks keep theirs).
            let issued = tx.header.issuedAtMillis / 1000
            // One already over when signed would never answer: it is a mistake (a wrong clock, a
            // term in the past), and it used to be recorded without a word (rule added 2026-12-07).
            guard c.expiresAt > issued else {
                throw LedgerError(.invalidValue, "a consent grant expires when or before it is signed (expires_at \(c.expiresAt), issued_at \(issued) s), "
                    + "so it would never answer: give an expiry after the signing time")
            }
            guard c.expiresAt - issued <= ConsentBody.maxTermSeconds else {
                throw LedgerError(.invalidValue, "a consent grant expires more than \(ConsentBody.maxTermSeconds / 86_400) days after it is signed "
                    + "(expires_at \(c.expiresAt), issued_at \(issued) s): a consent runs until an expiry of at most \(ConsentBody.maxTermSeconds / 86_400) days")
            }
            // A grant records the hash of the signed consent form its recorder keeps; one of zeros
            // records none, and answered queries on the recorder's word alone (rule added 2026-12-07).
            guard c.evidence != Hashes.zero else {
                throw LedgerError(.invalidValue, "a consent grant records a commitment to the signed consent form (evidence); all zeros records none: "
                    + "keep the form and record its commitment (credit-node consent --evidence FORM)")
            }
            // A stop the subject gave at a government issuer is undone there only: the bank had
            // recorded a grant for itself right after such a revocation and was answered again
            // (found in review; rule added 2026-12-07). Only a grant an issuer records lifts it.
            if genesis.member(tx.header.signer)?.has(.governmentIssuer) != true {
                switch try governmentStop(before: c, state: state) {
                case nil: break
                case .windowFull:
                    throw LedgerError(.notAuthorized, "\(c.grantee) holds \(ConsentStanding.window) or more consents about \(c.subject), too many to tell whether a government "
                        + "issuer recorded a stop among them: a new grant is recorded by a government issuer")
                case .revocation(let id, let recorder):
                    throw LedgerError(.notAuthorized, "\(c.subject) revoked \(c.grantee)'s \(c.purpose.name) consent at \(recorder) (revocation \(id.hexString)): "
                        + "a new grant after a revocation a government issuer recorded is recorded by a government issuer too, where the business consents again")
                }
            }
        case .consent(let c) where c.action == .revoke:
            guard let t = try state.committedTransaction(id: c.target), case .consent(let grant) = t.body,
                  grant.action == .grant, grant.subject == c.subject, grant.grantee == c.grantee else {
                throw LedgerError(.unknownReference, "consent revocation target \(c.target.hexString) is not a grant to \(c.grantee) about \(c.subject)")
            }
            // The grant's purpose is the one revoked; a revocation naming another reads as one
            // for that purpose once the grant is out of sight. `credit-node consent --revoke`
            // checked this itself, but only through the operator's routes (rule added
            // 2026-12-06; earlier certified blocks keep theirs).
            if !certified, grant.purpose != c.purpose {
                throw LedgerError(.invalidValue, "consent revocation names purpose \(c.purpose.name), but grant \(c.target.hexString) is for \(grant.purpose.name): revoke it for that purpose")
            }
        default:
            break
        }
    }

    /// An answer is one its policy gives (`PolicyRules.checkAnswered`): to a caller the policy
    /// allows, for a purpose it answers for, about a subject when it is a subject policy, and
    /// naming a consent when the policy requires one (whether that consent stood is
    /// `checkConsent`). The engine answers only so; without this rule a validator could record an
    /// answer under a consent-requiring policy that names no consent at all, and the other
    /// validators, which check a named consent only, would take it (found in review, 2026-12-06).
    private func checkAnswered(_ q: QueryRecordBody, answeredBy: String, document: [UInt8]) throws {
        guard let policyRules else {
            throw LedgerError(.notAuthorized, "this node has no policy engine; it cannot check an answered query record")
        }
        try policyRules.checkAnswered(q, answeredBy: answeredBy, document: document, genesis: genesis)
    }

    /// How long before the answering node signed an answer's audit record the state it read (at
    /// `as_of_height`) may have been superseded, that is, block `as_of_height` + 1 committed: an
    /// answer is refused when the record's signed `issued_at` is more than this after that block's
    /// timestamp. An honest node answers at its head and signs at once, so only a node behind the
    /// consortium (down, cut off, catching up) reads a superseded state. Three minutes cover what
    /// block times allow: a proposal is timely up to a minute (and its round's propose timeout)
    /// after its stamp, a node's clock may run 30 s ahead, a height may take several rounds, and a
    /// node may be a few blocks behind under load. It is judged when the record is signed, not
    /// when a block takes it: a record waiting its turn behind a bulk upload is not refused for
    /// the wait. A proposer stamping blocks ahead only makes records look fresher.
    public static let answerLagMillis: UInt64 = 180_000

    /// Why an answer's state had been superseded for more than `answerLagMillis` when its record
    /// was signed (`signedAtMillis`), or nil (also when block `as_of_height` + 1 is not committed
    /// here). Reads only the record and committed block times, so every validator deciding the
    /// same height agrees.
    func staleAnswer(_ q: QueryRecordBody, signedAtMillis: UInt64, state: some LedgerStateReader) throws -> String? {
        // The record's signing time is the node's word; the request's is the requester's, which
        // the node held within its window of its clock. A record signed well before the request
        // it answers was backdated (to pass the rule below, say).
        if q.requestedAtMillis > signedAtMillis, q.requestedAtMillis - signedAtMillis > QueryRecordBody.requestWindowMillis {
            return "query record was signed at \(signedAtMillis) ms, \((q.requestedAtMillis - signedAtMillis) / 1000) s before the request it answers was signed "
                + "(\(q.requestedAtMillis) ms): a node answers a request within \(QueryRecordBody.requestWindowMillis / 1000) s of its own clock"
        }
        guard q.asOfHeight < UInt64.max, let supersededAt = try state.blockTimestamp(atHeight: q.asOfHeight + 1),
              signedAtMillis > supersededAt, signedAtMillis - supersededAt > Self.answerLagMillis else { return nil }
        return "query record answers from the state at height \(q.asOfHeight), which block \(q.asOfHeight + 1) superseded at \(supersededAt) ms, "
            + "\((signedAtMillis - supersededAt) / 1000) s before the record was signed (\(signedAtMillis) ms): a node answers from a state superseded "
            + "at most \(Self.answerLagMillis / 1000) s before (was the answering node down or cut off, and still catching up?)"
    }

    /// What keeps a bank from recording `grant` for itself (`governmentStop`).
    enum GovernmentStop {
        /// A government issuer's revocation for the grant's subject, grantee and purpose that no
        /// grant a government issuer recorded has followed.
        case revocation(Hash, by: String)
        /// A full window of consents about the subject to the grantee: a bank recording that
        /// many had pushed an issuer's revocation out of sight.
        case windowFull
    }

    /// Among the newest `ConsentStanding.window` consents about `grant`'s subject to its grantee,
    /// the stop a government issuer recorded for its purpose, if any. Entries the bank recorded
    /// itself do not lift it: its own second revocation of the revoked grant had made the newest
    /// entry its own, and its grant after that was taken (found in review).
    func governmentStop(before grant: ConsentBody, state: some LedgerStateReader) throws -> GovernmentStop? {
        let list = try state.consents(of: grant.subject, grantee: grant.grantee, before: try state.committedLogSize(), limit: ConsentStanding.window)
        if list.count >= ConsentStanding.window { return .windowFull }
        var stop: GovernmentStop? = nil
        for (l, c, purpose) in ConsentStanding.withPurposes(list) where purpose == grant.purpose {
            guard let recorder = genesis.member(l.transaction.header.signer), recorder.has(.governmentIssuer) else { continue }
            stop = c.action == .revoke ? .revocation(l.transaction.id, by: recorder.id) : nil
        }
        return stop
    }

    /// The document of a policy installed in genesis or by governance, by its hash.
    private func policyDocument(_ hash: Hash, state: some LedgerStateReader) throws -> [UInt8] {
        guard let document = try genesis.policy(hash: hash)?.document ?? state.installedPolicy(hash: hash)?.document else {
            throw LedgerError(.unknownReference, "query record names policy \(hash.hexString), which is not installed")
        }
        return document
    }

    /// Nil when a committed answer is one its policy gives and the consent it names stood where it
    /// was evaluated (or it needs none); otherwise why not. For auditing blocks certified under
    /// earlier rules, which validators took without either check.
    public func consentStood(_ q: QueryRecordBody, answeredBy: String, state: some LedgerStateReader) throws -> String? {
        do {
            if q.outcome == .answered { try checkAnswered(q, answeredBy: answeredBy, document: policyDocument(q.policy, state: state)) }
            if q.consent != Hashes.zero { _ = try checkConsent(of: q, state: state, forMempool: false, earlierRevocationRule: true) }
        } catch let e as LedgerError { return e.reason }
        return nil
    }

    /// An answer's consent stood where the answer was evaluated: a grant to the requester about
    /// the subject, for the query's purpose, among the newest consents below the log size at
    /// `as_of_height`, unrevoked there and unexpired at the request's signed time. The policy
    /// engine chose it by the same rule (`ConsentStanding`), so an honest node's records pass;
    /// a node that answers under a revoked or expired consent gets its audit record refused.
    ///
    /// True when checked in full: then the outcome holds on every later state of the chain, since
    /// it reads only what was committed below the log size at `as_of_height` (consents and their
    /// revocations, never removed) and the record's own fields, all covered by its transaction id
    /// (`consentChecks`). False when admitted to the mempool on the height slack alone.
    /// `earlierRevocationRule`: judge revocations as before 2026-12-07 (`ConsentStanding.revokedBefore`),
    /// when auditing certified answers: an answer validators took then must not be reported now.
    @discardableResult
    func checkConsent(of q: QueryRecordBody, state: some LedgerStateReader, forMempool: Bool, earlierRevocationRule: Bool = false) throws -> Bool {
        let id = q.consent.hexString.prefix(16)
        guard let subject = q.subject, let purpose = q.purpose.consentPurpose else {
            throw LedgerError(.invalidValue, "query record relies on consent \(id)… but names no subject or no purpose a subject consents to")
        }
        guard let logSize = try state.committedLogSize(atHeight: q.asOfHeight) else {
            let near = q.asOfHeight > Self.mempoolHeightSlack ? q.asOfHeight - Self.mempoolHeightSlack : 0
            if forMempool, try state.committedLogSize(atHeight: near) != nil { return false }
            throw LedgerError(.unknownReference, "query record was evaluated at height \(q.asOfHeight), which is not committed here")
        }
        let list = try state.consents(of: subject, grantee: q.requester, before: logSize, limit: ConsentStanding.window)
        guard let l = list.first(where: { $0.transaction.id == q.consent }), case .consent(let grant) = l.transaction.body,
              grant.action == .grant else {
            throw LedgerError(.unknownReference, "query record relies on consent \(id)…, which is not a grant to \(q.requester) about \(subject) "
                + "among the newest \(ConsentStanding.window) recorded before height \(q.asOfHeight)")
        }
        guard grant.purpose == purpose else {
            throw LedgerError(.invalidValue, "query record relies on consent \(id)… for \(grant.purpose.name); the query's purpose is \(q.purpose.name)")
        }
        // The request's signed time is what the consent is judged at, and only its hash is on the
        // ledger: an answering node could write an earlier time, before the consent expired. A
        // node answers within its time window, at a height it had committed, so the request was
        // signed no long while before that height's block (found in review, 2026-12-06).
        if let evaluatedAt = try state.blockTimestamp(coveringLogSize: logSize),
           q.requestedAtMillis < evaluatedAt, evaluatedAt - q.requestedAtMillis > Self.requestAgeSlackMillis {
            throw LedgerError(.invalidValue, "query record relies on consent \(id)… for a request signed at \(q.requestedAtMillis) ms, "
                + "more than \(Self.requestAgeSlackMillis / 60_000) minutes before the block at its as_of_height \(q.asOfHeight) (\(evaluatedAt) ms): "
                + "a node answers a request within minutes, at a height it has committed")
        }
        let verdict = try ConsentStanding.verdict(of: grant, at: l.logIndex, recordedAtMillis: {
            guard let millis = try state.blockTimestamp(holding: l.transaction.id, at: l.logIndex) else {
                throw LedgerError(.unknownReference, "query record relies on consent \(id)…, whose block is not committed here")
            }
            return millis
        }, revokedBefore: ConsentStanding.revokedBefore(list, earlierRule: earlierRevocationRule), requestedAtMillis: q.requestedAtMillis)
        switch verdict {
        case .stands: break
        case .revoked:
            throw LedgerError(.notAuthorized, "query record answers under consent \(id)…, which \(subject) revoked before height \(q.asOfHeight)")
        case .expired:
            throw LedgerError(.notAuthorized, "query record answers under consent \(id)…, which had expired when the request was signed "
                + "(at its expires_at, or \(ConsentBody.maxTermSeconds / 86_400) days after the block that recorded it)")
        }
        return true
    }

    /// The committed revocation that ended the record `version` belongs to (the original or any
    /// correction of it), if any: read from the subject's records, the window scoring reads
    /// (`FieldLimits.scoreInputs`), so the rule sees what scoring sees.
    func revocation(ofRecordOf version: Hash, subject: USCC, state: some LedgerStateReader) throws -> Hash? {
        let versions = try RecordVersions(subject: subject, state: state)
        guard !versions.revocations.isEmpty else { return nil }
        let mine = versions.root(of: version)
        return versions.revocations.first { versions.root(of: $0.target) == mine }?.id
    }

    /// The original record (the attestation every correction descends from) of the version an
    /// amendment targets, for the block claim that keeps a revoked record's other amendments out
    /// of its block (`BlockClaims`); nil for other transactions, or a target not committed (the
    /// stateful rules refuse that). Read from the subject's records, as the revoked-record rule.
    public func amendedRecord(of tx: Transaction, state: some LedgerStateReader) throws -> Hash? {
        guard case .amendment(let a) = tx.body, let target = try state.committedTransaction(id: a.target) else { return nil }
        let subject: USCC
        switch target.body {
        case .attestation(let t): subject = t.subject
        case .amendment(let t) where t.replacement != nil: subject = t.replacement!.subject
        default: return nil
        }
        return try RecordVersions(subject: subject, state: state).root(of: a.target).bytes
    }

    /// The committed corrections below `records` (corrections of them, of those, and so on) that
    /// `records` does not name, in breadth-first order. Each correction has one target, so each
    /// is read once; the search stops past the ids one erasure can name.
    func uncorrectedVersions(below records: [Hash], state: some LedgerStateReader) throws -> [Hash] {
        var seen = Set(records.map(HashKey.init))
        var missed: [Hash] = []
        var frontier = records
        while !frontier.isEmpty, seen.count <= FieldLimits.erasedRecords {
            var next: [Hash] = []
            for id in frontier {
                for c in try state.corrections(of: id, limit: FieldLimits.erasedRecords + 1) where seen.insert(HashKey(c)).inserted {
                    missed.append(c)
                    next.append(c)
                }
            }
            frontier = next
        }
        return missed
    }

    /// The replay guard alone: the signer's nonce is not used by a committed transaction.
    public func checkNonce(_ tx: Transaction, state: some LedgerStateReader) throws {
        if try state.isNonceUsed(signer: tx.header.signer, nonce: tx.header.nonce) {
            throw LedgerError(.replay, "nonce \(tx.header.nonce) was already used by \(tx.header.signer) (replayed transaction?)")
        }
    }

    private func require(_ member: Member, _ role: Role, _ what: String) throws {
        guard member.has(role) else {
            throw LedgerError(.notAuthorized, "\(member.id) may not \(what): needs role \(role.rawValue)")
        }
    }

    private func checkIssuer(_ signer: Member, for a: AttestationBody) throws {
        let role = a.category.issuerRole
        guard signer.has(role) else {
            throw LedgerError(.notAuthorized, "\(signer.id) may not attest \(a.category.name) records: needs role \(role.rawValue)")
        }
    }

    private func checkEnvelope(_ envelope: Envelope?, for a: AttestationBody, mayBeShredded: Bool) throws {
        if envelope == nil && mayBeShredded { return }
        guard let envelope else {
            throw LedgerError(.invalidValue, "an attestation needs its payload envelope")
        }
        guard envelope.hash == a.envelopeHash else {
            throw LedgerError(.invalidValue, "payload envelope does not match the attestation's envelope_hash")
        }
        try envelope.checkCustodians(genesis)
    }

    private func checkEndorsements(_ s: ScoreUpdateBody, signer: Member) throws {
        let message = s.endorsementMessage(chainID: genesis.chainID)
        var endorsers = Set<String>()
        for e in s.endorsements {
            guard e.member != signer.id else {
                throw LedgerError(.invalidValue, "a scorer cannot endorse its own score update")
            }
            try checkEndorsement(e, message: message)
            guard endorsers.insert(e.member).inserted else {
                throw LedgerError(.invalidValue, "score update endorsed twice by \(e.member)")
            }
        }
        guard endorsers.count >= genesis.scoreEndorsementsRequired else {
            throw LedgerError(.notAuthorized,
                "score update has \(endorsers.count) endorsements, needs \(genesis.scoreEndorsementsRequired)")
        }
    }

    /// One endorsement of an update: by a scorer, with its current key, over `message`
    /// (`ScoreUpdateBody.endorsementMessage`). A scorer collecting endorsements checks each as
    /// it arrives, with the same rule.
    public func checkEndorsement(_ e: MemberSignature, message: [UInt8]) throws {
        guard let m = genesis.member(e.member), m.has(.scorer) else {
            throw LedgerError(.notAuthorized, "score endorsement by \(e.member), which is not a scorer")
        }
        guard e.keyID == m.keyID, m.signingKey.isValidSignature(e.signature, for: message) else {
            throw LedgerError(.badSignature, "score endorsement by \(e.member) does not verify")
        }
    }

    /// A policy is checked when it is installed: a document that does not parse, or that would
    /// return raw payload fields to a non-custodian, never reaches the ledger.
    private func checkPolicyDocument(_ g: GovernanceBody) throws {
        guard let policyRules else {
            throw LedgerError(.notAuthorized, "this node has no policy engine; it cannot check install_policy")
        }
        let identity = try policyRules.policyIdentity(g.document, genesis: genesis)
        guard identity.name == g.name, identity.version == g.version else {
            throw LedgerError(.invalidValue,
                "install_policy names \(g.name) version \(g.version) but the document declares \(identity.name) version \(identity.version)")
        }
    }

    private func checkApprovals(_ g: GovernanceBody) throws {
        let message = g.approvalMessage(chainID: genesis.chainID)
        var approvers = Set<String>()
        for a in g.approvals {
            guard let m = genesis.member(a.member), m.has(.custodian) else {
                throw LedgerError(.notAuthorized, "governance approval by \(a.member), which is not a custodian")
            }
            guard a.keyID == m.keyID, m.signingKey.isValidSignature(a.signature, for: message) else {
                throw LedgerError(.badSignature, "governance approval by \(a.member) does not verify")
            }
            // One way to write an approval set: the tools refuse a repeat, and so do validators.
            guard approvers.insert(a.member).inserted else {
                throw LedgerError(.invalidValue, "governance approval by \(a.member) appears twice")
            }
        }
        let missing = Set(genesis.custodians.map(\.id)).subtracting(approvers)
        guard missing.isEmpty else {
            throw LedgerError(.notAuthorized, "governance needs the approval of every custodian; missing \(missing.sorted().joined(separator: ", "))")
        }
    }
}

/// A subject's corrections by the version each corrects, and its revocations, from the committed
/// amendment links (the window scoring reads): which record each version belongs to.
public struct RecordVersions {
    public private(set) var parent: [HashKey: Hash] = [:]
    public private(set) var revocations: [(target: Hash, id: Hash)] = []
    let count: Int

    public init(subject: USCC, state: some LedgerStateReader) throws {
        let links = try state.amendmentLinks(of: subject, before: try state.committedLogSize(), limit: FieldLimits.scoreInputs)
        count = links.count
        for l in links {
            if l.revokes { revocations.append((l.target, l.id)) } else { parent[HashKey(l.id)] = l.target }
        }
    }

    /// The original record `version` belongs to (itself for an original).
    public func root(of version: Hash) -> HashKey {
        var key = HashKey(version)
        var steps = 0
        while let p = parent[key], steps <= count { key = HashKey(p); steps += 1 }
        return key
    }
}
