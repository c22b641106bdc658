import LedgerCore

/// Token buckets bounding how fast refused queries are written to the ledger (docs/PRIVACY.md §9).
///
/// Every refusal becomes an audit record, and a request needs no valid key to be refused: without
/// a bound, anyone who reaches a node's HTTP port could make it write ledger records as fast as it
/// can sign them. A fresh request from a member (signed with its key, in the time window, nonce
/// unused) reserves a refusal from that member's bucket before it is evaluated, and gives it back
/// when it is answered; a member with an empty bucket is turned away unevaluated, so it cannot
/// probe past its budget unrecorded. Requests that do not show a member asking now (wrong chain,
/// unknown requester, bad signature, stale or replayed: anyone holding a copy of a signed request
/// can send those) share one bucket, whatever member they claim to be, and are refused before
/// anything is read. A request over its bucket is turned away unrecorded, like a request to a
/// busy node. Answers never use up a budget.
///
/// Integer arithmetic in thousandths of a refusal; time comes from the caller, so the buckets are
/// deterministic under a test clock. Memory is bounded: one bucket per genesis member plus one.
public struct RefusalBudget: Sendable {
    /// A bucket's size and refill rate.
    public struct Rate: Sendable, Hashable {
        public let burst: UInt64
        public let perSecond: UInt64
        public init(burst: UInt64, perSecond: UInt64) {
            precondition(burst > 0 && perSecond > 0, "a refusal budget needs a burst and a refill rate")
            self.burst = burst
            self.perSecond = perSecond
        }
        /// Per member, for refusals of requests it signed: a bank's batch of pre-checks for
        /// businesses that have not consented yet is refused in bulk, legitimately.
        public static let authenticated = Rate(burst: 600, perSecond: 10)
        /// All unauthenticated refusals together: a member's misconfigured client, or a forger.
        public static let unauthenticated = Rate(burst: 120, perSecond: 2)
    }

    public enum Key: Hashable, Sendable {
        case member(String)
        case unauthenticated
    }

    struct Bucket { var milliTokens: UInt64; var atMillis: UInt64 }

    public let authenticated: Rate
    public let unauthenticated: Rate
    private var buckets: [Key: Bucket] = [:]

    public init(authenticated: Rate = .authenticated, unauthenticated: Rate = .unauthenticated) {
        self.authenticated = authenticated
        self.unauthenticated = unauthenticated
    }

    public func rate(_ key: Key) -> Rate {
        if case .member = key { return authenticated }
        return unauthenticated
    }

    /// Takes one refusal from `key`'s bucket at `nowMillis`. Returns nil when it may be recorded,
    /// otherwise the milliseconds until the bucket holds one again.
    public mutating func take(_ key: Key, nowMillis: UInt64) -> UInt64? {
        let rate = rate(key)
        let capacity = rate.burst * 1000
        var bucket = buckets[key] ?? Bucket(milliTokens: capacity, atMillis: nowMillis)
        // A clock that steps back refills nothing; it never drains the bucket either.
        let elapsed = nowMillis > bucket.atMillis ? nowMillis - bucket.atMillis : 0
        let (refill, overflow) = elapsed.multipliedReportingOverflow(by: rate.perSecond)
        bucket.milliTokens = overflow ? capacity : min(capacity, bucket.milliTokens + min(refill, capacity))
        bucket.atMillis = max(bucket.atMillis, nowMillis)
        defer { buckets[key] = bucket }
        guard bucket.milliTokens >= 1000 else {
            let missing = 1000 - bucket.milliTokens
            return (missing + rate.perSecond - 1) / rate.perSecond
        }
        bucket.milliTokens -= 1000
        return nil
    }

    /// Returns one refusal taken from `key`'s bucket (a reserved refusal that was not needed),
    /// up to the bucket's size.
    public mutating func giveBack(_ key: Key) {
        guard var bucket = buckets[key] else { return }
        bucket.milliTokens = min(rate(key).burst * 1000, bucket.milliTokens + 1000)
        buckets[key] = bucket
    }
}
