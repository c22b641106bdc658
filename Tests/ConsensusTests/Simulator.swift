import Consensus
import LedgerCore
import LedgerCrypto

/// A deterministic simulation of a Tendermint network: validators running the real
/// `TendermintMachine`, a simulated network (loss, delay, duplication, reordering, partitions),
/// crashes and restarts from persisted state, clients, and optionally one Byzantine validator
/// that equivocates. Everything is driven by one seeded PRNG and a logical clock, so a seed
/// replays exactly.
struct SimRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed ^ 0x5DEE_CE66_D1CE_4E5B }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : next() % n }
    mutating func chance(_ perMille: UInt64) -> Bool { below(1000) < perMille }
    mutating func range(_ r: ClosedRange<UInt64>) -> UInt64 { r.lowerBound + below(r.upperBound - r.lowerBound + 1) }
}

struct SimSigner: ConsensusSigner {
    let memberID: String
    func sign(_ message: [UInt8]) -> [UInt8] { SimSigner.signature(memberID, message) }
    func precommitAttachment(height: UInt64, round: UInt32, blockHash: Hash) -> [UInt8] {
        SimSigner.attachment(memberID, height: height, blockHash: blockHash)
    }
    static func signature(_ member: String, _ message: [UInt8]) -> [UInt8] {
        let a = SHA256.hash(parts: [Array(member.utf8), [0], message])
        return a + SHA256.hash(a)
    }
    static func attachment(_ member: String, height: UInt64, blockHash: Hash) -> [UInt8] {
        var w = ByteWriter(); w.string8(member); w.u64(height); w.raw(blockHash)
        return SHA256.hash(parts: [Array("commit".utf8), w.bytes])
    }
}

struct SimBlock: Hashable {
    let height: UInt64
    let parent: Hash
    let transactions: [UInt64]
    let proposer: String
    let salt: UInt64
    /// Milliseconds by the proposer's clock (`SimNetwork.clock`) when it built the block.
    var timestamp: UInt64 = SimNetwork.epoch
    var hash: Hash {
        var w = ByteWriter()
        w.u64(height); w.raw(parent); w.string8(proposer); w.u64(salt); w.u64(timestamp)
        w.u32(UInt32(transactions.count)); for t in transactions { w.u64(t) }
        return SHA256.hash(w.bytes)
    }
}

enum SimMessage {
    case proposal(Proposal, SimBlock?)
    case vote(Vote)
    case transactions([UInt64])
    case status(height: UInt64)
    case blockRequest(from: UInt64)
    case blocks([(SimBlock, [Vote])])
    /// Asks peers for the content of a proposed block this node lacks (e.g. after a restart).
    case fetchBlock(Hash)
    case blockContent(SimBlock)
}

struct SimConfig {
    var validators = 4
    var byzantine = false
    var chaosMillis: UInt64 = 3_000
    var healMillis: UInt64 = 30_000
    var lossPerMille: UInt64 = 50
    var duplicatePerMille: UInt64 = 20
    var maxDelayMillis: UInt64 = 40
    var crashes = true
    var partitions = true
    var clientIntervalMillis: UInt64 = 15
    /// Validators down from the start until the network heals.
    var downUntilHeal: [Int] = []
    /// The Byzantine validator stamps the blocks it builds with its parent's timestamp, the
    /// oldest a valid block may carry: on a chain quiet for longer than the proposal lag, a
    /// block dated back to the last one.
    var byzantineBackdates = false
    /// How far each validator's clock may be off (each gets a fixed offset up to this).
    var clockSkewMillis: UInt64 = 50
    var timeouts: ConsensusTimeouts = {
        var t = ConsensusTimeouts()
        t.propose = 200; t.proposeIncrement = 100
        t.prevote = 150; t.prevoteIncrement = 50
        t.precommit = 150; t.precommitIncrement = 50
        t.rebroadcast = 250
        return t
    }()

