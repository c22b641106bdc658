import Consensus
import LedgerCore
import XCTest

/// A validator whose whole data directory was restored from an older copy catches up blocks
/// whose commit certificates hold its own precommits, signed in a life its state does not
/// remember; it may have voted at the height after them too. It signs nothing until the height
/// after the last block it catches up, and the hold is persisted, so a restart keeps it. A
/// validator catching up after a plain crash (its state remembers what it signed) is not held.
final class ForgottenVotesTests: XCTestCase {
    let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
    let block: Hash = [UInt8](repeating: 9, count: 32)

    /// A validator that proposes at none of the heights 12 to 14 in round 0.
    var me: String { validators.ids.first { v in (12...14).allSatisfy { validators.proposer(height: $0, round: 0) != v } }! }

    func persisted(_ actions: [ConsensusAction]) -> [UInt64] {
        actions.compactMap { if case .persist(let s) = $0 { return s.height } else { return nil } }
    }

    func signed(_ actions: [ConsensusAction]) -> Bool {
        actions.contains {
            switch $0 {
            case .broadcastVote(let v): return v.voter == me
            case .broadcastProposal: return true
            default: return false
            }
        }
    }

    /// Proposal, verdict and the three other validators' precommits for `block` at `height`, round 0.
    func decide(_ m: inout TendermintMachine, height: UInt64) -> [ConsensusAction] {
        let proposer = validators.proposer(height: height, round: 0)
        var out = m.handle(.proposal(Proposal(height: height, round: 0, polRound: -1, blockHash: block, proposer: proposer,
                                              signature: [UInt8](repeating: 0, count: 64))))
        out += m.handle(.validated(height: height, blockHash: block, valid: true))
        for v in validators.ids where v != me {
            out += m.handle(.vote(Vote(type: .prevote, height: height, round: 0, blockHash: block, voter: v, signature: [UInt8](repeating: 1, count: 64))))
        }
        for v in validators.ids where v != me {
            out += m.handle(.vote(Vote(type: .precommit, height: height, round: 0, blockHash: block, voter: v, signature: [UInt8](repeating: 2, count: 64))))
        }
        return out
    }

