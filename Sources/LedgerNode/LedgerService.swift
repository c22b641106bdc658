import LedgerCore
import LedgerStore

/// What the HTTP API needs from a node: the dev ledger and the consortium node both provide it.
public protocol LedgerService: AnyObject, Sendable {
    var store: ChainStore { get }
    var genesis: Genesis { get }
    /// Validates and admits submissions (all or none); returns when each is committed durably on this node.
    func submit(_ submissions: [Submission]) async throws -> [CommitResult]
    /// Node-specific fields for `GET /v1/status` (consensus round, peers, mempool).
    func status() -> [String: any Sendable]
}

extension Ledger: LedgerService {
    public func status() -> [String: any Sendable] { ["mode": "dev", "validators": 1] }
}
