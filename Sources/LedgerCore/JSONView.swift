import Foundation

/// Human-readable JSON views of ledger objects. Views are for people; hashes and signatures
/// are always computed over the canonical binary encoding, never over these.
public enum JSONView {
    public static func transaction(_ tx: Transaction) -> [String: Any] {
        var out: [String: Any] = [
            "id": tx.id.hexString,
            "kind": tx.kind.name,
            "chain_id": tx.header.chainID,
            "signer": tx.header.signer,
            "key_id": String(format: "%08x", tx.header.keyID),
            "nonce": tx.header.nonce,
            "issued_at_ms": tx.header.issuedAtMillis,
            "signature": tx.signature.base64String,
        ]
        switch tx.body {
        case .attestation(let a): out["attestation"] = attestation(a)
        case .amendment(let a):
            var v: [String: Any] = ["action": a.action == .correction ? "correction" : "revocation",
                                    "target": a.target.hexString, "reason": a.reason]
            if let r = a.replacement { v["replacement"] = attestation(r) }
            out["amendment"] = v
        case .scoreUpdate(let s):
            out["score_update"] = [
                "subject": s.subject.code, "model_hash": s.modelHash.hexString, "points": Int(s.points), "grade": s.grade.name,
                "dimensions": s.dimensions.map { ["code": $0.code, "points": Int($0.points)] },
                "inputs": s.inputs.map(\.hexString), "as_of_log_size": s.asOfLogSize,
                "endorsements": s.endorsements.map { ["member": $0.member, "key_id": String(format: "%08x", $0.keyID)] },
            ] as [String: Any]
        case .consent(let c):
            out["consent"] = [
                "action": c.action == .grant ? "grant" : "revoke", "subject": c.subject.code, "grantee": c.grantee,
                "purpose": c.purpose.name, "expires_at": c.expiresAt, "evidence": c.evidence.hexString,
                "target": c.target.hexString,
            ] as [String: Any]
        case .governance(let g):
            out["governance"] = [
                "action": g.action.name, "name": g.name, "version": Int(g.version),
                "document_sha256": g.documentHash.hexString, "document_bytes": g.document.count,
                "approvals": g.approvals.map(\.member),
            ] as [String: Any]
        case .evidence(let e):
            out["evidence"] = [
                "offender": e.offender, "step": e.step.name, "height": e.height, "round": Int(e.round),
                "first": e.first.blockHash?.hexString ?? "nil", "second": e.second.blockHash?.hexString ?? "nil",
            ] as [String: Any]
        case .queryRecord(let q):
            out["query_record"] = [
                "requester": q.requester, "subject": q.subject?.code ?? "", "policy": q.policy.hexString,
                "purpose": q.purpose.name, "request_hash": q.requestHash.hexString, "request_nonce": q.requestNonce,
                "requested_at_ms": q.requestedAtMillis, "as_of_height": q.asOfHeight,
                "outcome": q.outcome == .answered ? "answered" : "refused", "reason": q.reason,
                "result_hash": q.resultHash.hexString, "consent": q.consent.hexString,
            ] as [String: Any]
        }
        return out
    }

    public static func attestation(_ a: AttestationBody) -> [String: Any] {
        [
            "subject": a.subject.code, "subject_kind": a.subjectKind.name, "category": a.category.name,
            "severity": a.severity.name, "event_date": a.eventDate.description, "industry": a.industry,
            "attributes": Dictionary(uniqueKeysWithValues: a.attributes.map { ($0.name, $0.value) }),
            "payload_commitment": a.payloadCommitment.hexString, "envelope_hash": a.envelopeHash.hexString,
        ]
    }

    public static func header(_ h: BlockHeader) -> [String: Any] {
        [
            "version": Int(BlockHeader.version), "chain_id": h.chainID, "height": h.height, "hash": h.hash.hexString,
            "timestamp_ms": h.timestampMillis, "previous_hash": h.previousHash.hexString,
            "transaction_count": Int(h.transactionCount), "transactions_root": h.transactionsRoot.hexString,
            "log_size": h.logSize, "log_root": h.logRoot.hexString, "proposer": h.proposer,
        ]
    }

    public static func certificate(_ c: CommitCertificate) -> [String: Any] {
        ["height": c.height, "round": c.round.map { Int($0) } ?? NSNull(), "block_hash": c.blockHash.hexString,
         "signatures": c.signatures.map { ["member": $0.member, "key_id": String(format: "%08x", $0.keyID),
                                            "signature": $0.signature.base64String] }]
    }

    public static func data(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    }
}
