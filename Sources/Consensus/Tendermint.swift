import LedgerCore

/// Timeout lengths in logical milliseconds; round r waits `base + r * increment`.
public struct ConsensusTimeouts: Sendable, Hashable {
    public var propose: UInt64 = 1_000
    public var proposeIncrement: UInt64 = 500
    public var prevote: UInt64 = 500
    public var prevoteIncrement: UInt64 = 250
    public var precommit: UInt64 = 500
    public var precommitIncrement: UInt64 = 250
    /// Own messages of the current round are sent again this often, so a lost message
    /// cannot stall a round.
    public var rebroadcast: UInt64 = 1_000
    /// Rounds beyond this many past the current one are ignored (bounds memory per height).
    public var maxRoundsAhead: UInt32 = 64
    /// How old a freshly built block (a proposal without a proof of lock) may be when its
    /// proposal reaches this node, on top of the round's propose timeout: `timely` in
    /// CometBFT's proposer-based timestamps. Block timestamps are wall-clock milliseconds, so
    /// this one is too. Twice the clock skew validators allow ahead (30 s), so honest clocks
    /// that each stray that far still agree.
    public var proposalLag: UInt64 = 60_000
    public init() {}

    /// How long after its block's timestamp a new block's proposal for `round` may arrive.
    public func proposalLag(round: UInt32) -> UInt64 { proposalLag &+ length(.propose, round: round) }

    func length(_ step: TimeoutStep, round: UInt32) -> UInt64 {
        let r = UInt64(min(round, 1_000))
        switch step {
        case .propose: return propose + r * proposeIncrement
        case .prevote: return prevote + r * prevoteIncrement
        case .precommit: return precommit + r * precommitIncrement
        case .rebroadcast: return rebroadcast
        }
    }
}

public enum TimeoutStep: UInt8, Sendable, Hashable { case propose = 1, prevote, precommit, rebroadcast }

public struct Timeout: Sendable, Hashable {
    public let step: TimeoutStep
    public let height: UInt64
    public let round: UInt32
    public init(step: TimeoutStep, height: UInt64, round: UInt32) { self.step = step; self.height = height; self.round = round }
}

public enum Step: UInt8, Sendable, Hashable {
    /// Nothing to order: no round runs (and no timeouts fire) until transactions arrive or
    /// another validator's message for this height and round (or a later one) does. A height
    /// starts here at round 0, and returns here, a round later, after a quiet round (one with no
    /// proposal, no vote for a block, and no lock or valid value).
    case waiting = 0
    case propose = 1, prevote = 2, precommit = 3
}

/// What must survive a crash so that a validator never signs two different messages for
/// one (height, round, step), and keeps its lock. Persisted and synced before anything it
/// covers is sent.
public struct SafetyState: Sendable, Hashable {
    public var height: UInt64
    public var round: UInt32
    public var step: Step
    public var lockedRound: Int32
    public var lockedHash: Hash?
    public var validRound: Int32
    public var validHash: Hash?
    /// The quorum of prevotes that made `validHash` valid in `validRound` (its proof of lock):
    /// sent along with a proposal that re-proposes it, so peers that missed them can accept it.
    public var validProof: [Vote]
    /// Own signed messages of the current round.
    public var proposal: Proposal?
    public var prevote: Vote?
    public var precommit: Vote?
    /// Own votes of the last `earlierVoteRounds` rounds before the current one, resent after a
    /// restart: a peer still waiting in one of those rounds for a quorum may need exactly them.
    /// They were lost with a restart, and a precommit lost in flight then left two honest peers
    /// waiting in its round with no timeout to fire, the height stalled while a third validator
    /// was down (found in review, 2026-12-06).
    public var earlierVotes: [Vote]
    public static let earlierVoteRounds: UInt32 = 4

    public init(height: UInt64) {
        self.height = height; round = 0; step = .waiting
        lockedRound = -1; lockedHash = nil; validRound = -1; validHash = nil; validProof = []
        proposal = nil; prevote = nil; precommit = nil; earlierVotes = []
    }

