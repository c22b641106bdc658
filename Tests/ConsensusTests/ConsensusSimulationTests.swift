import Consensus
import Foundation
import LedgerCore
import XCTest

/// Runs the Tendermint state machine in the deterministic simulator (Simulator.swift).
/// More seeds: `CREDITLEDGER_SIM_SEEDS=20000 swift test --filter ConsensusSimulationTests/testSeeds`
/// (or `CREDITLEDGER_SIM_FIRST_SEED` to start elsewhere). One seed, verbose:
/// `CREDITLEDGER_SIM_SEED=N swift test --filter ConsensusSimulationTests/testReplaySeed`.
final class ConsensusSimulationTests: XCTestCase {
    private func env(_ name: String) -> UInt64? { ProcessInfo.processInfo.environment[name].flatMap { UInt64($0) } }

    private func simulate(seed: UInt64) throws -> SimNetwork {
        var rng = SimRandom(seed: seed &* 0x9E37_79B9)
        let net = SimNetwork(seed: seed, config: SimConfig.random(&rng))
        net.trace = env("CREDITLEDGER_SIM_TRACE") == seed
        try net.run()
        return net
    }

    func testSeeds() throws {
        let count = env("CREDITLEDGER_SIM_SEEDS") ?? 1_000
        let first = env("CREDITLEDGER_SIM_FIRST_SEED") ?? 1
        var blocks: UInt64 = 0, byzantineRuns = 0, evidenceRuns = 0, crashRuns = 0, backdatingRuns = 0, staleProposals = 0, tightLagRuns = 0
        for seed in first..<(first + count) {
            let net: SimNetwork
            do { net = try simulate(seed: seed) } catch {
                XCTFail("\(error)")
                return
            }
            let height = net.honest[0].height
            XCTAssertGreaterThan(height, 0, "seed \(seed): nothing committed")
            blocks += height
            if net.config.byzantine { byzantineRuns += 1 }
            if net.honest.contains(where: { !$0.evidence.isEmpty }) { evidenceRuns += 1 }
            if net.config.crashes { crashRuns += 1 }
            if net.config.byzantineBackdates { backdatingRuns += 1 }
            staleProposals += net.staleProposals
            if net.config.timeouts.proposalLag < 1_000 { tightLagRuns += 1 }
        }
        print("simulated \(count) seeds from \(first): \(blocks) blocks, \(byzantineRuns) with an equivocating validator (\(evidenceRuns) recorded evidence), \(crashRuns) with crashes, \(backdatingRuns) with a proposer dating its blocks back to their parents, \(tightLagRuns) with a proposal lag under 1 s: \(staleProposals) proposals of new blocks older than the lag when sent, none committed")
        XCTAssertGreaterThan(byzantineRuns, 0)
        if count >= 100 { XCTAssertGreaterThan(staleProposals, 0, "no run had a late proposal to refuse") }
        XCTAssertGreaterThan(evidenceRuns, byzantineRuns / 2, "equivocation is seen and reported in most Byzantine runs")
    }

    /// A seed replays exactly: same chains, same number of delivered messages.
    func testReplaySeed() throws {
        let seed = env("CREDITLEDGER_SIM_SEED") ?? 42
        let a = try simulate(seed: seed), b = try simulate(seed: seed)
        XCTAssertEqual(a.honest[0].chain.map(\.block.hash), b.honest[0].chain.map(\.block.hash))
        XCTAssertEqual(a.deliveredMessages, b.deliveredMessages)
        XCTAssertEqual(a.now, b.now)
        print("seed \(seed): \(a.config), height \(a.honest[0].height), \(a.deliveredMessages) messages, converged at \(a.now) ms")
    }

    /// The simulator's checks do catch a fork: two honest nodes made to disagree fail the run.
    func testCheckerDetectsFork() {
        let net = SimNetwork(seed: 1, config: SimConfig())
        let a = SimBlock(height: 1, parent: SimNetwork.genesisHash, transactions: [1], proposer: "v0", salt: 0)
        let b = SimBlock(height: 1, parent: SimNetwork.genesisHash, transactions: [1], proposer: "v0", salt: 1)
        func cert(_ block: SimBlock) -> [Vote] {
            ["v0", "v1", "v2"].map { id in
                let bytes = Vote.signingBytes(chainID: SimNetwork.chainID, type: .precommit, height: 1, round: 0, blockHash: block.hash, voter: id)
                return Vote(type: .precommit, height: 1, round: 0, blockHash: block.hash, voter: id,
                            signature: SimSigner.signature(id, bytes), attachment: SimSigner.attachment(id, height: 1, blockHash: block.hash))
            }
        }
        net.commit(0, block: a, certificate: cert(a))
        XCTAssertNil(net.failure)
        net.commit(1, block: b, certificate: cert(b))
        XCTAssertNotNil(net.failure)
        XCTAssertTrue(net.failure!.contains("fork at height 1"), net.failure!)
    }

