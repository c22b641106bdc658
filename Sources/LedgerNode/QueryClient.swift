import Foundation
import LedgerCore
import LedgerCrypto

/// Client-side helpers for queries and consent (used by `credit-node query`/`consent`, tests and benchmarks).
public enum QueryClient {
    /// A signed query request, ready to POST as `{"request": base64}`.
    public static func request(genesis: Genesis, keys: MemberSecretKeys, policy: Hash, subject: String, purpose: String,
                               parameters: [(name: String, value: String)] = [], nonce: UInt64 = SecureRandom.uint64(),
                               issuedAtMillis: UInt64) throws -> [UInt8] {
        guard let member = genesis.member(keys.memberID) else {
            throw LedgerError(.unknownSigner, "key file member \(keys.memberID) is not in this genesis")
        }
        var r = QueryRequest(chainID: genesis.chainID, requester: member.id, keyID: member.keyID, policy: policy,
                             subject: subject, purpose: purpose, parameters: parameters, nonce: nonce, issuedAtMillis: issuedAtMillis)
        try r.checkFields()
        r.sign(with: keys.signing)
        return r.encoded
    }

    /// A consent's nonce derived from what it says, so that a command run again after a timeout
    /// (the first send may have committed) is refused as a replay instead of recording a second
    /// grant or revocation. A revocation: from the key and the grant it ends. A grant: from the
    /// key, subject, grantee, purpose, evidence (the salted commitment to the form), term in days
    /// and the hour (UTC) it is signed in, so a renewal later (or with a new consent form) is a new
    /// grant; a retry that crosses the hour records a second copy, which changes nothing (a
    /// revocation ends every earlier grant).
    public static func consentNonce(keys: MemberSecretKeys, subject: USCC, grantee: String, purpose: ConsentBody.Purpose,
                                    evidence: Hash, days: Int, revoking: Hash?, issuedAtMillis: UInt64) -> UInt64 {
        AttestationRequest.derivedNonce("CreditLedger/v1/consent-nonce\n", keys: keys) { w in
            if let revoking {
                w.u8(ConsentBody.Action.revoke.rawValue)
                w.raw(revoking)
            } else {
                w.u8(ConsentBody.Action.grant.rawValue)
                w.raw(Array(subject.code.utf8))
                w.string8(grantee)
                w.u8(purpose.rawValue)
                w.raw(evidence)
                w.u64(UInt64(max(0, days)))
                w.u64(issuedAtMillis / 3_600_000)
            }
        }
    }

