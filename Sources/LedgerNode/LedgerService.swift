import LedgerCore
import LedgerCrypto
import LedgerStore

/// What the HTTP API needs from a node: the dev ledger and the consortium node both provide it.
public protocol LedgerService: AnyObject, Sendable {
    var store: ChainStore { get }
    var genesis: Genesis { get }
    /// Validates and admits submissions (all or none); returns when each is committed durably on this node.
    /// `signedHere`: every submission was just signed by this node's own key (`nodeKeys`) from
    /// state it had just read (a query's audit record), so its signature is not verified again
    /// and the references it makes are not read back; the nonce is still checked. Anything
    /// signed by another key is refused. Other validators check everything when they vote.
    func submit(_ submissions: [Submission], signedHere: Bool) async throws -> [CommitResult]
    /// Node-specific fields for `GET /v1/status` (consensus round, peers, mempool).
    func status() -> [String: any Sendable]
    /// The keys of the member running this node: it signs query audit records and answers with them.
    var nodeKeys: MemberSecretKeys { get }
    /// A fresh nonce for a transaction this node signs itself.
    func ownNonce() -> UInt64
    /// Why the node stopped writing blocks (a failed synced write), or nil while it writes.
    var writeFailureReason: String? { get }
    var stalledForMillis: UInt64 { get }
    /// Connected peers and how many blocks the height f+1 validator peers report is above the head;
    /// nil for a node without peers (the dev ledger) or before its first status tick.
    var connectivity: (peers: Int, behindBy: UInt64?)? { get }
    /// Peers that refuse this node's sessions now, with their reason (`P2PNode.peersEndingSessions`).
    var refusingPeers: [(peer: String, why: String)] { get }
    /// Whether the transaction is admitted here and waiting for a block.
    func isPending(_ id: Hash) -> Bool
    /// Times of this node's synced block writes (`GET /metrics`, `GET /v1/status`).
    var blockWrites: BlockWriteWatch { get }
}

extension LedgerService {
    public var writeFailureReason: String? { nil }
    /// How long no block has committed while transactions wait, once that is past the node's
    /// stall threshold; 0 otherwise (a dev ledger commits on its own).
    public var stalledForMillis: UInt64 { 0 }
    public var connectivity: (peers: Int, behindBy: UInt64?)? { nil }
    public var refusingPeers: [(peer: String, why: String)] { [] }

    /// Validates and admits submissions from elsewhere (all or none); returns when each is committed durably on this node.
    public func submit(_ submissions: [Submission]) async throws -> [CommitResult] {
        try await submit(submissions, signedHere: false)
    }
}

extension Ledger: LedgerService {
    public func isPending(_ id: Hash) -> Bool { pending(id) }

    public func status() -> [String: any Sendable] {
        var s: [String: any Sendable] = ["mode": "dev", "validators": 1, "synced_block_writes": writeWatch.status]
        if let failure = writeFailureReason { s["write_failure"] = failure }
        if let rescore = rescoreStatus { s["rescore"] = rescore }
        return s
    }
    public var nodeKeys: MemberSecretKeys { validatorKeys }
    public var blockWrites: BlockWriteWatch { writeWatch }
}

extension TransactionValidator {
    /// The checks every submission path runs before admission: the batch limit, then each
    /// transaction's stateless checks (and, with `state`, its stateful ones). The error names
    /// the index of the first bad transaction in a batch.
    func checkSubmissions(_ submissions: [Submission], state: (any LedgerStateReader)? = nil, signedBy own: Member? = nil) throws {
        guard submissions.count <= genesis.limits.maxBatchTransactions else {
            throw BatchError(index: nil, error: LedgerError(.fieldTooLarge,
                "batch holds \(submissions.count) transactions, limit \(genesis.limits.maxBatchTransactions)"))
        }
        for (i, s) in submissions.enumerated() {
            do {
                if let own, s.transaction.header.signer != own.id || s.transaction.header.keyID != own.keyID {
                    throw LedgerError(.notAuthorized, "a transaction submitted as this node's own is signed by \(s.transaction.header.signer)")
                }
                try checkStateless(s, signedHere: own != nil)
                if let state { try checkAgainstCommitted(s.transaction, state: state, signedHere: own != nil) }
            } catch {
                throw BatchError(index: submissions.count > 1 ? i : nil, error: error)
            }
        }
    }

    /// The checks against committed state before admission. A transaction this node made from
    /// committed state itself (`signedHere`) is checked for its nonce only.
    func checkAgainstCommitted(_ tx: Transaction, state: some LedgerStateReader, signedHere: Bool) throws {
        if signedHere { try checkNonce(tx, state: state) } else { try checkStateful(tx, state: state) }
    }
}
