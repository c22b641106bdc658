import LedgerCore
import LedgerStore
import Logging
import Synchronization

/// Watches each block's synced write (RocksDB's write batch with its `fdatasync`, timed by the
/// store, `ChainStore.observeSyncedWrites`), which every commit and every query's audit record
/// waits for. A write over `slowThreshold` is logged as a
/// warning, at most one line per `warningInterval` (the line counts those since the last), and
/// `GET /v1/status` shows the totals (`synced_block_writes`), so an operator whose queries or
/// commits slow down can tell a disk that is slow to sync from a node that is busy. On a shared
/// virtual machine the disk was seen to take 20–565 ms for such a write while the node's own work
/// for the block took under 0.1 ms (docs/BENCHMARKS.md, 2026-12-07), and nothing said so.
public final class BlockWriteWatch: Sendable {
    /// A quarter of the consortium's 1 s commit-latency target; a query waits for its record's write.
    static let slowThreshold: Duration = .milliseconds(250)
    static let warningInterval: Duration = .seconds(10)

    private struct State {
        /// The write times `GET /metrics` serves.
        var times = DurationHistogram()
        var slow: UInt64 = 0
        var slowestMillis: UInt64 = 0
        var last: (height: UInt64, millis: UInt64)? = nil
        /// Slow writes not yet in a warning, and the slowest of them.
        var unreported: (count: UInt64, slowestMillis: UInt64) = (0, 0)
        var lastWarning: ContinuousClock.Instant? = nil
    }
    private let state = Mutex(State())
    private let logger: Logger

    /// Watches `store`'s synced block writes from now on.
    init(watching store: ChainStore, logger: Logger) {
        self.logger = logger
        store.observeSyncedWrites { [self] took, height in
            if let warning = record(took, height: height, at: .now) { logger.warning("\(warning)") }
        }
    }

    /// A watch that nothing reports to but `record` (tests).
    init(logger: Logger) { self.logger = logger }

    /// Counts one write that took `took`; returns the warning to log, when one is due.
    func record(_ took: Duration, height: UInt64, at now: ContinuousClock.Instant) -> String? {
        let millis = took.inMilliseconds
        return state.withLock { s -> String? in
            s.times.record(took)
            s.slowestMillis = max(s.slowestMillis, millis)
            guard took > Self.slowThreshold else { return nil }
            s.slow += 1
            s.last = (height, millis)
            s.unreported = (s.unreported.count + 1, max(s.unreported.slowestMillis, millis))
            if let last = s.lastWarning, now - last < Self.warningInterval { return nil }
            let (count, slowest) = s.unreported
            s.unreported = (0, 0)
            s.lastWarning = now
            let more = count > 1 ? "; \(count) writes took over \(Self.thresholdMillis) ms since the last such warning, the slowest \(slowest) ms" : ""
            return "block \(height)'s synced write took \(millis) ms (over \(Self.thresholdMillis) ms)\(more): the disk is slow to sync "
                + "(other I/O on it, or a stall of the host's storage), and every commit and every query's audit record waits for it. "
                + "GET /v1/status shows the totals (synced_block_writes)"
        }
    }

    static var thresholdMillis: Int64 { Int64(slowThreshold.inMilliseconds) }

    /// For `GET /metrics`: the write times, and the writes over `slowThreshold`.
    var histogram: (times: DurationHistogram, slow: UInt64) {
        state.withLock { s in (s.times, s.slow) }
    }

    /// For `GET /v1/status`.
    var status: [String: any Sendable] {
        state.withLock { s in
            var out: [String: any Sendable] = ["count": s.times.count, "slow_threshold_ms": Self.thresholdMillis, "slow": s.slow, "slowest_ms": s.slowestMillis]
            if let last = s.last { out["last_slow"] = ["height": last.height, "ms": last.millis] as [String: any Sendable] }
            return out
        }
    }
}
