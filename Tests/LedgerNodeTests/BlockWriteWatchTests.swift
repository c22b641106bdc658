import Foundation
import Logging
@testable import LedgerNode
import XCTest

final class BlockWriteWatchTests: XCTestCase {
    /// A synced block write over the threshold is warned about at once; further ones within the
    /// warning interval are counted and named in the next warning; the status keeps the totals.
    func testSlowSyncedWritesAreWarnedAboutAtMostOncePerIntervalAndCounted() throws {
        let watch = BlockWriteWatch(logger: Logger(label: "test"))
        let start = ContinuousClock.now
        XCTAssertNil(watch.record(.milliseconds(3), height: 1, at: start))
        let first = try XCTUnwrap(watch.record(.milliseconds(400), height: 2, at: start + .seconds(1)))
        XCTAssertTrue(first.contains("block 2's synced write took 400 ms (over 250 ms): the disk is slow to sync"), first)
        XCTAssertNil(watch.record(.milliseconds(300), height: 3, at: start + .seconds(2)), "a second warning within 10 s")
        XCTAssertNil(watch.record(.milliseconds(900), height: 4, at: start + .seconds(5)))
        XCTAssertNil(watch.record(.milliseconds(250), height: 5, at: start + .seconds(20)), "at the threshold is not slow")
        let next = try XCTUnwrap(watch.record(.milliseconds(260), height: 6, at: start + .seconds(21)))
        XCTAssertTrue(next.contains("block 6's synced write took 260 ms") && next.contains("3 writes took over 250 ms since the last such warning, the slowest 900 ms"), next)

        let status = watch.status
        XCTAssertEqual(status["count"] as? UInt64, 6)
        XCTAssertEqual(status["slow"] as? UInt64, 4)
        XCTAssertEqual(status["slowest_ms"] as? UInt64, 900)
        XCTAssertEqual(status["slow_threshold_ms"] as? Int64, 250)
        let last = try XCTUnwrap(status["last_slow"] as? [String: any Sendable])
        XCTAssertEqual(last["height"] as? UInt64, 6)
        XCTAssertEqual(last["ms"] as? UInt64, 260)
    }

    /// The histogram `GET /metrics` serves: cumulative counts at each bound (a write at a bound
    /// counts in it), the sum in seconds, and the count, whose +Inf bucket holds what is over 5 s.
    func testTheHistogramIsCumulativeWithItsSumInSeconds() {
        let watch = BlockWriteWatch(logger: Logger(label: "test"))
        let now = ContinuousClock.now
        for took in [Duration.microseconds(500), .milliseconds(3), .milliseconds(250), .seconds(6)] {
            _ = watch.record(took, height: 1, at: now)
        }
        let h = watch.histogram
        XCTAssertEqual(DurationHistogram.bounds, [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
        XCTAssertEqual(h.times.cumulative, [1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3])
        XCTAssertEqual(h.times.count, 4)
        XCTAssertEqual(h.slow, 1)
        XCTAssertEqual(h.times.sumSeconds, 6.2535, accuracy: 1e-6)
    }

    /// The store reports each block's synced write to the watch of the node that opened it.
    func testTheStoreReportsEachSyncedBlockWrite() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("watch-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let opened = try DevNode.open(dataDirectory: directory)
        let watch = BlockWriteWatch(watching: opened.store, logger: Logger(label: "test"))
        let member = try XCTUnwrap(opened.store.genesis.member(DevNode.memberID))
        for _ in 0..<2 {
            _ = try opened.store.appendBlock([], timestampMillis: 1, proposer: member.id, signers: [(member, opened.keys.signing)])
        }
        XCTAssertEqual(watch.status["count"] as? UInt64, 2)
        XCTAssertEqual(watch.histogram.times.count, 2)
    }
}