    /// An equivocating proposer on a clean network: honest validators record evidence naming it, and still agree.
    func testEquivocationBecomesEvidence() throws {
        var config = SimConfig()
        config.byzantine = true
        config.lossPerMille = 0; config.duplicatePerMille = 0; config.crashes = false; config.partitions = false
        let net = SimNetwork(seed: 7, config: config)
        try net.run()
        XCTAssertGreaterThan(net.equivocationsSent, 0)
        let accused = Set(net.honest.flatMap(\.evidence).map(\.offender))
        XCTAssertEqual(accused, ["v3"])
        XCTAssertGreaterThan(net.honest[0].height, 0)
    }

    /// Two of four validators down: no quorum, so nothing commits and nothing forks; when they
    /// return, the transactions submitted meanwhile commit.
    func testNoQuorumNoProgressThenResume() throws {
        var config = SimConfig()
        config.lossPerMille = 0; config.duplicatePerMille = 0; config.crashes = false; config.partitions = false
        config.downUntilHeal = [0, 1]
        config.chaosMillis = 3_000
        let net = SimNetwork(seed: 11, config: config)
        try net.run()
        XCTAssertEqual(net.heightsAtHeal, [0, 0, 0, 0], "committed without a quorum")
        XCTAssertGreaterThan(net.honest[0].height, 0)
        XCTAssertTrue(net.converged())
    }

    /// The persisted safety state round-trips, so a restarted validator resends exactly what it signed.
    func testSafetyStateEncoding() throws {
        var s = SafetyState(height: 9)
        s.round = 3; s.step = .precommit; s.lockedRound = 2; s.lockedHash = Array(repeating: 7, count: 32)
        s.validRound = 2; s.validHash = s.lockedHash
        s.prevote = Vote(type: .prevote, height: 9, round: 3, blockHash: s.lockedHash, voter: "v1", signature: Array(repeating: 1, count: 64))
        s.precommit = Vote(type: .precommit, height: 9, round: 3, blockHash: nil, voter: "v1", signature: Array(repeating: 2, count: 64))
        XCTAssertEqual(try SafetyState.decode(s.encoded), s)
        XCTAssertEqual(s.encoded.first, SafetyState.format)
        var bytes = s.encoded
        bytes.removeLast()
        XCTAssertThrowsError(try SafetyState.decode(bytes))
        // With votes of earlier rounds: format 3, round-tripped; a vote that is not of an earlier
        // round of the state's height is refused.
        s.earlierVotes = [Vote(type: .precommit, height: 9, round: 2, blockHash: nil, voter: "v1", signature: Array(repeating: 3, count: 64))]
        XCTAssertEqual(s.encoded.first, SafetyState.earlierVotesFormat)
        XCTAssertEqual(try SafetyState.decode(s.encoded), s)
        for wrong in [Vote(type: .precommit, height: 9, round: 3, blockHash: nil, voter: "v1", signature: Array(repeating: 3, count: 64)),
                      Vote(type: .precommit, height: 8, round: 1, blockHash: nil, voter: "v1", signature: Array(repeating: 3, count: 64))] {
            var t = s
            t.earlierVotes = [wrong]
            XCTAssertThrowsError(try SafetyState.decode(t.encoded)) { XCTAssertTrue("\($0)".contains("earlier vote"), "\($0)") }
        }
    }