    public static let format: UInt8 = 1
    /// A state resting after a quiet round (`waiting` in a round above 0) is written in format 2:
    /// a binary from before resting existed reads `waiting` as round 0 of a fresh height and
    /// would sign again in round 0, so it must refuse the file instead. Every other state keeps
    /// format 1, which both read.
    public static let restingFormat: UInt8 = 2
    /// A state holding earlier rounds' votes is written in format 3 (the votes follow the
    /// precommit); an older binary refuses it, as it must a resting state, which format 3 may be.
    public static let earlierVotesFormat: UInt8 = 3
    static let maxEarlierVotes = Int(earlierVoteRounds) * 2

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 512)
        w.u8(!earlierVotes.isEmpty ? Self.earlierVotesFormat : step == .waiting && round > 0 ? Self.restingFormat : Self.format)
        w.u64(height); w.u32(round); w.u8(step.rawValue)
        w.i32(lockedRound); Self.optionalHash(lockedHash, &w)
        w.i32(validRound); Self.optionalHash(validHash, &w)
        w.u8(UInt8(validProof.count)); for v in validProof { v.encode(&w) }
        if let proposal { w.u8(1); proposal.encode(&w) } else { w.u8(0) }
        for v in [prevote, precommit] { if let v { w.u8(1); v.encode(&w) } else { w.u8(0) } }
        if !earlierVotes.isEmpty { w.u8(UInt8(earlierVotes.count)); for v in earlierVotes { v.encode(&w) } }
        return w.bytes
    }

    static func optionalHash(_ h: Hash?, _ w: inout ByteWriter) { if let h { w.u8(1); w.raw(h) } else { w.u8(0) } }

    public static func decode(_ bytes: [UInt8]) throws -> SafetyState {
        var r = ByteReader(bytes, context: "consensus safety state")
        let version = try r.u8("format")
        guard version == format || version == restingFormat || version == earlierVotesFormat else {
            throw LedgerError(.unsupportedVersion, "consensus safety state format is \(version), not \(format), \(restingFormat) or \(earlierVotesFormat)")
        }
        var s = SafetyState(height: try r.u64("height"))
        s.round = try r.u32("round")
        guard s.round <= TendermintMachine.maxRound else {
            throw LedgerError(.malformed, "consensus safety state has round \(s.round), above the limit \(TendermintMachine.maxRound)")
        }
        guard let step = Step(rawValue: try r.u8("step")) else { throw LedgerError(.malformed, "consensus safety state has an unknown step") }
        s.step = step
        func hash(_ field: String) throws -> Hash? { try r.u8(field) == 1 ? try r.raw(32, field) : nil }
        s.lockedRound = try r.i32("locked_round"); s.lockedHash = try hash("locked_hash")
        s.validRound = try r.i32("valid_round"); s.validHash = try hash("valid_hash")
        for _ in 0..<Int(try r.u8("valid_proof.count")) { s.validProof.append(try Vote.decode(&r)) }
        if try r.u8("has_proposal") == 1 { s.proposal = try Proposal.decode(&r) }
        if try r.u8("has_prevote") == 1 { s.prevote = try Vote.decode(&r) }
        if try r.u8("has_precommit") == 1 { s.precommit = try Vote.decode(&r) }
        if version == earlierVotesFormat {
            let n = Int(try r.u8("earlier_votes.count"))
            guard n >= 1, n <= maxEarlierVotes else {
                throw LedgerError(.malformed, "consensus safety state holds \(n) earlier votes, not 1 to \(maxEarlierVotes)")
            }
            for _ in 0..<n {
                let v = try Vote.decode(&r)
                guard v.height == s.height, v.round < s.round else {
                    throw LedgerError(.malformed, "consensus safety state holds a vote of height \(v.height) round \(v.round) as an earlier vote of height \(s.height) round \(s.round)")
                }
                s.earlierVotes.append(v)
            }
        }
        try r.expectEnd()
        return s
    }
}

/// Inputs to the state machine. Signatures (and precommit attachments) are checked by the
/// caller before a message gets here; the machine checks everything else.
public enum ConsensusEvent: Sendable {
    /// Transactions are waiting: start ordering the current height.
    case transactionsAvailable
    /// `receivedAtMillis`: when the node got it, by the clock block timestamps are read from
    /// (nil: not known, and the proposal is taken as timely).
    case proposal(Proposal, receivedAtMillis: UInt64? = nil)
    case vote(Vote)
    /// The answer to `.validate`: whether the proposed block is valid on top of the current head,
    /// and its timestamp (nil: not known, and every proposal of it is taken as timely).
    case validated(height: UInt64, blockHash: Hash, valid: Bool, timestampMillis: UInt64? = nil)
    /// The answer to `.buildProposal`: the block this node proposes (valid by construction).
    case built(height: UInt64, round: UInt32, blockHash: Hash)
    case timeout(Timeout)
    /// The node committed `height` by other means (catch-up from peers). `ownPrecommitRound`:
    /// the round of this validator's precommit in the block's commit certificate, if it holds one.
    case committedElsewhere(height: UInt64, ownPrecommitRound: UInt32? = nil, blockHash: Hash? = nil)
}

