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

    /// `time` counts the write it runs and returns its result; a write that throws is not counted.
    func testTimeCountsEachWriteItRuns() throws {
        let watch = BlockWriteWatch(logger: Logger(label: "test"))
        XCTAssertEqual(try watch.time(height: 1) { 7 }, 7)
        struct Failed: Error {}
        XCTAssertThrowsError(try watch.time(height: 2) { () throws -> Int in throw Failed() })
        XCTAssertEqual(watch.status["count"] as? UInt64, 1)
        XCTAssertNil(watch.status["last_slow"])
    }
}