    /// A validator restarted after it left a round keeps its votes of that round and sends them
    /// again: a peer still waiting in it for a quorum may need exactly them. Three of four
    /// validators up; the first's nil precommit of round 0 is lost on its way to the other two,
    /// it times out into round 1 and restarts. Its round-0 votes were gone with the restart, and
    /// the other two waited in round 0 with two precommits and no timeout to fire: the height
    /// stalled for good with three honest validators connected (found in review, 2026-12-06).
    func testARestartedValidatorResendsItsVotesOfEarlierRounds() {
        let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
        let up = ["v0", "v1", "v2"]   // v3 is down throughout
        var machines: [String: TendermintMachine] = [:]
        for id in up {
            machines[id] = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: id), committedHeight: 0, restored: nil)
            _ = machines[id]!.start()
        }
        var persisted: [String: SafetyState] = [:]
        var scheduled: [String: [Timeout]] = [:]
        /// Hands `actions` of `from` to the others, dropping what `lost` says, and what they send in turn.
        func run(_ from: String, _ actions: [ConsensusAction], lost: (Vote, String) -> Bool = { _, _ in false }) {
            var queue = [(from, actions)]
            while !queue.isEmpty {
                let (sender, list) = queue.removeFirst()
                for a in list {
                    switch a {
                    case .persist(let st): persisted[sender] = st
                    case .schedule(let t, _): scheduled[sender, default: []].append(t)
                    case .broadcastVote(let v):
                        for to in up where to != sender && !lost(v, to) { queue.append((to, machines[to]!.handle(.vote(v)))) }
                    default: break
                    }
                }
            }
        }
        for id in up { run(id, machines[id]!.handle(.transactionsAvailable)) }
        // No proposal comes; each prevotes nil, then precommits nil on a quorum of nil prevotes.
        let lostPrecommit: (Vote, String) -> Bool = { v, _ in v.voter == "v0" && v.type == .precommit && v.round == 0 }
        for id in up { run(id, machines[id]!.handle(.timeout(Timeout(step: .propose, height: 1, round: 0))), lost: lostPrecommit) }
        let precommitTimeout = Timeout(step: .precommit, height: 1, round: 0)
        XCTAssertTrue(scheduled["v0", default: []].contains(precommitTimeout))
        for id in ["v1", "v2"] { XCTAssertFalse(scheduled[id, default: []].contains(precommitTimeout), "\(id) had a quorum of precommits") }
        guard let sent = machines["v0"]!.state.precommit else { return XCTFail("v0 did not precommit") }
        // v0 leaves round 0 and restarts from what it persisted.
        run("v0", machines["v0"]!.handle(.timeout(precommitTimeout)))
        guard let saved = persisted["v0"], saved.round == 1 else { return XCTFail("v0 did not persist round 1: \(String(describing: persisted["v0"]))") }
        XCTAssertTrue(saved.earlierVotes.contains(sent))
        XCTAssertEqual(try SafetyState.decode(saved.encoded), saved)
        machines["v0"] = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v0"), committedHeight: 0, restored: saved)
        let resumed = machines["v0"]!.start()
        XCTAssertTrue(resumed.contains(.broadcastVote(sent)), "the round-0 precommit was not sent again: \(resumed)")
        for case .broadcastVote(let v) in resumed where v.round == 0 { XCTAssertTrue(saved.earlierVotes.contains(v), "signed anew in round 0: \(v)") }
        run("v0", resumed)
        for id in ["v1", "v2"] { XCTAssertTrue(scheduled[id, default: []].contains(precommitTimeout), "\(id) still waits in round 0 with no timeout") }
        // Only the last rounds' votes are kept: after many rounds, none older than four rounds back.
        var m = machines["v0"]!
        for r: UInt32 in 1..<12 {
            _ = m.handle(.transactionsAvailable)
            _ = m.handle(.timeout(Timeout(step: .propose, height: 1, round: r)))
            _ = m.handle(.timeout(Timeout(step: .prevote, height: 1, round: r)))
            for v in ["v1", "v2"] {
                let bytes = Vote.signingBytes(chainID: "sim", type: .precommit, height: 1, round: r, blockHash: nil, voter: v)
                _ = m.handle(.vote(Vote(type: .precommit, height: 1, round: r, blockHash: nil, voter: v, signature: SimSigner.signature(v, bytes))))
            }
            _ = m.handle(.timeout(Timeout(step: .precommit, height: 1, round: r)))
        }
        XCTAssertEqual(m.round, 12)
        XCTAssertEqual(m.state.earlierVotes.count, 8)
        XCTAssertTrue(m.state.earlierVotes.allSatisfy { $0.round < m.round && $0.round + SafetyState.earlierVoteRounds >= m.round }, "\(m.state.earlierVotes.map(\.round))")
    }

    /// A restarted validator never signs a second, different vote for a round it already voted in.
    func testRestartDoesNotDoubleSign() {
        let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
        var m = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v2"), committedHeight: 0, restored: nil)
        _ = m.start()
        _ = m.handle(.transactionsAvailable)
        // v1 proposes at height 1 round 0; v2 prevotes for it.
        let block = Array(repeating: UInt8(5), count: 32)
        let bytes = Proposal.signingBytes(chainID: "sim", height: 1, round: 0, polRound: -1, blockHash: block, proposer: "v1")
        let actions = m.handle(.proposal(Proposal(height: 1, round: 0, polRound: -1, blockHash: block, proposer: "v1", signature: SimSigner.signature("v1", bytes))))
        XCTAssertTrue(actions.contains(.validate(height: 1, round: 0, blockHash: block)))
        let voted = m.handle(.validated(height: 1, blockHash: block, valid: true))
        guard case .persist(let saved)? = voted.first, let prevote = saved.prevote else { return XCTFail("no persisted prevote first: \(voted)") }
        XCTAssertEqual(prevote.blockHash, block)
        // Crash; restart from the persisted state; the same proposal timing out must not produce a nil prevote.
        var restarted = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v2"), committedHeight: 0, restored: saved)
        let resent = restarted.start()
        XCTAssertTrue(resent.contains(.broadcastVote(prevote)))
        let after = restarted.handle(.timeout(Timeout(step: .propose, height: 1, round: 0)))
        for case .broadcastVote(let v) in after where v.type == .prevote && v.round == 0 { XCTFail("signed a second prevote \(v)") }
    }
    /// A validator whose store is older than its persisted state (restored from a backup) signs
    /// nothing and persists nothing until it reaches the state's height, and there takes its
    /// earlier votes up again. It used to drop the state and start afresh at the store's next
    /// height, free to sign at heights and rounds where it had signed before.
    func testAStateAheadOfTheStoreIsKeptAndNothingIsSignedBelowIt() {
        let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
        let block = Array(repeating: UInt8(7), count: 32)
        var saved = SafetyState(height: 3)
        let bytes = Vote.signingBytes(chainID: "sim", type: .prevote, height: 3, round: 0, blockHash: block, voter: "v2")
        saved.prevote = Vote(type: .prevote, height: 3, round: 0, blockHash: block, voter: "v2", signature: SimSigner.signature("v2", bytes), attachment: [])
        saved.step = .prevote
        var m = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v2"), committedHeight: 0, restored: saved)
        XCTAssertEqual(m.height, 1)
        XCTAssertEqual(m.signsAgainFrom, 3)
        func signed(_ actions: [ConsensusAction]) -> [ConsensusAction] {
            actions.filter {
                switch $0 {
                case .broadcastVote, .broadcastProposal, .persist, .buildProposal: return true
                default: return false
                }
            }
        }
        var all = m.start()
        // Heights 1 and 2 run (v2 is a proposer in some round of them) and are decided elsewhere.
        for h: UInt64 in 1...2 {
            all += m.handle(.transactionsAvailable)
            for r: UInt32 in 0..<4 {
                all += m.handle(.timeout(Timeout(step: .propose, height: h, round: r)))
                all += m.handle(.timeout(Timeout(step: .prevote, height: h, round: r)))
                all += m.handle(.timeout(Timeout(step: .precommit, height: h, round: r)))
            }
            XCTAssertTrue(signed(all).isEmpty, "signed or persisted below the saved height: \(signed(all))")
            let moved = m.handle(.committedElsewhere(height: h))
            if h == 2 {
                // Taken up as a restart would: the earlier prevote resent, the step's timeout armed.
                XCTAssertTrue(moved.contains(.broadcastVote(saved.prevote!)), "\(moved)")
                XCTAssertTrue(moved.contains { if case .schedule(let t, _) = $0 { t.step == .prevote && t.height == 3 } else { false } }, "\(moved)")
            } else {
                all += moved
            }
        }
        XCTAssertEqual(m.height, 3)
        XCTAssertNil(m.signsAgainFrom)
        XCTAssertEqual(m.state.prevote, saved.prevote, "the earlier prevote was not taken up again")
        // At height 3 the proposal timing out does not make it sign a second prevote of round 0.
        let after = m.handle(.timeout(Timeout(step: .propose, height: 3, round: 0)))
        for case .broadcastVote(let v) in after where v.type == .prevote && v.round == 0 && v.blockHash != block { XCTFail("signed a second prevote \(v)") }
    }

    /// A height woken with nothing to order (a stray vote; transactions evicted after the height
    /// started) runs one round, then waits in the next, signing nothing and arming no round
    /// timeout, instead of running empty rounds with ever longer timeouts. Transactions, or a
    /// validator speaking in that round, start it; a vote of an older round does not; a restart
    /// keeps the round, so nothing is signed twice.
    func testAQuietRoundRestsUntilThereIsSomethingToOrder() throws {
        let validators = ValidatorSet(ids: ["v0", "v1", "v2", "v3"])
        var m = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v2"), committedHeight: 0, restored: nil)
        _ = m.start()
        func nilVote(_ type: VoteType, _ voter: String, round: UInt32) -> Vote {
            let bytes = Vote.signingBytes(chainID: "sim", type: type, height: 1, round: round, blockHash: nil, voter: voter)
            return Vote(type: type, height: 1, round: round, blockHash: nil, voter: voter, signature: SimSigner.signature(voter, bytes), attachment: [])
        }
        func roundTimeouts(_ actions: [ConsensusAction]) -> [Timeout] {
            actions.compactMap { if case .schedule(let t, _) = $0, t.step != .rebroadcast { return t }; return nil }
        }
        // A stray prevote wakes round 0; it runs its timeouts with nil votes all round.
        XCTAssertEqual(roundTimeouts(m.handle(.vote(nilVote(.prevote, "v0", round: 0)))).map(\.step), [.propose])
        XCTAssertEqual(m.step, .propose)
        _ = m.handle(.timeout(Timeout(step: .propose, height: 1, round: 0)))
        for v in ["v1", "v3"] { _ = m.handle(.vote(nilVote(.prevote, v, round: 0))) }
        _ = m.handle(.timeout(Timeout(step: .prevote, height: 1, round: 0)))
        for v in ["v0", "v1", "v3"] { _ = m.handle(.vote(nilVote(.precommit, v, round: 0))) }
        XCTAssertEqual(m.step, .precommit)
        let rested = m.handle(.timeout(Timeout(step: .precommit, height: 1, round: 0)))
        XCTAssertEqual(m.step, .waiting)
        XCTAssertEqual(m.round, 1)
        XCTAssertTrue(roundTimeouts(rested).isEmpty, "a quiet round armed another: \(rested)")
        guard case .persist(let saved)? = rested.last else { return XCTFail("the resting round was not persisted: \(rested)") }
        XCTAssertEqual(saved.round, 1)
        // Written in a format a binary from before resting refuses (it would take `waiting` for
        // round 0 and sign there again): 2, or 3 when it holds votes of earlier rounds, as this
        // one does (the nil votes of round 0); a fresh state stays format 1.
        XCTAssertEqual(saved.encoded.first, SafetyState.earlierVotesFormat)
        XCTAssertEqual(saved.earlierVotes.map(\.round), [0, 0])
        XCTAssertEqual(try SafetyState.decode(saved.encoded), saved)
        var restingOnly = saved
        restingOnly.earlierVotes = []
        XCTAssertEqual(restingOnly.encoded.first, SafetyState.restingFormat)
        XCTAssertEqual(SafetyState(height: 1).encoded.first, SafetyState.format)
        // Rebroadcasts go on; a late vote of round 0 does not wake it.
        XCTAssertEqual(roundTimeouts(m.handle(.timeout(Timeout(step: .rebroadcast, height: 1, round: 0)))), [])
        XCTAssertTrue(roundTimeouts(m.handle(.vote(nilVote(.precommit, "v0", round: 0)))).isEmpty)
        XCTAssertEqual(m.step, .waiting)
        // Restarted while resting: still round 1, waiting.
        var restarted = TendermintMachine(chainID: "sim", validators: validators, signer: SimSigner(memberID: "v2"), committedHeight: 0, restored: saved)
        XCTAssertTrue(roundTimeouts(restarted.start()).isEmpty)
        XCTAssertEqual(restarted.round, 1)
        XCTAssertEqual(restarted.step, .waiting)
        // Transactions start round 1 (not 0, where this validator already voted), with round 1's timeout.
        let started = restarted.handle(.transactionsAvailable)
        XCTAssertEqual(roundTimeouts(started), [Timeout(step: .propose, height: 1, round: 1)])
        XCTAssertEqual(restarted.round, 1)
        XCTAssertEqual(restarted.step, .propose)
        // Another validator's vote in the resting round wakes it too.
        XCTAssertEqual(roundTimeouts(m.handle(.vote(nilVote(.prevote, "v3", round: 1)))), [Timeout(step: .propose, height: 1, round: 1)])
        XCTAssertEqual(m.step, .propose)
    }
}