/// Outputs. The caller carries them out in order: a `.persist` before the sends it precedes.
public enum ConsensusAction: Sendable, Equatable {
    case persist(SafetyState)
    case broadcastProposal(Proposal)
    case broadcastVote(Vote)
    case schedule(Timeout, afterMillis: UInt64)
    /// Check the block with this hash (carried by a proposal) and answer with `.validated`.
    case validate(height: UInt64, round: UInt32, blockHash: Hash)
    /// Build a block for (height, round) from the mempool and answer with `.built`, once transactions exist.
    case buildProposal(height: UInt64, round: UInt32)
    /// A quorum precommitted `blockHash`: write it with a certificate made from `precommits`, durably,
    /// before carrying out the next action. The machine has moved to `height + 1`.
    case commit(height: UInt64, round: UInt32, blockHash: Hash, precommits: [Vote])
    /// A quorum precommitted a block this node does not have (or peers are ahead): fetch blocks from peers.
    case catchUp(height: UInt64)
    /// Record this equivocation on the ledger.
    case evidence(Equivocation)
}

/// Tendermint consensus (Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus",
/// 2018, Algorithm 1) for one validator, as a pure state machine: events in, actions out,
/// no clock, no I/O, no randomness. Line numbers in comments refer to Algorithm 1.
public struct TendermintMachine: Sendable {
    public let chainID: String
    public let validators: ValidatorSet
    public let signer: (any ConsensusSigner)?
    public let timeouts: ConsensusTimeouts

    public private(set) var state: SafetyState
    public var height: UInt64 { state.height }
    public var round: UInt32 { state.round }
    public var step: Step { state.step }
    /// Blocks committed by this machine (for tests and logs).
    public private(set) var decisions: UInt64 = 0

    /// The highest round the machine enters or accepts a message for. Rounds are signed as u32
    /// but lock and valid rounds are i32, so a round above `Int32.max` could not be recorded;
    /// messages above it are ignored on receipt and the round never advances past it (it cannot
    /// be reached by honest timeouts in any realistic time).
    public static let maxRound = UInt32(Int32.max)

    private var me: String? { signer?.memberID }
    private var isValidator: Bool { height >= signsFrom && height > decidedByOthersThrough && (me.map(validators.contains) ?? false) }
    /// Set by the node: the highest height f+1 validators report having committed. Up to it a
    /// height is decided without this validator (at least one honest one says so), and it signs
    /// nothing there. A node that has just caught up or restarted (from an older copy of its data
    /// directory, say) otherwise proposed or voted at heights its peers had passed, before their
    /// relayed messages could show it what it had signed there before (found in review).
    public var decidedByOthersThrough: UInt64 = 0
    /// A persisted state for a height above the next one: the store is older than the votes
    /// this validator signed (restored from a backup, or lost). Kept, and taken up when the
    /// machine reaches its height; below it the machine signs nothing (`signsFrom`), since it
    /// signed at those heights before and no longer knows what.
    private var deferred: SafetyState?
    private var signsFrom: UInt64 = 0
    /// The height from which this validator signs again, when a persisted state was ahead of
    /// the store at start, or its own votes were found in blocks it caught up (for the node to
    /// log); nil otherwise.
    public var signsAgainFrom: UInt64? { signsFrom > height ? signsFrom : nil }
    /// The first height at which a caught-up block held a precommit of this validator, or a peer
    /// relayed a vote of it, that its state did not remember; nil once it decides a height live
    /// again.
    public private(set) var forgotOwnVotes: UInt64?
    /// Whether the state holds `vote` (of this validator, at the current height) by what it says:
    /// type, round and block (a restored precommit is sent again with a new attachment).
    private func remembers(_ type: VoteType, round r: UInt32, blockHash: Hash?) -> Bool {
        ([state.prevote, state.precommit].compactMap { $0 } + state.earlierVotes).contains {
            $0.type == type && $0.round == r && $0.blockHash == blockHash
        }
    }

    /// Signs nothing up to height `last`, durably: a fresh state for the height after it is
    /// persisted and taken up there, as a state ahead of the store is after a restart.
    private mutating func holdSigning(from first: UInt64, through last: UInt64, _ out: inout [ConsensusAction]) {
        forgotOwnVotes = forgotOwnVotes ?? first
        guard me != nil, last + 1 > signsFrom else { return }
        signsFrom = last + 1
        let hold = SafetyState(height: last + 1)
        deferred = hold
        out.append(.persist(hold))
    }

