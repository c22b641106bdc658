/// Whether a consent grant stands at a height (docs/PRIVACY.md §3). The policy engine uses it
/// to pick the grant an answer relies on; validators and the offline verifier use it to check
/// the grant a query record names. All of them read the same list (a subject's consents to one
/// grantee below the log size the answer was evaluated at) and the same certified block time of
/// the grant, so all reach the same verdict.
public enum ConsentStanding {
    /// How many of the newest consents about one subject to one grantee are read.
    public static let window = 1_024

    public enum Verdict: Equatable, Sendable {
        case stands
        /// A revocation recorded after the grant ends it (for the grant's purpose).
        case revoked
        /// The grant's end (`endMillis`: `expires_at` × 1000, at most the term after the block that
        /// recorded it) is not above the request's signed time.
        case expired
    }

    /// Per purpose, the log index of the newest revocation: it ends every grant of that purpose
    /// recorded before it. `list` holds one subject's consents to one grantee, oldest first,
    /// so a revocation's target grant is met before it. The purpose is the target's (a
    /// revocation's own purpose field is not checked against it); a target older than the
    /// list falls back to the revocation's own. Every revocation is a "stop", also one naming a
    /// grant revoked before: a subject knows the grant it gave, and revoking it again after the
    /// bank recorded a new grant used to change nothing, the new grant answering on (found by
    /// black-box testing, 2026-12-07). A retried command is the same transaction, which the
    /// ledger takes once (`credit-node consent` derives its nonce).
    /// `earlierRule`: as before 2026-12-07, when a second revocation of a grant already revoked
    /// ended nothing; for auditing answers certified then (`TransactionValidator.consentStood`),
    /// which validators checked under that rule.
    public static func revokedBefore(_ list: [LoggedTransaction], earlierRule: Bool = false) -> [ConsentBody.Purpose: UInt64] {
        var revokedBefore: [ConsentBody.Purpose: UInt64] = [:]
        var revokedTargets = Set<Hash>()
        for (l, c, p) in withPurposes(list) where c.action == .revoke && (!earlierRule || revokedTargets.insert(c.target).inserted) {
            revokedBefore[p] = max(revokedBefore[p] ?? 0, l.logIndex)
        }
        return revokedBefore
    }

    /// The consents of `list` (oldest first), each with the purpose it is for: a revocation's is
    /// its target grant's when that grant is in the list (validators refuse a revocation naming
    /// another since 2026-12-06), otherwise its own.
    public static func withPurposes(_ list: [LoggedTransaction]) -> [(entry: LoggedTransaction, consent: ConsentBody, purpose: ConsentBody.Purpose)] {
        var purposeOf: [Hash: ConsentBody.Purpose] = [:]
        return list.compactMap { l in
            guard case .consent(let c) = l.transaction.body else { return nil }
            if c.action == .grant { purposeOf[l.transaction.id] = c.purpose }
            return (l, c, c.action == .grant ? c.purpose : (purposeOf[c.target] ?? c.purpose))
        }
    }

    /// When `grant` ends: its `expires_at`, but no later than `ConsentBody.maxTermSeconds` after
    /// the block that recorded it (`recordedAtMillis`, that block's timestamp). Validators refuse
    /// a new grant that asks for more than the term past its `issued_at`; the signer chooses
    /// `issued_at`, though, so a grant signed as if in the future would otherwise stand for good
    /// (found in review, 2026-12-06). The block's time is agreed by consensus.
    public static func endMillis(of grant: ConsentBody, recordedAtMillis: UInt64) -> UInt64 {
        let (cap, overflow) = recordedAtMillis.addingReportingOverflow(ConsentBody.maxTermSeconds * 1000)
        return overflow ? grant.expiresAtMillis : min(grant.expiresAtMillis, cap)
    }

    /// The standing of `grant`, recorded at `logIndex` in a block of time `recordedAtMillis()`,
    /// for a request signed at `requestedAtMillis`. The block time is read only for a grant that
    /// is neither revoked nor past its own `expires_at` (a store reads it from disk).
    public static func verdict(of grant: ConsentBody, at logIndex: UInt64, recordedAtMillis: () throws -> UInt64,
                               revokedBefore: [ConsentBody.Purpose: UInt64], requestedAtMillis: UInt64) rethrows -> Verdict {
        if let through = revokedBefore[grant.purpose], logIndex < through { return .revoked }
        if grant.expiresAtMillis <= requestedAtMillis { return .expired }
        if endMillis(of: grant, recordedAtMillis: try recordedAtMillis()) <= requestedAtMillis { return .expired }
        return .stands
    }
}
