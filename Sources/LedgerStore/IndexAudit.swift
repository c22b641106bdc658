import LedgerCore
import LedgerStorage

extension ChainStore {
    /// Checks the indexes a node answers from against its log below the head
    /// (docs/FORMAT.md §13): every transaction has its row in `transaction_index` and `nonces`,
    /// and its subject's row in `subjects`; a consent its row under `consent/`; a query record
    /// its rows under `query-log/`, `query-log-confirmed/` and `query-nonce/` where it has them;
    /// each with the value the log gives, and those families and prefixes hold no other rows.
    /// Returns the first problem in words, or nil. One pass over the log and one over each
    /// index: memory does not grow with the log. (A subject-index row deleted went unreported by
    /// `credit-verify chain`, and the node answered as if the record were not there; found by
    /// black-box testing, 2026-12-07.)
    public func auditIndexes(progress: (UInt64) -> Void = { _ in }) throws -> String? {
        try auditIndexesNoting(progress: progress).problem
    }

    /// As `auditIndexes`, with what was left unchecked: a store of an older format, opened
    /// read-only, has not built the query indexes of the current one yet (its node builds them
    /// at its next start), so only the families every format holds are checked.
    public func auditIndexesNoting(progress: (UInt64) -> Void = { _ in }) throws -> (problem: String?, unchecked: String?) {
        let format = try database.get(Family.meta, MetaKey.format).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let current = format == Self.storeFormat && consentIndexed && confirmedQueryLogIndexed
        // Named as it is: a store at the current format may still lack an index built at start.
        let why = format != Self.storeFormat ? "the store is at format \(format), not \(Self.storeFormat)"
            : "the store has not built its \([consentIndexed ? nil : "consent", confirmedQueryLogIndexed ? nil : "confirmed query-log"].compactMap { $0 }.joined(separator: " and ")) index yet"
        let unchecked = current ? nil : "\(why): its consent, query-log and request-nonce "
            + "indexes were not checked (its node builds them at its next start; audit again then)"
        return (try audit(queryIndexes: current, progress: progress), unchecked)
    }

    private func audit(queryIndexes: Bool, progress: (UInt64) -> Void) throws -> String? {
        let head = self.head
        var height: UInt64 = 0
        var blockEnd: UInt64 = 0
        var subjects: UInt64 = 0, consents: UInt64 = 0, queryLog: UInt64 = 0, confirmed: UInt64 = 0, queryNonces: UInt64 = 0
        for i in 0..<head.logSize {
            while i >= blockEnd {
                height += 1
                guard let header = try blockHeader(height: height) else { return "block \(height) is missing" }
                blockEnd = header.logSize
            }
            guard let tx = try transaction(at: i) else { return "the transaction at log index \(i) is missing" }
            let named = "transaction \(tx.id.hexString.prefix(16))… (log index \(i))"
            if try database.get(Family.transactionIndex, tx.id) != Self.u64Key(i) + Self.u64Key(height) {
                return "transaction_index does not place \(named) in block \(height)"
            }
            if try database.get(Family.nonces, Self.nonceKey(signer: tx.header.signer, nonce: tx.header.nonce)) != tx.id {
                return "nonces does not give nonce \(tx.header.nonce) of \(tx.header.signer) to \(named)"
            }
            // Everything below the head is committed, so an amendment's target is found without the block's others.
            if let subject = try subject(of: tx, earlier: []) {
                subjects += 1
                let row = try database.get(Family.subjects, Self.subjectKey(subject, logIndex: i))
                // Rows written before the scoring metadata joined them (2026-11-22) hold the kind
                // alone; readers fall back to the transaction for those (ScoreIndex.swift).
                let kindAlone = row == [tx.kind.rawValue] && (tx.kind == .attestation || tx.kind == .amendment)
                if row != Self.subjectIndexValue(tx) && !kindAlone {
                    return "subjects lacks \(subject)'s row for \(named), or holds another value there"
                }
            }
            guard queryIndexes else {
                if i % 65_536 == 0 { progress(i) }
                continue
            }
            switch tx.body {
            case .consent(let c):
                consents += 1
                if try database.get(Family.meta, QueryKey.consent(c.subject, grantee: c.grantee, logIndex: i)) == nil {
                    return "the consent index lacks \(named), a consent of \(c.subject) to \(c.grantee)"
                }
            case .queryRecord(let q):
                if let s = q.subject {
                    queryLog += 1
                    if try database.get(Family.meta, QueryKey.queryLog + Array(s.code.utf8) + Self.u64Key(i)) == nil {
                        return "\(s)'s query log lacks \(named)"
                    }
                    if q.spentRequestNonce != nil {
                        confirmed += 1
                        if try database.get(Family.meta, QueryKey.queryLogConfirmed + Array(s.code.utf8) + Self.u64Key(i)) == nil {
                            return "\(s)'s confirmed query log lacks \(named)"
                        }
                    }
                }
                if q.spentRequestNonce != nil {
                    queryNonces += 1
                    if try database.get(Family.meta, QueryKey.nonce(q.requester, q.requestNonce)) != tx.id {
                        return "the request-nonce index does not give nonce \(q.requestNonce) of \(q.requester) to \(named)"
                    }
                }
            default:
                break
            }
            if i % 65_536 == 0 { progress(i) }
        }
        // No rows beyond those.
        for (family, expected) in [(Family.transactionIndex, head.logSize), (Family.nonces, head.logSize), (Family.subjects, subjects)] {
            let held = try rows(in: family, prefix: [])
            if held != expected { return "\(family) holds \(held) rows; the log gives \(expected)" }
        }
        for (prefix, expected) in [(QueryKey.consent, consents), (QueryKey.queryLog, queryLog), (QueryKey.queryLogConfirmed, confirmed),
                                   (QueryKey.queryNonce, queryNonces)] where queryIndexes {
            let held = try rows(in: Family.meta, prefix: prefix)
            if held != expected { return "meta holds \(held) rows under \(String(decoding: prefix, as: UTF8.self)); the log gives \(expected)" }
        }
        return nil
    }

    /// Rows of `family` whose key begins with `prefix`.
    func rows(in family: String, prefix: [UInt8]) throws -> UInt64 {
        let it = try database.makeIterator(family)
        if prefix.isEmpty { it.seekToFirst() } else { it.seek(prefix) }
        var n: UInt64 = 0
        while it.isValid, prefix.isEmpty || it.key.starts(with: prefix) {
            n += 1
            it.next()
        }
        try it.checkStatus()
        return n
    }
}