    // Messages of the current height.
    private var proposals: [UInt32: Proposal] = [:]
    /// Votes by round and voter. An equivocating voter may hold several (up to
    /// `maxVotesPerVoter`); a tally for a block counts every validator that signed a vote for it,
    /// so a proof of lock that includes an equivocator's vote is still recognised.
    private var prevotes: [UInt32: [String: [Vote]]] = [:]
    private var precommits: [UInt32: [String: [Vote]]] = [:]
    private static let maxVotesPerVoter = 3
    private var validity: [Hash: Bool] = [:]
    private var validationRequested = Set<Hash>()
    /// When the proposal of each round first reached this node, and each block's timestamp:
    /// together they say whether a freshly built block was timely (`timely`).
    private var receivedAt: [UInt32: UInt64] = [:]
    private var blockTimes: [Hash: UInt64] = [:]
    private var prevoteTimeoutScheduled = Set<UInt32>()
    private var precommitTimeoutScheduled = Set<UInt32>()
    private var lockedInRound = Set<UInt32>()    // line 36 fired for the round
    private var catchUpRequested = false
    private var reportedEquivocations = Set<String>()
    private var buildRequested = false

    /// - Parameters:
    ///   - committedHeight: the height of the last block in the node's store.
    ///   - restored: the persisted safety state, if any; ignored when it is for a committed height.
    ///   - signer: nil for a follower that tracks consensus without voting.
    public init(chainID: String, validators: ValidatorSet, signer: (any ConsensusSigner)?, timeouts: ConsensusTimeouts = .init(),
                committedHeight: UInt64, restored: SafetyState?) {
        self.chainID = chainID
        self.validators = validators
        self.signer = signer
        self.timeouts = timeouts
        if let restored, restored.height == committedHeight + 1 {
            state = restored
        } else {
            state = SafetyState(height: committedHeight + 1)
            if let restored, restored.height > committedHeight + 1 {
                deferred = restored
                signsFrom = restored.height
            }
        }
    }

    /// Actions to take on start: resend what was signed before a restart and re-arm timeouts.
    public mutating func start() -> [ConsensusAction] {
        var out: [ConsensusAction] = [.schedule(Timeout(step: .rebroadcast, height: height, round: round), afterMillis: timeouts.rebroadcast)]
        resumeSigned(&out)
        evaluate(&out)
        return out
    }

    /// Resends what the state says this validator signed, counts it, and re-arms the timeout of
    /// the state's step (at start, and when a deferred state is taken up).
    private mutating func resumeSigned(_ out: inout [ConsensusAction]) {
        for v in state.validProof where v.height == height && v.type == .prevote && validators.contains(v.voter) { record(vote: v, &out) }
        for v in state.earlierVotes where v.height == height && v.voter == me { out.append(.broadcastVote(v)); record(vote: v, &out) }
        if let p = state.proposal { out.append(.broadcastProposal(p)); record(proposal: p, &out) }
        if let v = state.prevote { out.append(.broadcastVote(v)); record(vote: v, &out) }
        if let v = state.precommit { out.append(.broadcastVote(v)); record(vote: v, &out) }
        switch step {
        case .waiting: break
        case .propose:
            if isValidator && validators.proposer(height: height, round: round) == me && state.proposal == nil {
                propose(&out)
            }
            out.append(.schedule(Timeout(step: .propose, height: height, round: round), afterMillis: timeouts.length(.propose, round: round)))
        case .prevote:
            out.append(.schedule(Timeout(step: .prevote, height: height, round: round), afterMillis: timeouts.length(.prevote, round: round)))
        case .precommit:
            out.append(.schedule(Timeout(step: .precommit, height: height, round: round), afterMillis: timeouts.length(.precommit, round: round)))
        }
    }

