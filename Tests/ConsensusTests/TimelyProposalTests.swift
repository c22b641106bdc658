import Consensus
import LedgerCore
import XCTest

/// A new block is prevoted only if its proposal arrives within `proposalLag(round:)` of the
/// block's timestamp (CometBFT's proposer-based timestamps): a proposer cannot stamp a block with
/// an old time, such as just after a quiet chain's last block. A block re-proposed with a proof of
/// lock keeps its timestamp and is prevoted however old it is.
final class TimelyProposalTests: XCTestCase {
    let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
    let block: Hash = [UInt8](repeating: 7, count: 32)
    let arrival: UInt64 = 1_800_000_000_000

    /// A validator that proposes neither round 0 nor round 1.
    var me: String { validators.ids.first { validators.proposer(height: 1, round: 0) != $0 && validators.proposer(height: 1, round: 1) != $0 }! }

    /// `me`, restored at `round` in the propose step.
    func machine(round: UInt32) -> TendermintMachine {
        var saved = SafetyState(height: 1)
        saved.round = round
        saved.step = .propose
        var m = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 0, restored: saved)
        _ = m.start()
        return m
    }

    func proposal(round: UInt32, polRound: Int32) -> Proposal {
        Proposal(height: 1, round: round, polRound: polRound, blockHash: block, proposer: validators.proposer(height: 1, round: round),
                 signature: [UInt8](repeating: 0, count: 64))
    }

    /// The prevote the machine sends among `actions`, as its value (nil inside for a nil prevote).
    func prevote(_ actions: [ConsensusAction]) -> Hash?? {
        for a in actions { if case .broadcastVote(let v) = a, v.type == .prevote { return .some(v.blockHash) } }
        return nil
    }

    func testANewBlockOlderThanTheLagIsPrevotedNil() {
        let lag = ConsensusTimeouts().proposalLag(round: 0)
        XCTAssertEqual(lag, 61_000, "a minute, plus round 0's propose timeout")
        for (age, prevoted) in [(lag, true), (lag + 1, false), (UInt64(0), true)] {
            var m = machine(round: 0)
            _ = m.handle(.proposal(proposal(round: 0, polRound: -1), receivedAtMillis: arrival))
            let actions = m.handle(.validated(height: 1, blockHash: block, valid: true, timestampMillis: arrival - age))
            XCTAssertEqual(prevote(actions), .some(prevoted ? block : nil), "block \(age) ms old on arrival")
        }
        // The verdict arrives before the proposal (the block was seen in an earlier round): the same.
        var m = machine(round: 0)
        _ = m.handle(.validated(height: 1, blockHash: block, valid: true, timestampMillis: arrival - lag - 1))
        XCTAssertEqual(prevote(m.handle(.proposal(proposal(round: 0, polRound: -1), receivedAtMillis: arrival))), .some(nil))
        // Without a time of arrival (a proposal this node made, or restored) it is taken as timely.
        m = machine(round: 0)
        _ = m.handle(.proposal(proposal(round: 0, polRound: -1)))
        XCTAssertEqual(prevote(m.handle(.validated(height: 1, blockHash: block, valid: true, timestampMillis: 1))), .some(block))
    }

    /// A block a quorum prevoted in round 0 is re-proposed in round 1 with that proof, still
    /// carrying its round-0 timestamp: prevoted however late, while the same block proposed as new
    /// in round 1 is not.
    func testABlockReproposedWithAProofOfLockIsNotHeldToTheLag() {
        let old = arrival - 10 * ConsensusTimeouts().proposalLag(round: 1)
        for polRound in [Int32(0), -1] {
            var m = machine(round: 1)
            for voter in validators.ids where voter != me {
                _ = m.handle(.vote(Vote(type: .prevote, height: 1, round: 0, blockHash: block, voter: voter, signature: [UInt8](repeating: 0, count: 64))))
            }
            _ = m.handle(.proposal(proposal(round: 1, polRound: polRound), receivedAtMillis: arrival))
            let actions = m.handle(.validated(height: 1, blockHash: block, valid: true, timestampMillis: old))
            XCTAssertEqual(prevote(actions), .some(polRound == 0 ? block : nil), "proof-of-lock round \(polRound)")
        }
    }

    /// The lag grows with the round's propose timeout, as later rounds wait longer for a proposal.
    func testTheLagGrowsWithTheRound() {
        var t = ConsensusTimeouts()
        t.proposalLag = 5_000
        XCTAssertEqual(t.proposalLag(round: 0), 5_000 + t.propose)
        XCTAssertEqual(t.proposalLag(round: 4), 5_000 + t.propose + 4 * t.proposeIncrement)
    }
}
