import Consensus
import LedgerCore
import XCTest

/// Rounds arrive from peers as u32; the machine records lock and valid rounds as i32. Nothing a
/// peer sends may take the round past `TendermintMachine.maxRound` (where `Int32(round)` and
/// `round + 1` would trap).
final class RoundLimitTests: XCTestCase {
    let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])

    func vote(_ voter: String, round: UInt32) -> Vote {
        Vote(type: .prevote, height: 1, round: round, blockHash: nil, voter: voter, signature: [UInt8](repeating: 0, count: 64))
    }

    /// A follower restored just below the limit: f + 1 validators' votes above the limit (within
    /// `maxRoundsAhead` of its round) do not move it; at the limit they do, and a timeout there
    /// does not start another round.
    func testRoundsAboveTheLimitAreIgnored() {
        let limit = TendermintMachine.maxRound
        XCTAssertEqual(limit, UInt32(Int32.max))
        var saved = SafetyState(height: 1)
        saved.round = limit - 2
        saved.step = .propose
        var m = TendermintMachine(chainID: "t", validators: validators, signer: nil, committedHeight: 0, restored: saved)
        _ = m.start()
        for voter in ["v1", "v2"] { _ = m.handle(.vote(vote(voter, round: limit + 1))) }
        XCTAssertEqual(m.round, limit - 2, "votes above the round limit moved the machine")
        let p = Proposal(height: 1, round: limit + 2, polRound: -1, blockHash: [UInt8](repeating: 7, count: 32),
                         proposer: validators.proposer(height: 1, round: limit + 2), signature: [UInt8](repeating: 0, count: 64))
        XCTAssertFalse(m.handle(.proposal(p)).contains { if case .validate = $0 { return true }; return false },
                       "a proposal above the round limit was recorded")
        for voter in ["v1", "v2"] { _ = m.handle(.vote(vote(voter, round: limit))) }
        XCTAssertEqual(m.round, limit)
        _ = m.handle(.timeout(Timeout(step: .precommit, height: 1, round: limit)))
        XCTAssertEqual(m.round, limit, "a timeout took the round past the limit")
    }

    /// A persisted state with a round above the limit is refused on load.
    func testSafetyStateAboveTheRoundLimitIsRefused() {
        var s = SafetyState(height: 3)
        s.round = TendermintMachine.maxRound + 1
        XCTAssertThrowsError(try SafetyState.decode(s.encoded)) { error in
            XCTAssertTrue("\(error)".contains("above the limit"), "\(error)")
        }
        s.round = TendermintMachine.maxRound
        XCTAssertEqual(try SafetyState.decode(s.encoded), s)
    }
}