    public mutating func handle(_ event: ConsensusEvent) -> [ConsensusAction] {
        var out: [ConsensusAction] = []
        switch event {
        case .transactionsAvailable:
            if step == .waiting { startRound(round, &out) }
        case .proposal(let p, let at):
            guard p.height == height, validators.contains(p.proposer),
                  p.proposer == validators.proposer(height: p.height, round: p.round),
                  p.polRound >= -1, p.polRound < Int32(clamping: p.round), p.round <= Self.maxRound,
                  p.round <= round &+ timeouts.maxRoundsAhead else { break }
            // Its own proposal of the round under way, relayed back, that its state does not hold:
            // signed in a life the state does not remember, as for a vote below (found in review).
            if let me, p.proposer == me, height >= signsFrom, p.round == round,
               state.proposal.map({ $0.blockHash != p.blockHash || $0.polRound != p.polRound }) ?? true {
                holdSigning(from: height, through: height + 1, &out)
            }
            record(proposal: p, receivedAt: at, &out)
            if step == .waiting && p.proposer != me && p.round >= round { startRound(round, &out) }
        case .vote(let v):
            guard v.round <= Self.maxRound else { break }
            guard v.height == height, validators.contains(v.voter), v.round <= round &+ timeouts.maxRoundsAhead else {
                if v.height > height, validators.contains(v.voter), !catchUpRequested {
                    // A validator is already past this height: this node missed a decision.
                    catchUpRequested = true
                    out.append(.catchUp(height: height))
                }
                break
            }
            // A vote of this validator's, relayed back by a peer, that its state does not hold: it
            // was signed in a life the state does not remember (a restored data directory, or
            // another node with this key), which may have gone on to the next height too. It signs
            // nothing more at this height or the next (found in review). Only within the rounds
            // the state keeps its votes of (older ones it has let go).
            if let me, v.voter == me, height >= signsFrom, v.round &+ SafetyState.earlierVoteRounds >= round,
               !remembers(v.type, round: v.round, blockHash: v.blockHash) {
                holdSigning(from: height, through: height + 1, &out)
            }
            record(vote: v, &out)
            if step == .waiting && v.voter != me && v.round >= round { startRound(round, &out) }
        case .validated(let h, let hash, let valid, let timestamp):
            // Recorded for the rest of the height: the node reports `valid: false` only for
            // content that matches the block's header (a tampered copy is dropped unjudged).
            guard h == height else { break }
            validity[hash] = valid
            if let timestamp { blockTimes[hash] = timestamp }
        case .built(let h, let r, let hash):
            guard h == height, r == round, step == .propose, buildRequested, state.proposal == nil,
                  let signer, validators.proposer(height: h, round: r) == signer.memberID else { break }
            buildRequested = false
            validity[hash] = true
            sendProposal(blockHash: hash, polRound: -1, &out)
        case .timeout(let t):
            guard t.height == height else { break }
            switch t.step {
            case .rebroadcast:
                if let p = state.proposal, p.round == round {
                    out.append(.broadcastProposal(p))
                    if p.polRound >= 0 { for v in state.validProof { out.append(.broadcastVote(v)) } }
                }
                gossipVotes(&out)
                out.append(.schedule(t, afterMillis: timeouts.rebroadcast))
            case .propose:   // line 57
                if t.round == round && step == .propose { castVote(.prevote, nil, &out) }
            case .prevote:   // line 61
                if t.round == round && step == .prevote { castVote(.precommit, nil, &out) }
            case .precommit: // line 65
                if t.round == round && step != .waiting && round < Self.maxRound {
                    if isQuiet(round) { rest(inRound: round + 1, &out) } else { startRound(round + 1, &out) }
                }
            }
        case .committedElsewhere(let h, let ownRound, let hash):
            // A certified block holds a precommit of this validator's that its state does not hold:
            // it signed there in a life its state does not remember (its whole data directory
            // restored from an older copy, say), and may have signed at the height after it too.
            // It signs nothing until the height after the last block it catches up, durably (a
            // later state is persisted, taken up as a store behind its state is), so a restart
            // keeps the hold (found by black-box testing: a restored validator caught up blocks
            // carrying its own signatures, then prevoted a second time).
            // (Below a state persisted for a later height, its votes are expected: it is that state's
            // past. At the height under way, a precommit of a round older than the state keeps
            // votes of is taken as remembered.)
            if let r = ownRound, me != nil, h >= height, deferred.map({ h >= $0.height }) ?? true,
               h > height || (r &+ SafetyState.earlierVoteRounds >= round && !remembers(.precommit, round: r, blockHash: hash)) {
                forgotOwnVotes = forgotOwnVotes ?? h
            }
            if h >= height { moveTo(height: h + 1, &out) }
            if let first = forgotOwnVotes { holdSigning(from: first, through: h + 1, &out) }
        }
        evaluate(&out)
        return out
    }

    /// Relays the votes held for this height: every vote of the recent rounds (so a validator
    /// left behind in an older round sees f+1 messages of a later one and skips ahead) and this
    /// validator's own votes of every round (so one stuck waiting for a quorum in an older round
    /// gets it). Lost messages cannot stall the height once the network delivers again.
    private func gossipVotes(_ out: inout [ConsensusAction]) {
        let recent = round >= 4 ? round - 4 : 0
        for table in [prevotes, precommits] {
            for r in table.keys.sorted() {
                for voter in table[r]!.keys.sorted() {
                    guard let v = table[r]![voter]!.first, r >= recent || v.voter == me else { continue }
                    out.append(.broadcastVote(v))
                }
            }
        }
    }

    // MARK: Recording messages

    private mutating func record(proposal p: Proposal, receivedAt at: UInt64? = nil, _ out: inout [ConsensusAction]) {
        if let existing = proposals[p.round] {
            if existing != p, existing.blockHash != p.blockHash || existing.polRound != p.polRound {
                report(.proposals(existing, p), key: "p/\(p.proposer)/\(p.round)", &out)
            }
            return
        }
        proposals[p.round] = p
        if let at { receivedAt[p.round] = at }
        if validity[p.blockHash] == nil, !validationRequested.contains(p.blockHash) {
            validationRequested.insert(p.blockHash)
            out.append(.validate(height: p.height, round: p.round, blockHash: p.blockHash))
        }
    }