    static func random(_ rng: inout SimRandom) -> SimConfig {
        var c = SimConfig()
        c.byzantine = rng.chance(500)
        c.lossPerMille = rng.below(150)
        c.duplicatePerMille = rng.below(60)
        c.maxDelayMillis = rng.range(1...120)
        c.crashes = rng.chance(600)
        c.partitions = rng.chance(600)
        c.chaosMillis = rng.range(1_000...4_000)
        // Proposals must be timely: mostly the default lag (a minute), but in some runs one of a
        // few hundred ms, close to the network's delays, so late proposals happen and liveness is
        // tested with them; and a Byzantine proposer that backdates its blocks.
        if rng.chance(300) { c.timeouts.proposalLag = rng.below(300) }
        if c.byzantine, rng.chance(500) { c.byzantineBackdates = true }
        c.clockSkewMillis = rng.below(100)
        return c
    }
}

struct SimFailure: Error, CustomStringConvertible {
    let seed: UInt64
    let message: String
    var description: String {
        "simulation seed \(seed) failed: \(message)\nreplay: CREDITLEDGER_SIM_SEED=\(seed) swift test --filter ConsensusSimulationTests/testReplaySeed"
    }
}

final class SimNode {
    let id: String
    let byzantine: Bool
    var machine: TendermintMachine?
    var incarnation = 0
    // Persisted ("disk"): survives crashes.
    var chain: [(block: SimBlock, certificate: [Vote])] = []
    var safety: SafetyState?
    /// Content of the blocks the persisted state is locked on or holds as valid.
    var savedBlocks: [Hash: SimBlock] = [:]
    /// Every own vote this node persisted (to check it never sends one it did not).
    var persistedVotes = Set<Vote>()
    // Volatile.
    var mempool: [UInt64] = []
    var mempoolSet = Set<UInt64>()
    var committed = Set<UInt64>()
    var blocks: [Hash: SimBlock] = [:]
    var future: [SimMessage] = []
    var lastRequestAt: UInt64 = 0
    var evidence: [Equivocation] = []
    var awaitingContent: [Hash] = []
    var pendingEvents: [ConsensusEvent] = []
    var performing = false

    init(id: String, byzantine: Bool) { self.id = id; self.byzantine = byzantine }
    var height: UInt64 { UInt64(chain.count) }
    var headHash: Hash { chain.last?.block.hash ?? SimNetwork.genesisHash }
    var crashed: Bool { machine == nil }
}

final class SimNetwork {
    static let genesisHash = SHA256.hash(Array("sim genesis".utf8))
    static let chainID = "sim"
    /// Wall-clock time at the start of a run (block timestamps are wall-clock milliseconds).
    static let epoch: UInt64 = 1_800_000_000_000

    enum Event {
        case deliver(from: Int, to: Int, SimMessage)
        case timeout(node: Int, incarnation: Int, Timeout)
        case submit(node: Int, tx: UInt64)
        case statusTick(node: Int)
        case crash(node: Int)
        case restart(node: Int)
        case partition([Int])
        case heal
    }

    struct Scheduled { let time: UInt64; let seq: UInt64; let event: Event }

    let seed: UInt64
    let config: SimConfig
    var rng: SimRandom
    var now: UInt64 = 0
    var seq: UInt64 = 0
    var heap: [Scheduled] = []
    var nodes: [SimNode] = []
    let validators: ValidatorSet
    var partitioned = Set<Int>()   // nodes cut off from the rest
    var faultsOn = true
    var submitted = Set<UInt64>()
    var acknowledged = Set<UInt64>()
    var nextTx: UInt64 = 1
    var decided: [UInt64: Hash] = [:]
    var failure: String?
    var deliveredMessages = 0
    var heightsAtHeal: [UInt64] = []
    var equivocationsSent = 0
    /// When and in which round each block was first proposed as new (no proof of lock).
    var firstProposed: [HashKey: (time: UInt64, round: UInt32)] = [:]
    /// Proposals of new blocks already older than the lag when sent (so late on arrival).
    var staleProposals = 0
    /// Each validator's clock offset.
    var skew: [UInt64] = []

