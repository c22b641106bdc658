import Foundation
import LedgerCore
@testable import LedgerNode
import XCTest

final class AutoScoringTests: XCTestCase {
    /// After a block with many new subjects, each scorer takes its own subjects first and bounds
    /// them after; bounding first left the subjects past the bound unscored by every scorer.
    func testEachScorerTakesUpToTheBoundOfItsOwnSubjects() {
        let subjects = (0..<3_000).map { i in
            USCCGenerator.make(kind: .enterprise, division: "330106") { n in (i &* 7919 &+ 13) % n }
        }
        let first = Set(subjects.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        let a = AutoScorer.toScore(subjects, mine: { first.contains($0) }, max: 2_000)
        let b = AutoScorer.toScore(subjects, mine: { !first.contains($0) }, max: 2_000)
        XCTAssertEqual(a.chosen.count + b.chosen.count, 3_000, "every subject is scored by its scorer")
        XCTAssertTrue(a.chosen.allSatisfy(first.contains))
        XCTAssertEqual(a.skipped + b.skipped, 0)
        let over = AutoScorer.toScore(subjects, mine: { _ in true }, max: 2_000)
        XCTAssertEqual(over.chosen.count, 2_000)
        XCTAssertEqual(over.skipped, 1_000, "what is left is counted, and logged")
    }
}