    /// Whether this very vote (same voter, round, step, value and signature) is already counted
    /// at the current height: a node need not check its signature again (votes are re-sent every
    /// second, and a peer replaying genuine votes cost one Ed25519 check each).
    public func holds(_ v: Vote) -> Bool {
        guard v.height == height else { return false }
        let existing = v.type == .prevote ? prevotes[v.round]?[v.voter] : precommits[v.round]?[v.voter]
        return existing?.contains { $0.blockHash == v.blockHash && $0.signature == v.signature } ?? false
    }

    private mutating func record(vote v: Vote, _ out: inout [ConsensusAction]) {
        let existing = (v.type == .prevote ? prevotes[v.round]?[v.voter] : precommits[v.round]?[v.voter]) ?? []
        if existing.contains(where: { $0.blockHash == v.blockHash }) { return }
        var list = existing
        if let first = existing.first {
            report(.votes(first, v), key: "\(v.type.rawValue)/\(v.voter)/\(v.round)", &out)
            if list.count >= Self.maxVotesPerVoter {
                // An equivocator can sign any number of values; keep those that can matter (nil,
                // or a block some proposal names), evicting a value no proposal names.
                let named = Set(proposals.values.map(\.blockHash))
                guard v.blockHash.map(named.contains) ?? true,
                      let k = list.indices.dropFirst().first(where: { list[$0].blockHash.map { !named.contains($0) } ?? false }) else { return }
                list.remove(at: k)
            }
        }
        list.append(v)
        if v.type == .prevote { prevotes[v.round, default: [:]][v.voter] = list } else { precommits[v.round, default: [:]][v.voter] = list }
    }

    private mutating func report(_ e: Equivocation, key: String, _ out: inout [ConsensusAction]) {
        guard reportedEquivocations.insert(key).inserted else { return }
        out.append(.evidence(e))
    }

    // MARK: Rules

    /// Whether the round's proposal, a freshly built block, reached this node in time: no more
    /// than `proposalLag` plus the round's propose timeout after the block's timestamp. A block
    /// stamped far in the past is prevoted nil (a proposer cannot date a block back to a quiet
    /// chain's last block), while a block re-proposed with a proof of lock keeps its timestamp and
    /// is not held to this (line 28): a quorum took it in time when it was new. Unlike validity,
    /// this is per round, so a late proposal in one round decides nothing for the next.
    /// CometBFT's proposer-based timestamps (PBTS) check the same at reception; the check that a
    /// block is not ahead of the clock stays with validity (`ConsensusNode.check`).
    private func timely(_ p: Proposal) -> Bool {
        guard let at = receivedAt[p.round], let stamped = blockTimes[p.blockHash] else { return true }
        return at <= stamped &+ timeouts.proposalLag(round: p.round)
    }

    /// Validators with a vote for `hash` among `votes`.
    private func count(_ votes: [String: [Vote]]?, for hash: Hash?) -> Int {
        guard let votes else { return 0 }
        var n = 0
        for list in votes.values where list.contains(where: { $0.blockHash == hash }) { n += 1 }
        return n
    }

    private func votes(_ votes: [String: [Vote]]?, for hash: Hash) -> [Vote] {
        guard let votes else { return [] }
        return votes.values.compactMap { $0.first(where: { $0.blockHash == hash }) }.sorted { $0.voter < $1.voter }
    }