    init(seed: UInt64, config: SimConfig) {
        self.seed = seed
        self.config = config
        rng = SimRandom(seed: seed)
        let ids = (0..<config.validators).map { "v\($0)" }
        validators = ValidatorSet(ids: ids)
        for (i, id) in ids.enumerated() {
            nodes.append(SimNode(id: id, byzantine: config.byzantine && i == ids.count - 1))
        }
        skew = ids.map { _ in rng.below(config.clockSkewMillis + 1) }
    }

    /// Node `i`'s wall clock.
    func clock(_ i: Int) -> UInt64 { Self.epoch + now + skew[i] }

    var honest: [SimNode] { nodes.filter { !$0.byzantine } }

    func schedule(_ delay: UInt64, _ e: Event) {
        seq += 1
        heap.append(Scheduled(time: now + delay, seq: seq, event: e))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if less(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
        }
    }

    private func less(_ a: Scheduled, _ b: Scheduled) -> Bool { a.time != b.time ? a.time < b.time : a.seq < b.seq }

    private func pop() -> Scheduled? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m); i = m
            }
        }
        return top
    }

    func fail(_ message: String) { if failure == nil { failure = "t=\(now)ms: \(message)" } }

    // MARK: Running

    func run() throws {
        for i in nodes.indices {
            if !config.downUntilHeal.contains(i) { boot(i) }
            schedule(rng.range(1...200), .statusTick(node: i))
        }
        // Clients during the chaos phase.
        var t: UInt64 = 0
        while t < config.chaosMillis {
            t += rng.range(1...(2 * config.clientIntervalMillis))
            let target = Int(rng.below(UInt64(nodes.count)))
            seq += 1
            heap.append(Scheduled(time: t, seq: seq, event: .submit(node: target, tx: nextTx)))
            nextTx += 1
        }
        heap.sort { less($0, $1) }
        // Faults.
        if config.crashes {
            var c: UInt64 = rng.range(100...600)
            while c < config.chaosMillis {
                let victim = Int(rng.below(UInt64(nodes.count)))
                if !nodes[victim].byzantine {
                    schedule(c, .crash(node: victim))
                    schedule(c + rng.range(50...1_500), .restart(node: victim))
                }
                c += rng.range(300...1_500)
            }
        }
        if config.partitions {
            var p: UInt64 = rng.range(100...800)
            while p < config.chaosMillis {
                var side: [Int] = []
                for i in nodes.indices where rng.chance(400) { side.append(i) }
                schedule(p, .partition(side))
                p += rng.range(200...1_200)
            }
        }
        schedule(config.chaosMillis, .heal)

        let deadline = config.chaosMillis + config.healMillis
        while let next = pop() {
            if next.time > deadline { break }
            now = next.time
            process(next.event)
            if failure != nil { break }
            if now > config.chaosMillis && converged() { break }
        }
        if failure == nil { finalChecks() }
        if let failure { throw SimFailure(seed: seed, message: failure) }
    }

    func converged() -> Bool {
        let h = honest
        guard h.allSatisfy({ !$0.crashed && $0.mempool.isEmpty }) else { return false }
        let heights = Set(h.map(\.height))
        let heads = Set(h.map(\.headHash))
        return heights.count == 1 && heads.count == 1
    }

    func finalChecks() {
        let h = honest
        if trace { for n in nodes { print("\(n.id): \(n.machine?.summary ?? "down")") } }
        if !converged() {
            fail("no convergence \(config.healMillis) ms after healing: heights \(h.map(\.height)), mempools \(h.map(\.mempool.count)), crashed \(h.map(\.crashed)), rounds \(h.map { $0.machine.map { "\($0.height)/\($0.round)/\($0.step)" } ?? "-" })")
            return
        }
        let reference = h[0].chain.map(\.block.hash)
        for n in h where n.chain.map(\.block.hash) != reference { fail("\(n.id)'s chain differs from \(h[0].id)'s") }
        for n in h {
            var seen = Set<UInt64>()
            for entry in n.chain {
                for tx in entry.block.transactions {
                    if !seen.insert(tx).inserted { fail("\(n.id) holds transaction \(tx) twice") }
                    if !submitted.contains(tx) { fail("\(n.id) holds transaction \(tx), never submitted") }
                }
            }
            let lost = acknowledged.subtracting(seen)
            if !lost.isEmpty { fail("\(n.id) lacks acknowledged transactions \(lost.sorted().prefix(5))") }
        }
    }

    // MARK: Events

    func process(_ e: Event) {
        switch e {
        case .deliver(let from, let to, let m):
            guard !nodes[to].crashed else { return }
            deliveredMessages += 1
            receive(m, from: from, at: to)
        case .timeout(let i, let inc, let t):
            guard let _ = nodes[i].machine, nodes[i].incarnation == inc else { return }
            step(i, .timeout(t))
        case .submit(let i, let tx):
            submitted.insert(tx)
            let n = nodes[i]
            guard !n.crashed else { return }
            addToMempool(i, [tx])
            broadcast(from: i, .transactions([tx]))
        case .statusTick(let i):
            if !nodes[i].crashed {
                broadcast(from: i, .status(height: nodes[i].height))
                for hash in nodes[i].awaitingContent { broadcast(from: i, .fetchBlock(hash)) }
            }
            schedule(250, .statusTick(node: i))
        case .crash(let i):
            let n = nodes[i]
            guard !n.crashed else { return }
            n.machine = nil
            n.incarnation += 1
            n.mempool = []; n.mempoolSet = []; n.blocks = [:]; n.future = []; n.awaitingContent = []; n.pendingEvents = []
        case .restart(let i):
            if nodes[i].crashed { boot(i) }
        case .partition(let side):
            if faultsOn { partitioned = Set(side) }
        case .heal:
            heightsAtHeal = nodes.map(\.height)
            faultsOn = false
            partitioned = []
            for i in nodes.indices where nodes[i].crashed { boot(i) }
        }
    }

    func boot(_ i: Int) {
        let n = nodes[i]
        n.committed = Set(n.chain.flatMap(\.block.transactions))
        for (h, b) in n.savedBlocks { n.blocks[h] = b }
        var m = TendermintMachine(chainID: Self.chainID, validators: validators, signer: SimSigner(memberID: n.id),
                                  timeouts: config.timeouts, committedHeight: n.height, restored: n.safety)
        let actions = m.start()
        n.machine = m
        n.performing = true
        perform(actions, at: i)
        n.performing = false
        if !n.pendingEvents.isEmpty { step(i, n.pendingEvents.removeFirst()) }
    }

    /// Feeds an event to a node's machine. Events raised while its actions are carried out are
    /// queued and handled afterwards, in order (as the node's single consensus queue does):
    /// handling them mid-list would let an older `.persist` overwrite a newer one.
    func step(_ i: Int, _ event: ConsensusEvent) {
        let n = nodes[i]
        n.pendingEvents.append(event)
        guard !n.performing else { return }
        n.performing = true
        defer { n.performing = false }
        while !n.pendingEvents.isEmpty {
            let e = n.pendingEvents.removeFirst()
            guard var m = n.machine else { n.pendingEvents = []; return }
            let actions = m.handle(e)
            n.machine = m
            perform(actions, at: i)
            // Like the node: whenever the machine waits at a height while transactions are pending, say so.
            if n.pendingEvents.isEmpty, let m = n.machine, m.step == .waiting, !n.mempool.isEmpty {
                n.pendingEvents.append(.transactionsAvailable)
            }
        }
    }

    func addToMempool(_ i: Int, _ txs: [UInt64]) {
        let n = nodes[i]
        var added = false
        for tx in txs where !n.committed.contains(tx) && n.mempoolSet.insert(tx).inserted {
            n.mempool.append(tx); added = true
        }
        if added { step(i, .transactionsAvailable); answerBuild(i) }
    }

    func answerBuild(_ i: Int) {
        let n = nodes[i]
        guard let m = n.machine, let (h, r) = m.awaitingBuild, !n.mempool.isEmpty, h == n.height + 1 else { return }
        // As the node does: the clock, but never before the parent's timestamp.
        let parentStamp = n.chain.last?.block.timestamp ?? Self.epoch
        let stamp = n.byzantine && config.byzantineBackdates ? parentStamp : max(clock(i), parentStamp)
        let block = SimBlock(height: h, parent: n.headHash, transactions: Array(n.mempool.prefix(50)), proposer: n.id, salt: 0, timestamp: stamp)
        n.blocks[block.hash] = block
        step(i, .built(height: h, round: r, blockHash: block.hash))
    }

    func valid(_ block: SimBlock, at n: SimNode) -> Bool {
        // As the node: never before the parent's timestamp.
        guard block.height == n.height + 1, block.parent == n.headHash, !block.transactions.isEmpty,
              block.timestamp >= n.chain.last?.block.timestamp ?? 0 else { return false }
        var seen = Set<UInt64>()
        for tx in block.transactions where n.committed.contains(tx) || !seen.insert(tx).inserted || !submitted.contains(tx) { return false }
        return true
    }

    func checkSigned(_ m: SimMessage) -> Bool {
        switch m {
        case .proposal(let p, _): return p.signature == SimSigner.signature(p.proposer, p.signingBytes(chainID: Self.chainID))
        case .vote(let v):
            guard v.signature == SimSigner.signature(v.voter, v.signingBytes(chainID: Self.chainID)) else { return false }
            if v.type == .precommit, let b = v.blockHash { return v.attachment == SimSigner.attachment(v.voter, height: v.height, blockHash: b) }
            return v.attachment.isEmpty
        default: return true
        }
    }

    func receive(_ m: SimMessage, from: Int, at i: Int) {
        let n = nodes[i]
        guard checkSigned(m) else { fail("a correctly signed message failed its check at \(n.id)"); return }
        switch m {
        case .proposal(let p, let block):
            if p.height == n.height + 2 { if n.future.count < 64 { n.future.append(m) }; return }
            if let block, block.hash == p.blockHash { n.blocks[block.hash] = block }
            step(i, .proposal(p, receivedAtMillis: clock(i)))
        case .vote(let v):
            if v.height == n.height + 2 { if n.future.count < 64 { n.future.append(m) }; return }
            step(i, .vote(v))
        case .transactions(let txs):
            addToMempool(i, txs)
        case .status(let h):
            if h > n.height && now >= n.lastRequestAt + 100 {
                n.lastRequestAt = now
                send(from: i, to: from, .blockRequest(from: n.height + 1))
            }
        case .blockRequest(let h):
            guard h >= 1, h <= n.height else { return }
            let slice = n.chain[Int(h - 1)..<min(n.chain.count, Int(h - 1) + 8)]
            send(from: i, to: from, .blocks(slice.map { ($0.block, $0.certificate) }))
        case .fetchBlock(let hash):
            if let block = n.blocks[hash] { send(from: i, to: from, .blockContent(block)) }
        case .blockContent(let block):
            let hash = block.hash
            guard let k = n.awaitingContent.firstIndex(of: hash) else { return }
            n.awaitingContent.remove(at: k)
            n.blocks[hash] = block
            if block.height == n.height + 1 { step(i, .validated(height: block.height, blockHash: hash, valid: valid(block, at: n), timestampMillis: block.timestamp)) }
        case .blocks(let list):
            for (block, cert) in list where block.height == n.height + 1 {
                guard block.parent == n.headHash, certificateValid(cert, block) else { return }
                commit(i, block: block, certificate: cert)
                step(i, .committedElsewhere(height: block.height))
            }
        }
    }

    func certificateValid(_ cert: [Vote], _ block: SimBlock) -> Bool {
        var signers = Set<String>()
        for v in cert {
            guard v.type == .precommit, v.height == block.height, v.blockHash == block.hash, validators.contains(v.voter),
                  checkSigned(.vote(v)) else { return false }
            signers.insert(v.voter)
        }
        // A quorum of one round decides: precommits of different rounds prove nothing together.
        return signers.count >= validators.quorum && Set(cert.map(\.round)).count == 1
    }

    func commit(_ i: Int, block: SimBlock, certificate: [Vote]) {
        let n = nodes[i]
        if !certificateValid(certificate, block) { fail("\(n.id) committed block \(block.height) with an invalid certificate") }
        if !n.byzantine {
            // A new block's proposal is prevoted only by validators it reached in time, so what a
            // quorum took cannot be older, when first proposed, than the lag of that round.
            if let first = firstProposed[HashKey(block.hash)],
               block.timestamp &+ config.timeouts.proposalLag(round: first.round) < Self.epoch + first.time {
                fail("\(n.id) committed block \(block.height), stamped \(Self.epoch + first.time - block.timestamp) ms before it was first proposed in round \(first.round), more than the lag of \(config.timeouts.proposalLag(round: first.round)) ms")
            }
            if let d = decided[block.height], d != block.hash {
                fail("fork at height \(block.height): \(n.id) committed \(block.hash.hexString.prefix(12)), another honest node \(d.hexString.prefix(12))")
            }
            decided[block.height] = block.hash
        }
        n.chain.append((block, certificate))
        n.committed.formUnion(block.transactions)
        let done = Set(block.transactions)
        n.mempool.removeAll { done.contains($0) }
        n.mempoolSet.subtract(done)
        if !n.byzantine {
            // The submitting client hears back from the node it submitted to.
            acknowledged.formUnion(block.transactions)
        }
    }

    // MARK: Actions

    var trace = false

    func perform(_ actions: [ConsensusAction], at i: Int) {
        let n = nodes[i]
        if trace {
            for a in actions {
                switch a {
                case .schedule, .persist: break
                default: print("t=\(now) \(n.id) h\(n.machine?.height ?? 0)/r\(n.machine?.round ?? 0)/\(n.machine.map { "\($0.step)" } ?? "-"): \(a)".prefix(300))
                }
            }
        }
        var heightBefore = n.height
        for a in actions {
            switch a {
            case .persist(let s):
                n.safety = s
                for v in [s.prevote, s.precommit].compactMap({ $0 }) { n.persistedVotes.insert(v) }
                // The lock and the valid value are useless without their blocks: keep them on "disk" too.
                var keep: [Hash: SimBlock] = [:]
                for h in [s.lockedHash, s.validHash].compactMap({ $0 }) {
                    if let b = n.blocks[h] ?? n.savedBlocks[h] { keep[h] = b }
                }
                n.savedBlocks = keep
            case .broadcastProposal(let p):
                if !n.byzantine, n.safety?.proposal != p { fail("\(n.id) sent a proposal it had not persisted") }
                sendProposal(p, from: i)
            case .broadcastVote(let v):
                if !n.byzantine, v.voter == n.id, !n.persistedVotes.contains(v) { fail("\(n.id) sent a \(v.type.name) it had not persisted") }
                sendVote(v, from: i)
            case .schedule(let t, let after):
                schedule(after, .timeout(node: i, incarnation: n.incarnation, t))
            case .validate(let h, _, let hash):
                guard n.blocks[hash] != nil else {
                    // Unknown is not invalid: fetch the content and answer when it arrives.
                    n.awaitingContent.append(hash)
                    broadcast(from: i, .fetchBlock(hash))
                    continue
                }
                let block = n.blocks[hash]
                let ok = block.map { valid($0, at: n) } ?? false
                if trace { print("t=\(now) \(n.id) validated \(hash.hexString.prefix(6)): \(ok) have=\(n.blocks[hash] != nil) locked=\(n.machine?.state.lockedRound ?? -9)/\(n.machine?.state.lockedHash?.hexString.prefix(6) ?? "-")") }
                step(i, .validated(height: h, blockHash: hash, valid: ok, timestampMillis: block?.timestamp))
            case .buildProposal:
                answerBuild(i)
            case .commit(let h, _, let hash, let precommits):
                guard let block = n.blocks[hash], block.height == h else { fail("\(n.id) decided a block it does not hold"); return }
                commit(i, block: block, certificate: precommits)
            case .catchUp:
                n.lastRequestAt = now
                broadcast(from: i, .blockRequest(from: n.height + 1))
            case .evidence(let e):
                if !n.byzantine {
                    if e.offender != nodes.first(where: \.byzantine)?.id { fail("\(n.id) accused honest \(e.offender)") }
                    n.evidence.append(e)
                }
            }
        }
        if n.height != heightBefore {
            heightBefore = n.height
            n.awaitingContent = []
            let buffered = n.future
            n.future = []
            for m in buffered { receive(m, from: i, at: i) }
            if !n.mempool.isEmpty { step(i, .transactionsAvailable); answerBuild(i) }
        }
    }

    /// Notes when a new block (no proof of lock) is first proposed, and whether it is already late.
    func noteProposed(_ p: Proposal, _ block: SimBlock?) {
        guard p.polRound == -1, let block, firstProposed[HashKey(block.hash)] == nil else { return }
        firstProposed[HashKey(block.hash)] = (now, p.round)
        if block.timestamp &+ config.timeouts.proposalLag(round: p.round) < Self.epoch + now { staleProposals += 1 }
    }

    func sendProposal(_ p: Proposal, from i: Int) {
        let n = nodes[i]
        let block = n.blocks[p.blockHash]
        noteProposed(p, block)
        if n.byzantine, let block {
            // Equivocate: a second, equally valid block for the same round to half the peers.
            let twin = SimBlock(height: block.height, parent: block.parent, transactions: block.transactions,
                                proposer: block.proposer, salt: block.salt &+ 1 &+ rng.below(1000), timestamp: block.timestamp)
            n.blocks[twin.hash] = twin

            let bytes = Proposal.signingBytes(chainID: Self.chainID, height: p.height, round: p.round, polRound: p.polRound,
                                              blockHash: twin.hash, proposer: n.id)
            let p2 = Proposal(height: p.height, round: p.round, polRound: p.polRound, blockHash: twin.hash, proposer: n.id,
                              signature: SimSigner.signature(n.id, bytes))
            noteProposed(p2, twin)
            equivocationsSent += 1
            for j in nodes.indices where j != i { send(from: i, to: j, j % 2 == 0 ? .proposal(p, block) : .proposal(p2, twin)) }
            return
        }
        broadcast(from: i, .proposal(p, block))
    }

    func sendVote(_ v: Vote, from i: Int) {
        let n = nodes[i]
        if n.byzantine {
            // Equivocate: vote for something else towards half the peers.
            let other: Hash? = v.blockHash == nil ? n.blocks.keys.sorted { $0.lexicographicallyPrecedes($1) }.first : nil
            let bytes = Vote.signingBytes(chainID: Self.chainID, type: v.type, height: v.height, round: v.round, blockHash: other, voter: n.id)
            let attachment = (v.type == .precommit && other != nil) ? SimSigner.attachment(n.id, height: v.height, blockHash: other!) : []
            let v2 = Vote(type: v.type, height: v.height, round: v.round, blockHash: other, voter: n.id,
                          signature: SimSigner.signature(n.id, bytes), attachment: attachment)
            equivocationsSent += 1
            for j in nodes.indices where j != i { send(from: i, to: j, j % 2 == 1 ? .vote(v) : .vote(v2)) }
            return
        }
        broadcast(from: i, .vote(v))
    }

    func broadcast(from i: Int, _ m: SimMessage) {
        for j in nodes.indices where j != i { send(from: i, to: j, m) }
    }

    func send(from i: Int, to j: Int, _ m: SimMessage) {
        if faultsOn {
            if partitioned.contains(i) != partitioned.contains(j) { return }
            if rng.chance(config.lossPerMille) { return }
            if rng.chance(config.duplicatePerMille) { schedule(rng.range(1...config.maxDelayMillis), .deliver(from: i, to: j, m)) }
            schedule(rng.range(1...config.maxDelayMillis), .deliver(from: i, to: j, m))
        } else {
            schedule(rng.range(1...10), .deliver(from: i, to: j, m))
        }
    }
}
