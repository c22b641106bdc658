import LedgerCrypto
import NIOCore

/// Exponential reconnect backoff with jitter: the n-th consecutive failure waits a uniformly
/// random time in [d/2, d], d = min(maximum, initial · 2ⁿ). A success resets it.
struct Backoff {
    let initial: TimeAmount
    let maximum: TimeAmount
    private(set) var failures = 0
    /// Uniform integer in 0..<bound; SecureRandom in production, fixed in tests.
    private let random: @Sendable (UInt32) -> UInt32

    init(initial: TimeAmount, maximum: TimeAmount, random: @escaping @Sendable (UInt32) -> UInt32 = SecureRandom.uniform) {
        precondition(initial.nanoseconds > 0 && maximum >= initial)
        self.initial = initial
        self.maximum = maximum
        self.random = random
    }

    /// The ceiling d for the current failure count, before jitter.
    var ceiling: TimeAmount {
        // 2^failures overflows quickly; the cap is reached long before 2^40.
        let shift = min(failures, 40)
        let (product, overflow) = initial.nanoseconds.multipliedReportingOverflow(by: Int64(1) << Int64(shift))
        return overflow ? maximum : min(maximum, .nanoseconds(product))
    }

    mutating func nextDelay() -> TimeAmount {
        let ceilingMicroseconds = max(2, ceiling.nanoseconds / 1_000)
        let half = ceilingMicroseconds / 2
        let jitter = Int64(random(UInt32(min(half, Int64(UInt32.max - 1))) + 1))
        failures += 1
        return .microseconds(half + jitter)
    }

    mutating func reset() { failures = 0 }
}