    private mutating func evaluate(_ out: inout [ConsensusAction]) {
        var progressed = true
        var guardCount = 0
        while progressed && guardCount < 64 {
            progressed = false
            guardCount += 1
            let h = height
            if step == .waiting { return }
            // Line 49: a decision in any round of this height.
            for r in precommits.keys.sorted() {
                let votes = precommits[r]!
                var tally: [Hash: Int] = [:]
                for list in votes.values { for b in Set(list.compactMap(\.blockHash)) { tally[b, default: 0] += 1 } }
                guard let hash = tally.filter({ $0.value >= validators.quorum }).keys.min(by: { $0.lexicographicallyPrecedes($1) }) else { continue }
                let proposed = proposals.values.contains { $0.blockHash == hash }
                if proposed, validity[hash] == true {
                    out.append(.commit(height: h, round: r, blockHash: hash, precommits: self.votes(votes, for: hash)))
                    decisions += 1
                    // Deciding live again: what it signed before was caught up past.
                    forgotOwnVotes = nil
                    moveTo(height: h + 1, &out)
                    return
                } else if !proposed, !catchUpRequested {
                    // The block is missing: peers that decided can send it.
                    catchUpRequested = true
                    out.append(.catchUp(height: h))
                }
            }
            // Line 55: f+1 validators are in a later round.
            var later: [UInt32: Set<String>] = [:]
            for (r, p) in proposals where r > round { later[r, default: []].insert(p.proposer) }
            for (r, votes) in prevotes where r > round { later[r, default: []].formUnion(votes.keys) }
            for (r, votes) in precommits where r > round { later[r, default: []].formUnion(votes.keys) }
            if let skip = later.filter({ $0.value.count >= validators.weakQuorum }).keys.min() {
                startRound(skip, &out)
                progressed = true
                continue
            }
            let r = round
            let proposal = proposals[r]
            // Lines 22 and 28: prevote on the round's proposal.
            if step == .propose, let p = proposal, let valid = validity[p.blockHash] {
                if p.polRound == -1 {
                    let ok = valid && timely(p) && (state.lockedRound == -1 || state.lockedHash == p.blockHash)
                    castVote(.prevote, ok ? p.blockHash : nil, &out)
                    progressed = true
                } else if count(prevotes[UInt32(p.polRound)], for: p.blockHash) >= validators.quorum {
                    let ok = valid && (state.lockedRound <= p.polRound || state.lockedHash == p.blockHash)
                    castVote(.prevote, ok ? p.blockHash : nil, &out)
                    progressed = true
                }
            }
            // Line 34: a quorum of prevotes of any kind.
            if step == .prevote, (prevotes[r]?.count ?? 0) >= validators.quorum, prevoteTimeoutScheduled.insert(r).inserted {
                out.append(.schedule(Timeout(step: .prevote, height: h, round: r), afterMillis: timeouts.length(.prevote, round: r)))
            }
            // Line 36: a quorum prevoted the round's valid proposal.
            if let p = proposal, validity[p.blockHash] == true, step == .prevote || step == .precommit,
               count(prevotes[r], for: p.blockHash) >= validators.quorum, !lockedInRound.contains(r) {
                lockedInRound.insert(r)
                state.validHash = p.blockHash
                state.validRound = Int32(r)
                state.validProof = votes(prevotes[r], for: p.blockHash)
                if step == .prevote {
                    state.lockedHash = p.blockHash
                    state.lockedRound = Int32(r)
                    castVote(.precommit, p.blockHash, &out)
                } else {
                    persist(&out)
                }
                progressed = true
            }
            // Line 44: a quorum prevoted nil.
            if step == .prevote, count(prevotes[r], for: nil) >= validators.quorum {
                castVote(.precommit, nil, &out)
                progressed = true
            }
            // Line 47: a quorum of precommits of any kind.
            if (precommits[r]?.count ?? 0) >= validators.quorum, precommitTimeoutScheduled.insert(r).inserted {
                out.append(.schedule(Timeout(step: .precommit, height: h, round: r), afterMillis: timeouts.length(.precommit, round: r)))
            }
        }
    }

    // MARK: Transitions

    /// Line 11.
    private mutating func startRound(_ r: UInt32, _ out: inout [ConsensusAction]) {
        enter(round: r, .propose)
        // The round must survive a restart once anything was signed at this height (a restart
        // into an earlier round could sign twice in it). Round 0 of a fresh height needs no write:
        // a restart finds an older height on disk and starts this one at round 0 anyway.
        if r > 0 || state.lockedRound >= 0 || state.validRound >= 0 { persist(&out) }
        if isValidator, validators.proposer(height: height, round: r) == me {
            propose(&out)
        }
        out.append(.schedule(Timeout(step: .propose, height: height, round: r), afterMillis: timeouts.length(.propose, round: r)))
    }

    /// Round `r` had nothing to order: no proposal seen, no vote for a block, no lock or valid
    /// value (its transactions were evicted, say, or a validator's stray vote woke the height).
    private func isQuiet(_ r: UInt32) -> Bool {
        proposals[r] == nil && state.lockedRound < 0 && state.validRound < 0
            && !(prevotes[r]?.values.contains { $0.contains { $0.blockHash != nil } } ?? false)
            && !(precommits[r]?.values.contains { $0.contains { $0.blockHash != nil } } ?? false)
    }

    /// After a quiet round: wait in round `r`, signing nothing, until there is something to order
    /// (the node reports transactions) or another validator speaks in round `r` or later. Running
    /// empty rounds instead would go on for as long as nothing arrives, each round's timeouts
    /// longer and each rebroadcast carrying this validator's votes of every round so far. The
    /// round is persisted: the rounds before it hold votes this validator signed.
    private mutating func rest(inRound r: UInt32, _ out: inout [ConsensusAction]) {
        enter(round: r, .waiting)
        persist(&out)
    }