    func testOwnPrecommitsItDoesNotRememberHoldItsSigning() {
        var m = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 9, restored: nil)
        _ = m.start()
        var actions = m.handle(.committedElsewhere(height: 10, ownPrecommitRound: 0))
        XCTAssertEqual(m.forgotOwnVotes, 10)
        XCTAssertEqual(m.signsAgainFrom, 12, "it may have voted at 11, after the last block it signed")
        XCTAssertEqual(persisted(actions), [12], "the hold is persisted")
        // A caught-up block without its signature moves the hold on too: it may have voted there
        // and not been among the precommits the certificate kept.
        actions = m.handle(.committedElsewhere(height: 11))
        XCTAssertEqual(m.signsAgainFrom, 13)
        XCTAssertEqual(persisted(actions), [13])
        // Height 12 is decided by the others; it follows without signing.
        actions = decide(&m, height: 12)
        XCTAssertTrue(actions.contains { if case .commit(let h, _, _, _) = $0 { return h == 12 } else { return false } })
        XCTAssertFalse(signed(actions), "signed at a height where it may have voted before")
        XCTAssertNil(m.forgotOwnVotes, "deciding live ends the catch-up")
        // At 13 it signs again.
        XCTAssertNil(m.signsAgainFrom)
        XCTAssertTrue(signed(decide(&m, height: 13)))
        // A restart during the hold keeps it: the persisted state is ahead of the store.
        let restarted = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 11,
                                          restored: SafetyState(height: 13))
        XCTAssertEqual(restarted.signsAgainFrom, 13)
    }

    /// Its own vote at the height under way, relayed back by a peer, that its state does not
    /// hold: it signs nothing more at that height, durably; its own votes echoed back are not that.
    func testItsOwnVoteRelayedBackThatItDoesNotRememberHoldsTheHeight() {
        var m = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 11, restored: nil)
        _ = m.start()
        let old = Vote(type: .prevote, height: 12, round: 0, blockHash: nil, voter: me, signature: [UInt8](repeating: 4, count: 64))
        let actions = m.handle(.vote(old))
        XCTAssertEqual(m.forgotOwnVotes, 12)
        XCTAssertEqual(m.signsAgainFrom, 14, "the life it forgot may have gone on to 13")
        XCTAssertEqual(persisted(actions), [14])
        XCTAssertFalse(signed(decide(&m, height: 12)), "it voted again at the height of the vote it forgot")
        XCTAssertFalse(signed(decide(&m, height: 13)), "it voted at the height after it")
        XCTAssertTrue(signed(decide(&m, height: 14)))

        // Its own proposal of the round under way, relayed back, that its state does not hold: the same.
        let proposerAt12 = validators.proposer(height: 12, round: 0)
        var p = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: proposerAt12), committedHeight: 11, restored: nil)
        _ = p.handle(.proposal(Proposal(height: 12, round: 0, polRound: -1, blockHash: [UInt8](repeating: 5, count: 32), proposer: proposerAt12,
                                        signature: [UInt8](repeating: 0, count: 64))))
        XCTAssertEqual(p.forgotOwnVotes, 12)
        XCTAssertEqual(p.signsAgainFrom, 14)

        // A validator that prevoted sees its prevote echoed back (a peer relaying it): nothing held.
        var n = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 11, restored: nil)
        _ = n.start()
        let proposer = validators.proposer(height: 12, round: 0)
        var own: Vote? = nil
        for a in n.handle(.proposal(Proposal(height: 12, round: 0, polRound: -1, blockHash: block, proposer: proposer, signature: [UInt8](repeating: 0, count: 64))))
            + n.handle(.validated(height: 12, blockHash: block, valid: true)) {
            if case .broadcastVote(let v) = a, v.voter == me { own = v }
        }
        let echoed = try! XCTUnwrap(own)
        _ = n.handle(.vote(echoed))
        XCTAssertNil(n.forgotOwnVotes)
        XCTAssertNil(n.signsAgainFrom)
    }

    /// A height f+1 validators report having committed is decided without this validator: it
    /// signs nothing there (a node just caught up or restarted would otherwise propose or vote at
    /// heights its peers had passed, before their relayed messages could show it its old ones).
    func testItSignsNothingAtAHeightOthersReportDecided() {
        var m = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 11, restored: nil)
        _ = m.start()
        m.decidedByOthersThrough = 12
        XCTAssertFalse(signed(decide(&m, height: 12)), "signed at a height its peers had decided")
        XCTAssertTrue(signed(decide(&m, height: 13)), "at the next height it signs again")
    }

    func testACrashedValidatorCatchingUpWhatItRemembersIsNotHeld() {
        var saved = SafetyState(height: 10)
        saved.step = .precommit
        saved.prevote = Vote(type: .prevote, height: 10, round: 0, blockHash: block, voter: me, signature: [UInt8](repeating: 3, count: 64))
        saved.precommit = Vote(type: .precommit, height: 10, round: 0, blockHash: block, voter: me, signature: [UInt8](repeating: 3, count: 64))
        var m = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 9, restored: saved)
        _ = m.start()
        let actions = m.handle(.committedElsewhere(height: 10, ownPrecommitRound: 0, blockHash: block))
        XCTAssertNil(m.forgotOwnVotes)
        XCTAssertNil(m.signsAgainFrom)
        XCTAssertEqual(persisted(actions), [])
        // A precommit of a round older than the state keeps votes of (it went on through many
        // rounds since) is taken as remembered: no hold for an honest validator.
        var far = SafetyState(height: 10)
        far.round = 9
        far.step = .propose
        var n = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 9, restored: far)
        _ = n.start()
        _ = n.handle(.committedElsewhere(height: 10, ownPrecommitRound: 2, blockHash: block))
        XCTAssertNil(n.forgotOwnVotes)
        // One of the rounds it keeps, that it does not hold: held.
        var near = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 9, restored: far)
        _ = near.start()
        _ = near.handle(.committedElsewhere(height: 10, ownPrecommitRound: 7, blockHash: block))
        XCTAssertEqual(near.forgotOwnVotes, 10)
        // Nor one whose store is behind its state (restored store, state kept): its votes below
        // that state's height are that state's past, and it takes the state up there.
        var behind = TendermintMachine(chainID: "t", validators: validators, signer: SimSigner(memberID: me), committedHeight: 9,
                                       restored: SafetyState(height: 12))
        _ = behind.start()
        _ = behind.handle(.committedElsewhere(height: 10, ownPrecommitRound: 0))
        _ = behind.handle(.committedElsewhere(height: 11, ownPrecommitRound: 1))
        XCTAssertNil(behind.forgotOwnVotes)
        XCTAssertNil(behind.signsAgainFrom, "at 12, its state's height, it signs again")
        // A follower (no key) is never held.
        var follower = TendermintMachine(chainID: "t", validators: validators, signer: nil, committedHeight: 9, restored: nil)
        _ = follower.start()
        _ = follower.handle(.committedElsewhere(height: 10, ownPrecommitRound: 0))
        XCTAssertNil(follower.forgotOwnVotes)
    }
}