    /// A consent grant (or, with `revoking`, the revocation of that grant), signed by `keys`.
    public static func consent(genesis: Genesis, keys: MemberSecretKeys, subject: USCC, grantee: String,
                               purpose: ConsentBody.Purpose, expiresAt: UInt64, evidence: Hash, revoking: Hash? = nil,
                               nonce: UInt64 = SecureRandom.uint64(), issuedAtMillis: UInt64) throws -> Submission {
        guard let member = genesis.member(keys.memberID) else {
            throw LedgerError(.unknownSigner, "key file member \(keys.memberID) is not in this genesis")
        }
        let body = ConsentBody(action: revoking == nil ? .grant : .revoke, subject: subject, grantee: grantee, purpose: purpose,
                               expiresAt: expiresAt, evidence: evidence, target: revoking ?? Hashes.zero)
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID, nonce: nonce, issuedAtMillis: issuedAtMillis)
        return Submission(transaction: Transaction.sign(header: header, body: .consent(body), key: keys.signing), envelope: nil)
    }

    /// An install_policy governance transaction approved by `approvers` (every custodian), signed by `submitter`.
    public static func installPolicy(genesis: Genesis, document: [UInt8], name: String, version: UInt32,
                                     submitter: MemberSecretKeys, approvers: [MemberSecretKeys],
                                     nonce: UInt64 = SecureRandom.uint64(), issuedAtMillis: UInt64) throws -> Submission {
        try governance(genesis: genesis, GovernanceBody(action: .installPolicy, name: name, version: version, document: document),
                       submitter: submitter, approvers: approvers, nonce: nonce, issuedAtMillis: issuedAtMillis)
    }

    /// Crypto-shredding: an erase_records governance transaction naming `records`, approved by every custodian.
    public static func eraseRecords(genesis: Genesis, records: [Hash], submitter: MemberSecretKeys, approvers: [MemberSecretKeys],
                                    nonce: UInt64 = SecureRandom.uint64(), issuedAtMillis: UInt64) throws -> Submission {
        try governance(genesis: genesis, erasureProposal(records: records),
                       submitter: submitter, approvers: approvers, nonce: nonce, issuedAtMillis: issuedAtMillis)
    }

    /// A governance transaction approved by `approvers` (keys held here) and by `approvals`
    /// (signatures made elsewhere, already checked: `GovernanceApproval`), signed by `submitter`.
    /// The body lists the key-made approvals first, then the others, in the order given.
    public static func governance(genesis: Genesis, _ proposal: GovernanceBody, submitter: MemberSecretKeys, approvers: [MemberSecretKeys],
                                  approvals: [MemberSignature] = [],
                                  nonce: UInt64 = SecureRandom.uint64(), issuedAtMillis: UInt64) throws -> Submission {
        var body = proposal
        let message = body.approvalMessage(chainID: genesis.chainID)
        body.approvals = try approvers.map { k in
            guard let m = genesis.member(k.memberID) else { throw LedgerError(.unknownSigner, "approver \(k.memberID) is not in this genesis") }
            return MemberSignature(member: m.id, keyID: m.keyID, signature: k.signing.signature(for: message))
        } + approvals
        var seen = Set<String>()
        for a in body.approvals where !seen.insert(a.member).inserted {
            throw LedgerError(.invalidValue, "\(a.member) approves twice (an approver key and an approval file?)")
        }
        guard let member = genesis.member(submitter.memberID) else {
            throw LedgerError(.unknownSigner, "key file member \(submitter.memberID) is not in this genesis")
        }
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID, nonce: nonce, issuedAtMillis: issuedAtMillis)
        return Submission(transaction: Transaction.sign(header: header, body: .governance(body), key: submitter.signing), envelope: nil)
    }
}

extension LedgerClient {
    /// The installed policies as the node lists them.
    public func policies() throws -> [[String: Any]] { try getJSON("/v1/policies")["policies"] as? [[String: Any]] ?? [] }

    /// The hash of the latest version of the policy `name` (or `name@version`, or a hex hash).
    public func policyHash(_ spec: String) throws -> Hash {
        if spec.count == 64, let h = [UInt8](hex: spec) { return h }
        let parts = spec.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard !parts[0].isEmpty, parts.count == 1 || !parts[1].isEmpty else {
            throw LedgerError(.invalidValue, "policy \"\(spec)\" is not a name, name@version or 64-hex-digit hash")
        }
        let list = try policies().filter { $0["name"] as? String == parts[0] }
        let chosen = parts.count == 2 ? list.first { "\($0["version"] ?? "")" == parts[1] }
                                      : list.max { ($0["version"] as? Int ?? 0) < ($1["version"] as? Int ?? 0) }
        guard let hex = chosen?["sha256"] as? String, let hash = [UInt8](hex: hex) else {
            throw LedgerError(.notFound, "the node lists no policy \(spec) (GET /v1/policies)")
        }
        return hash
    }

    /// Sends a signed query; returns the HTTP status and the answer or refusal receipt.
    public func query(_ request: [UInt8]) throws -> (status: Int, receipt: AnswerReceipt) {
        let (status, data) = try send("POST", "/v1/queries", body: JSONView.data(["request": request.base64String]))
        guard status == 200 || status == 403, let receipt = try? JSONDecoder().decode(AnswerReceipt.self, from: data) else {
            try Self.check(status, data)
            throw LedgerError(.malformed, "the node's answer is not an answer receipt")
        }
        return (status, receipt)
    }
}