    /// Round `r` at `step`, with nothing signed in it yet.
    private mutating func enter(round r: UInt32, _ step: Step) {
        let oldest = r > SafetyState.earlierVoteRounds ? r - SafetyState.earlierVoteRounds : 0
        state.earlierVotes.append(contentsOf: [state.prevote, state.precommit].compactMap { $0 }.filter { $0.round < r })
        state.earlierVotes.removeAll { $0.round < oldest }
        state.round = r
        state.step = step
        state.proposal = nil; state.prevote = nil; state.precommit = nil
        buildRequested = false
    }

    private mutating func propose(_ out: inout [ConsensusAction]) {
        if let valid = state.validHash {
            sendProposal(blockHash: valid, polRound: state.validRound, &out)
        } else {
            buildRequested = true
            out.append(.buildProposal(height: height, round: round))
        }
    }

    private mutating func sendProposal(blockHash: Hash, polRound: Int32, _ out: inout [ConsensusAction]) {
        guard isValidator, let signer else { return }
        let bytes = Proposal.signingBytes(chainID: chainID, height: height, round: round, polRound: polRound,
                                          blockHash: blockHash, proposer: signer.memberID)
        let p = Proposal(height: height, round: round, polRound: polRound, blockHash: blockHash,
                         proposer: signer.memberID, signature: signer.sign(bytes))
        state.proposal = p
        persist(&out)
        out.append(.broadcastProposal(p))
        if polRound >= 0 { for v in state.validProof { out.append(.broadcastVote(v)) } }
        record(proposal: p, &out)
    }

    private mutating func castVote(_ type: VoteType, _ hash: Hash?, _ out: inout [ConsensusAction]) {
        state.step = type == .prevote ? .prevote : .precommit
        guard isValidator, let signer else { return }
        let bytes = Vote.signingBytes(chainID: chainID, type: type, height: height, round: round, blockHash: hash, voter: signer.memberID)
        let attachment = (type == .precommit && hash != nil) ? signer.precommitAttachment(height: height, round: round, blockHash: hash!) : []
        let v = Vote(type: type, height: height, round: round, blockHash: hash, voter: signer.memberID,
                     signature: signer.sign(bytes), attachment: attachment)
        if type == .prevote { state.prevote = v } else { state.precommit = v }
        persist(&out)
        out.append(.broadcastVote(v))
        record(vote: v, &out)
    }

    /// Persists the state, except below `signsFrom`: there the file still holds the state
    /// of a later height, which must outlive the catch-up.
    private func persist(_ out: inout [ConsensusAction]) {
        if height >= signsFrom { out.append(.persist(state)) }
    }

    private mutating func moveTo(height h: UInt64, _ out: inout [ConsensusAction]) {
        var takenUp = false
        if let d = deferred, d.height <= h {
            takenUp = d.height == h
            state = takenUp ? d : SafetyState(height: h)
            deferred = nil
        } else {
            state = SafetyState(height: h)
        }
        proposals = [:]; prevotes = [:]; precommits = [:]
        validity = [:]; validationRequested = []; receivedAt = [:]; blockTimes = [:]
        prevoteTimeoutScheduled = []; precommitTimeoutScheduled = []; lockedInRound = []
        catchUpRequested = false; reportedEquivocations = []; buildRequested = false
        out.append(.schedule(Timeout(step: .rebroadcast, height: h, round: state.round), afterMillis: timeouts.rebroadcast))
        // What was signed at this height before the store fell behind is resent and counted, and
        // the step's timeout armed, as a restart would.
        if takenUp { resumeSigned(&out) }
    }

    /// The messages held for this height, for logs and debugging.
    public var summary: String {
        var parts: [String] = ["h\(height) r\(round) \(step) locked \(state.lockedRound) valid \(state.validRound)"]
        for r in Set(proposals.keys).union(prevotes.keys).union(precommits.keys).sorted() {
            let p = proposals[r].map { "P(\($0.proposer) pol \($0.polRound) \($0.blockHash.prefix(2).map { String($0) }.joined(separator: ".")) valid \(validity[$0.blockHash].map { "\($0)" } ?? "?"))" } ?? "-"
            func show(_ t: [String: [Vote]]?) -> String {
                (t ?? [:]).keys.sorted().map { k in "\(k):" + t![k]!.map { $0.blockHash.map { $0.prefix(2).map { String($0) }.joined(separator: ".") } ?? "nil" }.joined(separator: "|") }.joined(separator: " ")
            }
            parts.append("r\(r) \(p) pv[\(show(prevotes[r]))] pc[\(show(precommits[r]))]")
        }
        return parts.joined(separator: "; ")
    }

    /// Whether this machine wants a block built and has not got one yet (the node answers once
    /// transactions are available).
    public var awaitingBuild: (height: UInt64, round: UInt32)? {
        buildRequested ? (height, round) : nil
    }
}
