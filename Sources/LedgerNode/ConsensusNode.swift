import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import Logging
import NIOConcurrencyHelpers
import P2P
import Policy
import Scoring
import ServiceLifecycle
import Synchronization

/// A consortium node: runs Tendermint (`TendermintMachine`) over the authenticated P2P
/// transport, keeps the mempool, proposes and checks blocks, commits them durably with their
/// certificates, and catches up from peers. A member without the validator role follows:
/// it checks and stores every block but never votes.
///
/// All consensus state is touched only on `queue` (one serial queue), so the machine sees
/// events one at a time and actions are carried out in order: a `.persist` is synced before
/// the sends that follow it.
public final class ConsensusNode: LedgerService, @unchecked Sendable {
    public struct Options: Sendable {
        public var timeouts = ConsensusTimeouts()
        public var statusInterval: Duration = .seconds(1)
        var statusIntervalMillis: UInt64 { statusInterval.inMilliseconds }
        /// Blocks are refused whose timestamp is this far ahead of the local clock.
        public var maxClockSkewMillis: UInt64 = 30_000
        /// A scorer scores subjects with new records after each block (docs/SCORING.md, live scoring).
        public var autoScore = true
        /// How long a submitter waits for its transactions to commit before it is answered
        /// `notCommitted` (they stay pending): without a quorum nothing commits, and a client
        /// with no timeout of its own would otherwise hold its connection for good.
        public var commitWait: Duration = .seconds(50)
        /// The store was created at this start: a validator finding its own votes in the blocks it
        /// catches up then names a wrong `data_dir` as the likely cause.
        public var freshDataDirectory = false
        public init() {}
    }

    public let store: ChainStore
    public let genesis: Genesis
    public let validator: TransactionValidator
    public let member: Member
    let keys: MemberSecretKeys
    let isValidator: Bool
    let options: Options
    let logger: Logger
    /// Takes erased envelopes off the disk after the block erasing them.
    let purger: EnvelopePurger
    let clock: @Sendable () -> UInt64
    /// Milliseconds on a clock that never steps (the system's uptime unless a test gives its
    /// own), for how long a height has gone uncommitted: on the wall clock, an NTP step back of
    /// 2 minutes hid a lost quorum from status, health and the log for those 2 minutes (found by
    /// black-box testing, 2026-12-07).
    let elapsedMillis: @Sendable () -> UInt64
    let mempool: Mempool
    let verified: VerifiedCache
    /// Runs where each transaction of a checked block is read against the store (a test makes it
    /// fail as a failing disk read would).
    var beforeCheckingTransaction: () throws -> Void = {}
    /// Writes a committed block, durably (a test makes it fail as a full disk would).
    var writeBlock: (_ built: BlockBuilder.Result, _ certificate: CommitCertificate, _ submissions: [Submission], _ checkpoint: String) throws -> Void
    /// Times each block's synced write, for the log and `GET /v1/status`.
    let writeWatch: BlockWriteWatch
    /// Ends the process when the node cannot go on safely (a test records the message instead).
    var stopProcess: (String) -> Void = { _ in _exit(70) }
    let wal: ConsensusWAL
    let queue = DispatchQueue(label: "creditledger.consensus")
    let gossipQueue = DispatchQueue(label: "creditledger.gossip")
    /// Block requests, apart from gossip: a member sending batches of badly signed transactions
    /// had every peer's catch-up wait behind their checks (found in review).
    let servingQueue = DispatchQueue(label: "creditledger.serving")
    /// Peer messages received and not yet handled, per peer and in all; past its bounds a peer's
    /// messages are dropped, so a peer sending faster than this node works cannot fill its
    /// memory. Consensus messages, gossip (transactions and block requests) and score
    /// endorsements each have their own: a peer's votes are not dropped because its gossip
    /// waits behind the checks of earlier batches (found in review, 2026-12-06).
    let backlog = InboundBacklog()
    let gossipBacklog = InboundBacklog.gossip()
    let scoringBacklog = InboundBacklog.scoring()
    var p2p: P2PNode!

    // Touched only on `queue`.
    /// Set once at the end of `init` (its signer refers back to the node).
    var machine: TendermintMachine!
    var candidates: [Hash: (block: CandidateBlock, built: BlockBuilder.Result)] = [:]
    var unchecked: [Hash: CandidateBlock] = [:]
    /// Locked or valid blocks of the persisted safety state not yet taken up: made candidates
    /// once the store reaches the height below theirs (at start, or later when the state is
    /// ahead of the store: `TendermintMachine.signsAgainFrom`).
    var deferredBlocks: [Hash: CandidateBlock] = [:]
    /// Blocks the machine asked to check whose content is not here, by the earliest round that
    /// proposed each. Only those within `blockRoundWindow` rounds are fetched (the others once
    /// their round comes near), and only their content is kept past `maxCandidates`: a proposer
    /// announcing blocks for its own rounds far ahead, without content, and then answering the
    /// fetches, would otherwise fill the cache past its bound with blocks of up to 24 MiB.
    var awaitingContent: [Hash: UInt32] = [:]
    /// Catch-up blocks whose transactions were checked (every signature): only blocks whose
    /// certificate, checkpoint and content hashes all hold get that far.
    var catchUpBlocksChecked = 0

    /// Whether blocks proposed for `round` are kept and fetched now.
    func withinBlockWindow(_ round: UInt32, from current: UInt32? = nil) -> Bool {
        round <= (current ?? machine.round) &+ Self.blockRoundWindow
    }
    /// Block contents sent to each peer, with when (monotonic nanoseconds): a peer is answered
    /// once a second per block (an honest one asks once a status tick) and for at most
    /// `contentServedPerSecond` blocks a second. Each answer encodes up to 24 MiB on the consensus
    /// queue, where votes and proposals wait; a peer asking in a loop held that queue.
    var contentServed: [String: [HashKey: UInt64]] = [:]
    static let contentServedPerSecond = 8
    var deferredPrecommits: [Hash: [Vote]] = [:]
    /// Messages for the next height (peer, message, when it arrived), replayed once this node
    /// commits the current one: a proposal keeps its time of arrival, by which it is timely.
    var future: [(String, NetMessage, UInt64)] = []
    /// (kind, signer, round) of each message in `future`, and the bytes of their blocks.
    var futureKeys = Set<String>()
    var futureBytes = 0
    var futurePerSigner: [String: Int] = [:]
    var buildWanted: (height: UInt64, round: UInt32)?
    /// `claimed`: the height the peer reported when it was asked; a status it sent after serving
    /// may arrive before the blocks (consensus messages overtake them), and must not make its
    /// answer look short.
    var lastRequest: (peer: String, at: ContinuousClock.Instant, from: UInt64, claimed: UInt64)?
    /// Catch-up requests each peer left unanswered, or answered with blocks that failed checks.
    var catchUpMisses: [String: Int] = [:]
    /// The last request for committed blocks to fill envelopes missing from catch-up blocks.
    var envelopeRequest: (peer: String, from: UInt64, turn: Int)?
    var peerHeights: [String: UInt64] = [:]
    /// When each peer's session ended (the node's clock, ms), and when the node started: a peer
    /// counts as absent only once it has been without a session for a status interval, so a
    /// node just started, or a session that flaps, does not cut a present proposer's round short.
    var disconnectedSince: [String: UInt64] = [:]
    var startedAtMillis: UInt64 = 0
    /// When each peer's last status arrived (the node's clock, ms).
    var statusAt: [String: UInt64] = [:]
    /// When the last status tick ran (monotonic clock, ms).
    var lastTickMillis: UInt64 = 0

    /// A session ended. A peer that had said nothing for `hungAfterStatusIntervals` has been gone
    /// since its last status: a hung peer's session is closed only by the 20 s idle timeout,
    /// and its heights waited the full timeouts for another status interval after that (found by
    /// black-box testing, 2026-12-07). A session that merely flaps counts from now.
    func peerDisconnected(_ peer: String) {
        peerHeights[peer] = nil
        updateDecidedByOthers()
        let now = clock(), last = statusAt[peer] ?? now
        let quiet = now >= last && now - last >= Self.hungAfterStatusIntervals * max(options.statusIntervalMillis, 1)
        disconnectedSince[peer] = quiet ? last : now
        statusAt[peer] = nil
    }
    /// When the head last moved, or the node last had nothing to commit (its clock, ms), and the
    /// head then; and when a stall was last reported. A height left uncommitted while there is
    /// work is logged as a warning and shown in status: when the network lost its quorum, every
    /// node logged nothing above info for minutes (found by black-box testing, 2026-12-06).
    var progress: (height: UInt64, millis: UInt64) = (0, 0)
    var lastStallWarningMillis: UInt64 = 0
    /// Equivocations by this member seen here: another node signing with this member's key.
    var keySeenElsewhere = 0
    /// How long a height may stay uncommitted, with work pending, before it is reported.
    static let stallMillis: UInt64 = 10_000
    /// Equivocations recorded as evidence, by height (one entry per offender and step):
    /// those of committed heights are forgotten, so an offender at every height and round does
    /// not grow it for the life of the process.
    var reported: [UInt64: Set<String>] = [:]
    /// When each peer was last warned about in the log (bad content, out-of-range rounds); more
    /// within `peerWarningInterval` go to the debug level.
    /// Locked: messages that do not decode are warned about on the P2P event loop, the rest on `queue`.
    let peerWarnings = Mutex<[String: ContinuousClock.Instant]>([:])
    static let peerWarningInterval: Duration = .seconds(10)
    private let nonceLock = NSLock()
    private var lastNonce: UInt64 = 0
    var autoScorer: AutoScorer?

    /// Nonces for transactions this node signs itself (evidence, score updates): unique and increasing.
    func nextNonce() -> UInt64 {
        nonceLock.withLock {
            lastNonce = max(lastNonce + 1, clock() * 1000)
            return lastNonce
        }
    }
    var stopped = false
    /// Set while a decided block waits for disk space (`StorageError.noSpace`: nothing was
    /// written): the node takes no consensus event and retries the write every
    /// `spaceRetryInterval`, serving reads meanwhile; health answers 503 with the reason. It
    /// stopped the process instead (found by black-box testing, 2026-12-07).
    var waitingForSpace: (height: UInt64, since: ContinuousClock.Instant)?
    var spaceRetryInterval: DispatchTimeInterval = .seconds(5)
    /// The reason health gives while a block waits for space (read off the queue).
    let publishedWriteFailure = Mutex<String?>(nil)
    var statusTimer: DispatchSourceTimer?

    /// The largest peer message (one P2P frame): `min(2 · max_request_bytes, 256 MiB)`.
    /// Settable for tests of what fits in a frame.
    var maxFrameBytes: Int
    /// The most bytes a built block's submissions take encoded (transactions, envelopes and
    /// their lengths): 24 MiB, or less so that the block with its header, proposal, certificate
    /// and checkpoint fits in one frame — in a proposal, a `block_content` or a `blocks` reply.
    var maxBlockContentBytes: Int { Self.blockContentBytes(frame: maxFrameBytes, validators: genesis.validators.count) }
    static func blockContentBytes(frame: Int, validators: Int) -> Int {
        max(0, min(24 << 20, frame - NetMessage.blockMessageOverhead(validators: validators)))
    }

    static let maxCandidates = 16
    /// Blocks are kept from proposals for at most this many rounds past the current one.
    static let blockRoundWindow: UInt32 = 4
    /// Rounds of this height whose proposed block is kept (one block per round).
    var keptRounds = Set<UInt32>()
    /// Rounds of this height whose new block's timeliness was looked at (the first copy's).
    var lateProposalRounds = Set<UInt32>()
    /// This node's proposals (by round, at the current height) already sent with their block:
    /// sent again every second without it. Re-sending a block of up to 24 MiB to every peer each
    /// second until the height committed queued votes behind it (found in review, 2026-12-06);
    /// a peer that missed the block fetches it by hash (`fetch_block`).
    var proposalRoundsSentWithBlock = Set<UInt32>()
    static let maxFuture = 512
    /// Bytes of proposed blocks kept in `future`: a proposal whose block does not fit is kept
    /// without it (the content is fetched by hash once the height starts).
    var maxFutureBytes: Int { min(2 * maxFrameBytes, 64 << 20) }
    static let maxDeferred = 256

    public init(store: ChainStore, keys: MemberSecretKeys, options: Options = .init(), walDirectory: String,
                clock: @escaping @Sendable () -> UInt64, elapsedMillis: (@Sendable () -> UInt64)? = nil, logger: Logger) throws {
        self.elapsedMillis = elapsedMillis ?? { DispatchTime.now().uptimeNanoseconds / 1_000_000 }
        self.store = store
        self.genesis = store.genesis
        var validator = TransactionValidator.standard(genesis: store.genesis)
        validator.scoreChecks = CheckMemo()
        validator.consentChecks = CheckMemo()
        self.validator = validator
        guard let member = genesis.member(keys.memberID), member.signingKey == keys.signing.publicKey else {
            throw LedgerError(.unknownSigner, "key of \(keys.memberID) is not a member key in this genesis")
        }
        self.member = member
        self.keys = keys
        self.isValidator = member.has(.validator)
        self.options = options
        self.logger = logger
        purger = EnvelopePurger(store: store, logger: logger)
        self.clock = clock
        let frame = min(store.genesis.limits.maxRequestBytes * 2, 256 << 20)
        self.maxFrameBytes = frame
        // A submission too large for any block would never leave the mempool, and, being the
        // oldest, would stop every block from being built: it is refused at admission.
        self.mempool = Mempool(capacity: genesis.limits.maxMempoolTransactions,
                               maxSubmissionBytes: Self.blockContentBytes(frame: frame, validators: genesis.validators.count) - NetMessage.submissionOverhead)
        self.verified = VerifiedCache(capacity: max(2 * genesis.limits.maxMempoolTransactions, 4 * genesis.limits.maxBlockTransactions))
        self.writeWatch = BlockWriteWatch(watching: store, logger: logger)
        self.writeBlock = { [store] built, certificate, submissions, checkpoint in
            try store.append(block: built, certificate: certificate, submissions: submissions, checkpoint: checkpoint)
        }
        self.wal = try ConsensusWAL(directory: walDirectory)
        let (loaded, savedBlocks) = try wal.load(limits: genesis.limits)
        if !wal.leftoversRemoved.isEmpty {
            logger.notice("removed \(wal.leftoversRemoved.count) file(s) an interrupted run left in \(walDirectory) (blocks the safety state no longer names, unfinished writes): \(wal.leftoversRemoved.prefix(4).joined(separator: ", "))")
        }
        // A store with blocks and no safety state: this validator has voted here before unless it
        // only ever caught up. Said, since a removed or lost state is the double-signing risk the
        // state exists for; it started without a word (found by black-box testing, 2026-12-07).
        if loaded == nil, isValidator, store.head.height > 0 {
            logger.warning("no consensus safety state in \(walDirectory) (this validator's last votes and lock), yet the store holds \(store.head.height) blocks: if this validator voted on this data directory before, its state was removed or lost. It signs nothing at heights other validators report having committed, and a vote of its own that peers relay holds it; restore \(walDirectory)/safety-state if you have it")
        }
        let restored = loaded.map { Self.refreshingPrecommitAttachment($0, blocks: savedBlocks, member: member, key: keys.signing) }
        let validators = ValidatorSet(ids: genesis.validators.map(\.id))
        let signer: NodeSigner? = isValidator ? NodeSigner(memberID: member.id, key: keys.signing, node: self) : nil
        machine = TendermintMachine(chainID: genesis.chainID, validators: validators, signer: signer, timeouts: options.timeouts,
                                    committedHeight: store.head.height, restored: restored)
        if let from = machine.signsAgainFrom {
            logger.warning("the consensus safety state is for height \(from), the store's head is at \(store.head.height) (a store older than this validator's votes: restored from a backup?); it signs nothing until it has caught up to height \(from), where its earlier votes and lock are taken up again. Only if the whole consortium rolled its chain back on purpose: stop the node and delete \(walDirectory)/safety-state")
        }
        deferredBlocks = savedBlocks
        adoptDeferredBlocks()
        if member.has(.scorer) && isValidator && options.autoScore {
            autoScorer = AutoScorer(node: self, stateDirectory: walDirectory)
            // Live scoring asks the other scorers that are validators for endorsements; a genesis
            // needing more than they can give (endorsers on follower nodes) leaves every update
            // to the manual path (`credit-node rescore --submit --endorser-key`).
            let askable = genesis.validators.filter { $0.has(.scorer) && $0.id != member.id }.count
            if genesis.scoreEndorsementsRequired > askable {
                logger.warning("genesis requires \(genesis.scoreEndorsementsRequired) score endorsement(s) but only \(askable) other scorer(s) are validators, which live scoring asks; no live score update can be endorsed: score with `credit-node rescore --submit --endorser-key` instead")
            }
        }
    }

    // MARK: Lifecycle

    /// Inbound connections a node keeps for handshakes beyond one per genesis member.
    static let handshakeHeadroom = 32

    /// The transport's settings for this node: every other genesis member allowed, frames up to
    /// `maxFrameBytes`, and room for an inbound session from every member plus
    /// `handshakeHeadroom` handshakes. The transport's default of 64 inbound connections
    /// refused members for good from the 65th on, and left handshakes one slot from about 63
    /// members (genesis allows 100 validators, and followers besides; found in review).
    static func p2pConfig(genesis: Genesis, member: Member, keys: MemberSecretKeys, listenHost: String, listenPort: Int,
                          peers: [PeerAddress], maxFrameBytes: Int) -> P2PConfig {
        var allowed: [String: Ed25519PublicKey] = [:]
        for m in genesis.members where m.id != member.id { allowed[m.id] = m.signingKey }
        var config = P2PConfig(chainID: genesis.chainID, genesisHash: genesis.hash, localMemberID: member.id,
                               signingKey: keys.signing, listenHost: listenHost, listenPort: listenPort,
                               peers: peers, allowedPeers: allowed)
        config.maxFrameBytes = maxFrameBytes
        config.maxInboundConnections = max(config.maxInboundConnections, allowed.count + handshakeHeadroom)
        return config
    }

    /// Starts the P2P transport and consensus. `peers` are the addresses to dial.
    public func start(listenHost: String, listenPort: Int, peers: [PeerAddress]) async throws -> Int {
        let config = Self.p2pConfig(genesis: genesis, member: member, keys: keys, listenHost: listenHost, listenPort: listenPort,
                                    peers: peers, maxFrameBytes: maxFrameBytes)
        let limits = genesis.limits
        let mempool = self.mempool
        p2p = P2PNode(config: config, logger: logger, onMessage: { [weak self] from, bytes in
            guard let self else { return }
            let message: NetMessage
            do { message = try NetMessage.decode(bytes, limits: limits, known: { mempool.submission($0) }) } catch {
                self.warn(about: from, window: "malformed", "dropped a malformed message from \(from): \(error)")
                return
            }
            self.received(message, from: from, bytes: bytes.count)
        }, onPeer: { [weak self] peer, connected in
            guard let self else { return }
            self.queue.async {
                // A peer ending each session this node opens (refusing it) is said once, by P2P.
                self.logger.log(level: self.p2p.isEndingSessions(peer) ? .debug : .info, "peer \(peer) \(connected ? "connected" : "disconnected")")
                if connected { self.p2p.send(self.statusMessage, to: peer); self.disconnectedSince[peer] = nil }
                else { self.peerDisconnected(peer) }
            }
        })
        let port = try await p2p.start()
        queue.sync {
            startedAtMillis = clock()
            perform(machine.start())
            if !mempool.isEmpty { handle(.transactionsAvailable) }
        }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let ms = Int(options.statusIntervalMillis)
        timer.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms))
        timer.setEventHandler { [weak self] in self?.statusTick() }
        timer.resume()
        statusTimer = timer
        autoScorer?.upgrade.resume()
        logger.info("\(isValidator ? "validator" : "follower") \(member.id) at height \(store.head.height); P2P on \(listenHost):\(port)")
        return port
    }

    public func stop() async {
        queue.sync {
            stopped = true
            statusTimer?.cancel()
        }
        autoScorer?.upgrade.stop()
        mempool.close(LedgerError(.mempoolFull, "node stopped before the transaction committed"))
        await p2p?.stop()
        // With P2P stopped nothing new arrives; let the work already queued (bounded by the
        // inbound backlogs) finish. The process exits soon after this returns, and a queue
        // thread still reading the store (serving blocks to a peer, say) while exit tears down
        // RocksDB's globals crashed a follower with SIGSEGV on SIGTERM.
        queue.sync {}
        gossipQueue.sync {}
        servingQueue.sync {}
        autoScorer?.queue.sync {}
        if let paused = queue.sync(execute: { waitingForSpace }) {
            logger.notice("stopped at height \(store.head.height) while block \(paused.height) waited for disk space: it was not written here; this node takes it from its peers once restarted with space")
        } else {
            logger.notice("stopped at height \(store.head.height); every committed block is in the store")
        }
    }

    // MARK: LedgerService

    public var blockWrites: BlockWriteWatch { writeWatch }

    public func submit(_ submissions: [Submission], signedHere: Bool) async throws -> [CommitResult] {
        guard !submissions.isEmpty else { return [] }
        try validator.checkSubmissions(submissions, state: store, signedBy: signedHere ? member : nil)
        for s in submissions { verified.insert(s) }
        // As long as the node's commit wait, or the client's (`Prefer: wait`) if that is shorter.
        let wait = min(options.commitWait, LedgerAPI.CommitWait.preferred ?? options.commitWait)
        // A stopping node answers its waiting submitters at once instead of holding its stop
        // for their whole commit wait (found by black-box testing: SIGTERM took 48 s while a
        // client waited on a chain without a quorum, past what stop.sh waits).
        return try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { continuation in
                do {
                    let (fresh, waiter) = try mempool.admitWaiting(submissions, continuation: continuation)
                    gossip(fresh)
                    queue.async { self.transactionsArrived() }
                    if let waiter { stopWaiting(waiter, after: wait) }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        } onGracefulShutdown: { [mempool, logger] in
            if !self.stopAnnounced.exchange(true, ordering: .relaxed) {
                logger.notice("stopping: answering the submitters still waiting for a commit, then closing P2P and the store")
            }
            mempool.close(LedgerError(.notCommitted, "the node is stopping before the transaction committed; it may still commit through the other validators: look it up by id on a running node, or send the same signed transaction again (it is never recorded twice)"))
        }
    }

    /// `uncommittedForMillis` as of the last status tick, for `GET /v1/health` (read off the queue).
    let publishedStallMillis = Atomic<UInt64>(0)
    /// Connected peers, and how far the height f+1 validator peers report (`heightReportedByHonest`)
    /// is above the head, as of the last status tick, for `GET /v1/health`: a node cut off from
    /// every peer, or far behind, said "ok" (found by black-box testing, 2026-12-07).
    let publishedPeers = Atomic<Int>(-1)
    /// UInt64.max until f+1 validator peers have reported their heights: right after a start
    /// health said "behind_by 0" for a node 300 blocks behind (found by black-box testing, 2026-12-08).
    let publishedBehind = Atomic<UInt64>(.max)
    public var refusingPeers: [(peer: String, why: String)] { p2p?.peersEndingSessions ?? [] }
    public var connectivity: (peers: Int, behindBy: UInt64?)? {
        let peers = publishedPeers.load(ordering: .relaxed), behind = publishedBehind.load(ordering: .relaxed)
        return peers < 0 ? nil : (peers, behind == .max ? nil : behind)
    }
    public var stalledForMillis: UInt64 {
        let s = publishedStallMillis.load(ordering: .relaxed)
        return s >= Self.stallMillis ? s : 0
    }

    /// Whether the stop was logged (once, by the first waiting submitter to see it).
    let stopAnnounced = Atomic<Bool>(false)

    public var nodeKeys: MemberSecretKeys { keys }
    public func ownNonce() -> UInt64 { nextNonce() }
    public func isPending(_ id: Hash) -> Bool { mempool.contains(id) }

    /// Ends `waiter`'s wait after `wait` unless its transactions have committed by then.
    private func stopWaiting(_ waiter: Mempool.Waiter, after wait: Duration) {
        let (seconds, attoseconds) = wait.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        mempool.stopWaiting(waiter, after: .nanoseconds(nanoseconds)) { committed, total in
            let within = nanoseconds % 1_000_000_000 == 0 ? "\(nanoseconds / 1_000_000_000) s" : "\(nanoseconds / 1_000_000) ms"
            let what = total == 1 ? "the transaction was not committed within \(within); it is"
                : "\(committed) of the \(total) transactions were committed within \(within); the rest are"
            return LedgerError(.notCommitted,
                "\(what) still pending and may commit later (is a quorum of validators up? GET /v1/status on a node's operator address tells). Look them up by id on your own node; sending the same signed transactions again is safe, signing them again with new nonces would record them twice")
        }
    }

    /// The consensus figures of `status`, from the consensus queue, with a fallback: the
    /// queue may be busy for seconds (applying a catch-up batch), and a status request waiting
    /// on it held an HTTP thread, so that a few of them stalled `/v1/health` for 8–12 s and
    /// `status.sh` called a node that was catching up "not answering" (found by black-box
    /// testing). A request waits at most `statusWait`, then answers with the figures last
    /// published (each status tick, and after each catch-up batch), saying how old they are.
    public func status() -> [String: any Sendable] {
        let rescore = autoScorer?.upgrade.status
        let backlog = autoScorer?.backlogStatus
        let fresh = NIOLockedValueBox<[String: any Sendable]?>(nil)
        let done = DispatchSemaphore(value: 0)
        queue.async {
            let s = self.consensusStatus()
            fresh.withLockedValue { $0 = s }
            done.signal()
        }
        var s: [String: any Sendable]
        if done.wait(timeout: .now() + Self.statusWait) == .success, let f = fresh.withLockedValue({ $0 }) {
            s = f
        } else if let (published, at) = publishedStatus.withLock({ $0 }) {
            s = published
            let age = (DispatchTime.now().uptimeNanoseconds &- at) / 1_000_000
            s["status_age_ms"] = Int(age)
            s["status_note"] = "the consensus queue is busy (catching up, say): these consensus figures are from \(age) ms ago"
        } else {
            s = ["mode": isValidator ? "validator" : "follower", "member": member.id,
                 "status_note": "the consensus queue is busy (catching up, say) and has published no figures yet"]
        }
        if let rescore { s["rescore"] = rescore }
        if let backlog { s["scoring_backlog"] = backlog }
        s["synced_block_writes"] = writeWatch.status
        return s
    }

    static let statusWait: DispatchTimeInterval = .milliseconds(250)
    /// The figures `consensusStatus` last gave, with when (monotonic nanoseconds).
    let publishedStatus = Mutex<(status: [String: any Sendable], atNanos: UInt64)?>(nil)

    /// Builds the consensus figures of `status` and publishes them. On the consensus queue.
    func consensusStatus() -> [String: any Sendable] {
        var s: [String: any Sendable] = [
            "mode": isValidator ? "validator" : "follower",
            "member": member.id,
            "consensus": ["height": machine.height, "round": Int(machine.round), "step": "\(machine.step)",
                          "signs_again_from": machine.signsAgainFrom.map { Int($0) } ?? 0] as [String: any Sendable],
            "peers": p2p?.connectedPeers ?? [],
            "peer_heights": peerHeights,
            "mempool": mempool.count,
            // Time the current height has gone uncommitted with work pending (0 when idle or moving).
            "uncommitted_for_ms": uncommittedForMillis,
            // Equivocations by this member seen here: another node is signing with its key.
            "own_key_equivocations": keySeenElsewhere,
            "validators": genesis.validators.count,
            "quorum": genesis.quorum,
            // What the config set, as in effect (an operator could not confirm a change; found by black-box testing).
            "timeouts_ms": ["propose": options.timeouts.propose, "prevote": options.timeouts.prevote, "precommit": options.timeouts.precommit,
                            "rebroadcast": options.timeouts.rebroadcast] as [String: any Sendable],
            "commit_wait_seconds": Int(options.commitWait.inSeconds),
            // Records committed without their envelope (from catch-up) and not erased; fetched again from peers.
            "missing_envelopes": store.missingEnvelopeCount,
        ]
        if let memo = validator.scoreChecks {
            let n = memo.statistics
            s["score_checks"] = ["recomputed": n.checked, "reused": n.reused] as [String: any Sendable]
        }
        if let memo = validator.consentChecks {
            let n = memo.statistics
            s["consent_checks"] = ["checked": n.checked, "reused": n.reused] as [String: any Sendable]
        }
        publishedStatus.withLock { $0 = (s, DispatchTime.now().uptimeNanoseconds) }
        return s
    }

    func gossip(_ submissions: [Submission]) {
        guard let p2p else { return }
        for chunk in gossipChunks(submissions) { p2p.broadcast(NetMessage.transactions(chunk).encoded, bulk: true) }
    }

    /// Submissions in gossip messages of at most 1,000 each and, whatever genesis allows a
    /// request to hold, never more bytes than a frame carries (with room for the message's own
    /// counts and lengths).
    func gossipChunks(_ submissions: [Submission]) -> [[Submission]] {
        let budget = maxFrameBytes - (4 << 10)
        var chunks: [[Submission]] = []
        var chunk: [Submission] = []
        var bytes = 0
        for s in submissions {
            let size = s.byteCount + 16
            if !chunk.isEmpty, chunk.count == 1_000 || bytes + size > budget {
                chunks.append(chunk)
                chunk = []
                bytes = 0
            }
            chunk.append(s)
            bytes += size
        }
        if !chunk.isEmpty { chunks.append(chunk) }
        return chunks
    }

    /// Stateless checks (signature, role, envelope), once per transaction on this node.
    func checkStateless(_ s: Submission) throws {
        let key = VerifiedCache.key(s)
        if verified.contains(key: key) { return }
        try validator.checkStateless(s)
        verified.insert(key: key)
    }

    /// A transaction signed by this node's own key (evidence, score updates), with a fresh nonce.
    func signOwn(_ body: TransactionBody) -> Transaction {
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID, nonce: nextNonce(), issuedAtMillis: clock())
        return Transaction.sign(header: header, body: body, key: keys.signing)
    }

    /// Signs, checks, admits and gossips a transaction of this node's own; no one waits for it.
    /// Returns its id.
    @discardableResult
    func submitOwn(_ body: TransactionBody) throws -> Hash {
        let s = Submission(transaction: signOwn(body), envelope: nil)
        try checkStateless(s)
        try validator.checkStateful(s.transaction, state: store)
        try mempool.admit([s], continuation: nil)
        gossip([s])
        queue.async { self.transactionsArrived() }
        return s.transaction.id
    }

    var statusMessage: [UInt8] { NetMessage.status(height: store.head.height, headHash: store.head.blockHash).encoded }

    /// The peer to catch up from: of those reporting a height above this node's head, the one
    /// that failed catch-up requests least often, then the furthest ahead. A peer that claims a
    /// height it does not serve (or serves blocks that fail their checks) is thus asked only
    /// when no other peer is ahead.
    var bestPeerAhead: String? {
        let head = store.head.height
        return peerHeights.filter { $0.value > head }.min { a, b in
            let (ma, mb) = (catchUpMisses[a.key, default: 0], catchUpMisses[b.key, default: 0])
            if ma != mb { return ma < mb }
            return a.value != b.value ? a.value > b.value : a.key < b.key
        }?.key
    }

    // MARK: Incoming

    /// On an event-loop thread: hands a decoded peer message (`bytes` long on the wire) to the
    /// queue that handles it, within the peer's share of `backlog`.
    func received(_ message: NetMessage, from peer: String, bytes: Int) {
        func enqueue(on q: DispatchQueue, serving: Bool = false, in backlog: InboundBacklog? = nil, _ work: @escaping @Sendable () -> Void) {
            let backlog = backlog ?? self.backlog
            switch backlog.take(peer, bytes: bytes, blockRequest: serving) {
            case .taken:
                q.async { defer { backlog.give(peer, bytes: bytes, blockRequest: serving) }; work() }
            case .dropped(let why, let log):
                if log { logger.warning("dropped a \(message.name) from \(peer): \(why)") }
            }
        }
        switch message {
        case .transactions(let list):
            // A follower never proposes: it checks transactions when their block arrives.
            if isValidator { enqueue(on: gossipQueue, in: gossipBacklog) { self.admitGossip(list, from: peer) } }
        case .blockRequest(let from, let count):
            enqueue(on: servingQueue, serving: true, in: gossipBacklog) { self.serveBlocks(from: from, count: Int(count), to: peer) }
        case .endorseRequest(let tx):
            if let scorer = autoScorer { enqueue(on: scorer.queue, in: scoringBacklog) { scorer.endorseRequested(tx, from: peer) } }
        case .endorsement(let carrier, let signature):
            if let scorer = autoScorer { enqueue(on: scorer.queue, in: scoringBacklog) { scorer.endorsed(carrier: carrier, signature: signature, from: peer) } }
        default:
            enqueue(on: queue) { self.dispatch(message, from: peer) }
        }
    }

    /// A peer gossips only transactions it admitted, so one failing the stateless checks (a bad
    /// signature, say) shows a faulty peer: the rest of its batch is dropped unchecked, and the
    /// peer named (at most a warning per interval). A batch of 5,000 badly signed copies cost a
    /// validator 0.3 s of signature checks each (found in review). One failing the stateful
    /// checks may have gone stale on the way (its nonce committed meanwhile, say): passed over.
    func admitGossip(_ list: [Submission], from peer: String) {
        var ok: [Submission] = []
        var seen = Set<HashKey>()
        for s in list {
            let id = s.transaction.id
            guard seen.insert(HashKey(id)).inserted else { continue }
            if mempool.contains(id) || ((try? store.location(of: id)) ?? nil) != nil { continue }
            do {
                try checkStateless(s)
            } catch {
                warn(about: peer, window: "gossip", "peer \(peer) gossiped transaction \(id.hexString.prefix(16))…, which fails the checks every node makes before relaying (\(error)); "
                    + "it and the rest of its batch of \(list.count) were dropped unchecked: is that node faulty, or of another version?")
                break
            }
            do {
                try validator.checkStateful(s.transaction, state: store, forMempool: true)
                ok.append(s)
            } catch {
                logger.debug("gossiped transaction \(id.hexString.prefix(16)) from \(peer) refused: \(error)")
            }
        }
        guard !ok.isEmpty else { return }
        do { try mempool.admit(ok, continuation: nil) } catch {
            warn(about: peer, window: "mempool", "gossiped transactions from \(peer) dropped: \(error)")
            return
        }
        queue.async { self.transactionsArrived() }
    }

    /// Answers a block request with what the peer's send queue has room for. A reply was read
    /// from the store and encoded whole (up to a frame, 96 MiB) and only then found no room, so a
    /// member that stopped reading and kept asking kept this worker reading blocks (found in
    /// review, 2026-12-06); a peer whose queue is full gets nothing and asks again later.
    func serveBlocks(from: UInt64, count: Int, to peer: String) {
        // Against the bulk share of the queue, which the reply is sent under.
        let room = p2p.bulkQueuedBytesPerPeer - p2p.queuedBytes(for: peer) - NetMessage.blocksMessageHeaderBytes - 64
        let list = blocksToServe(from: from, count: count, to: peer, room: room)
        if !list.isEmpty { p2p.send(NetMessage.blocks(list).encoded, to: peer, bulk: true) }
    }

    /// Committed blocks from `from` for one `blocks` reply: at most `count` (and
    /// `maxBlocksPerResponse`), and no more than fit in one frame, measured by each block's full
    /// encoded size (transactions, envelopes, certificate, checkpoint). The first block is
    /// included even when it is larger than the rest of the frame budget, so a peer behind by such
    /// a block still gets it, but not when it is larger than `room`, the bytes the peer's send
    /// queue can still take: then nothing is read past it and the reply is empty.
    func blocksToServe(from: UInt64, count: Int, to peer: String, room: Int = .max) -> [CommittedBlock] {
        let head = store.head.height
        guard from >= 1, from <= head, room > 0 else { return [] }
        let budget = min(maxFrameBytes - NetMessage.blocksMessageHeaderBytes, room)
        var list: [CommittedBlock] = []
        var bytes = 0
        var h = from
        do {
            while h <= head, list.count < min(count, NetMessage.maxBlocksPerResponse) {
                guard let header = try store.blockHeader(height: h), let cert = try store.certificate(height: h),
                      let note = try store.checkpoint(height: h) else { break }
                var subs: [Submission] = []
                for index in header.firstLogIndex..<header.logSize {
                    guard let tx = try store.transaction(at: index) else { throw LedgerError(.notFound, "log index \(index) missing") }
                    subs.append(Submission(transaction: tx, envelope: try store.envelope(of: tx.id)))
                }
                let block = CommittedBlock(block: CandidateBlock(header: header, submissions: subs), certificate: cert, checkpoint: note)
                let size = block.encodedSize
                if !list.isEmpty, bytes + size > budget { break }
                if size > room {
                    logger.debug("block \(h) (\(size) bytes) not served to \(peer): its send queue has room for \(room) bytes")
                    break
                }
                if list.isEmpty, size > budget {
                    logger.error("block \(h) takes \(size) bytes encoded, more than a frame (\(maxFrameBytes)); \(peer) cannot fetch it from this node")
                }
                list.append(block)
                bytes += size
                h += 1
            }
        } catch {
            logger.error("cannot serve blocks from \(from) to \(peer): \(error)")
        }
        return list
    }

    /// On `queue`.
    /// `receivedAt`: when a buffered message arrived (its replay comes later); now otherwise.
    func dispatch(_ message: NetMessage, from peer: String, receivedAt: UInt64? = nil) {
        guard !stopped, waitingForSpace == nil else { return }
        let height = machine.height
        switch message {
        case .proposal(let p, let block):
            guard p.round <= TendermintMachine.maxRound else {
                warn(about: peer, "proposal from \(peer) for \(p.proposer) names round \(p.round), above the limit \(TendermintMachine.maxRound); dropped")
                return
            }
            if p.height == height + 1 { buffer(message, from: peer); return }
            guard p.height == height, let proposer = genesis.member(p.proposer), proposer.has(.validator),
                  proposer.signingKey.isValidSignature(p.signature, for: p.signingBytes(chainID: genesis.chainID)) else {
                if p.height == height { warn(about: peer, window: "signature", "proposal from \(peer) for \(p.proposer) does not verify; dropped") }
                return
            }
            // Only the round's proposer may propose (the machine ignores anyone else), and only
            // its block is kept: a validator signing proposals for rounds it does not own cannot
            // fill the bounded block cache and crowd out the real proposer's block.
            guard p.proposer == machine.validators.proposer(height: p.height, round: p.round) else {
                warn(about: peer, "proposal from \(peer) names \(p.proposer) as proposer of round \(p.round), which is not its round; dropped")
                return
            }
            // One block per round, and none for rounds far ahead: a proposer equivocating with
            // many blocks, or proposing for its own future rounds, cannot fill the block cache.
            // A block not kept here is fetched by hash if the machine comes to need it.
            if let block, block.hash == p.blockHash, block.header.height == height, candidates[p.blockHash] == nil,
               p.round <= machine.round &+ Self.blockRoundWindow, !keptRounds.contains(p.round) {
                remember(block, from: peer)
                if unchecked[p.blockHash] != nil { keptRounds.insert(p.round) }
            }
            let now = receivedAt ?? clock()
            // Said once per round, of the copy the machine judges (the first; the proposer sends
            // it again every second, and a later copy's age says nothing), by a validator.
            // Only rounds the machine takes (up to `maxRoundsAhead` ahead) are noted: a validator
            // signing a proposal for every round of its own to Int32.max grew the set without
            // bound until the height committed (found in review, 2026-12-07).
            if p.polRound == -1, isValidator, p.round <= machine.round &+ options.timeouts.maxRoundsAhead,
               lateProposalRounds.insert(p.round).inserted,
               let stamped = (candidates[p.blockHash]?.block ?? unchecked[p.blockHash])?.header.timestampMillis {
                let lag = options.timeouts.proposalLag(round: p.round)
                if now > stamped &+ lag {
                    warn(about: p.proposer, window: "late", "proposal by \(p.proposer) for round \(p.round) holds a new block stamped \((now - stamped) / 1000) s before it reached this node, more than the \(lag / 1000) s allowed; prevoting nil (if proposals of other validators are late here too, this node's clock may be ahead: check it; or this node was stopped or starved for that long, and read proposals that waited meanwhile)")
                }
            }
            handle(.proposal(p, receivedAtMillis: now))
            // The proposal was seen before without usable content (or with a tampered copy):
            // now that the genuine content is here, answer the machine's pending `.validate`.
            if let awaited = awaitingContent[p.blockHash] {
                if unchecked[p.blockHash] != nil {
                    awaitingContent.removeValue(forKey: p.blockHash)
                    validateAndReport(p.blockHash)
                } else if p.round < awaited {
                    awaitingContent[p.blockHash] = p.round   // the same block, proposed again nearer
                }
            }
        case .vote(let v):
            guard v.round <= TendermintMachine.maxRound else {
                warn(about: peer, "\(v.type.name) from \(peer) for \(v.voter) names round \(v.round), above the limit \(TendermintMachine.maxRound); dropped")
                return
            }
            if v.height == height + 1 { buffer(message, from: peer); return }
            if machine.holds(v) { return }
            guard v.height >= height, let voter = genesis.member(v.voter), voter.has(.validator),
                  voter.signingKey.isValidSignature(v.signature, for: v.signingBytes(chainID: genesis.chainID)) else {
                if v.height >= height { warn(about: peer, window: "signature", "vote from \(peer) for \(v.voter) does not verify; dropped") }
                return
            }
            if v.height > height { handle(.vote(v)); return }
            if v.type == .precommit, let hash = v.blockHash {
                guard let block = candidates[hash]?.block ?? unchecked[hash] else {
                    deferPrecommit(v, hash: hash)
                    return
                }
                guard let a = try? PrecommitAttachment.decode(v.attachment), a.verify(header: block.header, round: v.round, member: voter) else {
                    warn(about: peer, window: "signature", "precommit of \(v.voter) (via \(peer)) carries an invalid certificate or checkpoint signature; dropped")
                    return
                }
            } else if !v.attachment.isEmpty {
                return
            }
            handle(.vote(v))
        case .status(let h, _):
            peerHeights[peer] = h
            statusAt[peer] = clock()
            updateDecidedByOthers()
            if h > store.head.height { requestBlocks(from: peer) }
        case .blocks(let list):
            applyCommitted(list, from: peer)
        case .fetchBlock(let hash):
            if let answer = contentAnswer(for: hash, to: peer) { p2p.send(answer, to: peer) }
        case .blockContent(let block):
            let hash = block.hash
            guard awaitingContent[hash] != nil || deferredPrecommits[hash] != nil, block.header.height == height else { return }
            // A copy that does not match its header leaves the hash awaited: the fetch is
            // repeated every status tick until the genuine content arrives.
            // Content the machine is waiting for is kept even when the cache is full, if its
            // round is near; content not kept stays awaited, and is fetched again.
            let needed = awaitingContent[hash].map { withinBlockWindow($0) } ?? false
            guard remember(block, from: peer, awaited: needed), unchecked[hash] != nil || candidates[hash] != nil else { return }
            awaitingContent.removeValue(forKey: hash)
            if candidates[hash] != nil || unchecked[hash] != nil { validateAndReport(hash) }
        case .transactions, .blockRequest, .endorseRequest, .endorsement:
            break
        }
    }

    /// The `block_content` answer to a peer's `fetch_block`, unless the block is unknown or the
    /// peer was answered for it within the last second, or for `contentServedPerSecond` others.
    func contentAnswer(for hash: Hash, to peer: String, nowNanos: UInt64 = DispatchTime.now().uptimeNanoseconds) -> [UInt8]? {
        guard let block = candidates[hash]?.block ?? unchecked[hash] else { return nil }
        let second: UInt64 = 1_000_000_000
        var served = (contentServed[peer] ?? [:]).filter { nowNanos < $0.value &+ second }
        defer { contentServed[peer] = served }
        guard served[HashKey(hash)] == nil, served.count < Self.contentServedPerSecond else { return nil }
        served[HashKey(hash)] = nowNanos
        return NetMessage.blockContent(block).encoded
    }

    /// Keeps a message for the next height until this node gets there. Only a message signed by
    /// a genesis validator is kept, one per (kind, signer, round), at most `maxFuture` in all
    /// and a fair share of them per validator, with proposed blocks within `maxFutureBytes`.
    func buffer(_ m: NetMessage, from peer: String) {
        let key: String, signer: Member?, signature: [UInt8], signed: [UInt8]
        switch m {
        case .proposal(let p, _):
            key = "proposal/\(p.proposer)/\(p.round)"
            signer = genesis.member(p.proposer); signature = p.signature; signed = p.signingBytes(chainID: genesis.chainID)
        case .vote(let v):
            key = "\(v.type.name)/\(v.voter)/\(v.round)"
            signer = genesis.member(v.voter); signature = v.signature; signed = v.signingBytes(chainID: genesis.chainID)
        default:
            return
        }
        let share = max(1, Self.maxFuture / max(1, genesis.validators.count))
        guard future.count < Self.maxFuture, !futureKeys.contains(key) else { return }
        guard let signer, signer.has(.validator), signer.signingKey.isValidSignature(signature, for: signed) else {
            warn(about: peer, "message from \(peer) for the next height (\(key)) is not signed by that validator; dropped")
            return
        }
        guard futurePerSigner[signer.id, default: 0] < share else { return }
        var kept = m
        if case .proposal(let p, let block?) = m {
            let size = block.encodedSize
            if block.hash == p.blockHash, futureBytes + size <= maxFutureBytes { futureBytes += size } else { kept = .proposal(p, nil) }
        }
        futureKeys.insert(key)
        futurePerSigner[signer.id, default: 0] += 1
        future.append((peer, kept, clock()))
    }

    /// Keeps a precommit for a block this node does not hold yet, and fetches the block. At most
    /// `maxDeferred` in all and a fair share per voter, so one validator precommitting many
    /// unknown hashes cannot crowd out the others' precommits.
    func deferPrecommit(_ v: Vote, hash: Hash) {
        // Votes are rebroadcast every second: one copy per voter and round is kept (a copy whose
        // attachment a relay altered fails when replayed, and the voter's own resend follows).
        if deferredPrecommits[hash]?.contains(where: { $0.voter == v.voter && $0.round == v.round }) == true { return }
        let total = deferredPrecommits.values.reduce(0) { $0 + $1.count }
        guard total < Self.maxDeferred else { return }
        let share = max(1, Self.maxDeferred / max(1, genesis.validators.count))
        let mine = deferredPrecommits.values.reduce(0) { n, list in n + list.count { $0.voter == v.voter } }
        guard mine < share else { return }
        if deferredPrecommits[hash] == nil { p2p.broadcast(NetMessage.fetchBlock(hash).encoded) }
        deferredPrecommits[hash, default: []].append(v)
    }

    /// Keeps a proposed block's content (bounded); it is checked when the machine asks.
    /// Content that does not match its header (`contentMismatch`) is dropped without any
    /// verdict on the block: the header hash, which proposals and votes sign, does not cover the
    /// transactions and envelopes, so any member relaying a genuine proposal could alter them.
    /// Returns false for such content.
    @discardableResult
    func remember(_ block: CandidateBlock, from peer: String, awaited: Bool = false) -> Bool {
        if let problem = Self.contentMismatch(block) {
            warn(about: peer, "block \(block.header.height) \(block.hash.hexString.prefix(16)) from \(peer) does not match its header: \(problem); "
                 + "content dropped, the block is not judged and its genuine content is still fetched")
            return false
        }
        guard awaited || unchecked.count + candidates.count < Self.maxCandidates else { return true }
        if unchecked[block.hash] == nil { unchecked[block.hash] = block }
        if let votes = deferredPrecommits.removeValue(forKey: block.hash) {
            for v in votes { dispatch(.vote(v), from: v.voter) }
        }
        return true
    }

    /// Why a block's content is not the content its header commits to, or nil when it is: the
    /// transaction count and the transactions root (over the transaction ids, which hash the
    /// whole signed transaction) must match the header, and every envelope must hash to the
    /// `envelope_hash` its transaction names (a transaction that names none carries none).
    /// `envelopesMayBeShredded`: a certified block from catch-up may lack envelopes erased since.
    static func contentMismatch(_ block: CandidateBlock, envelopesMayBeShredded: Bool = false) -> String? {
        let header = block.header
        guard block.submissions.count == Int(header.transactionCount) else {
            return "it carries \(block.submissions.count) transactions, its header counts \(header.transactionCount)"
        }
        let tree = InMemoryMerkleTree(leafHashes: block.submissions.map(\.transaction.id))
        guard tree.root == header.transactionsRoot else { return "its transactions do not hash to the header's transactions root" }
        for (i, s) in block.submissions.enumerated() {
            if let record = s.transaction.body.envelopedRecord {
                if let envelope = s.envelope {
                    guard envelope.hash == record.envelopeHash else { return "the envelope of transaction \(i) does not match its envelope_hash" }
                } else if !envelopesMayBeShredded {
                    return "transaction \(i) lacks its payload envelope"
                }
            } else if s.envelope != nil {
                return "transaction \(i) carries an envelope although it names none"
            }
        }
        return nil
    }

    /// Logs a problem with a peer's message: a warning at most every `peerWarningInterval` per
    /// peer, the debug level in between (a faulty peer cannot flood the log). Warnings of another
    /// `window` (messages that do not decode) keep an interval of their own. Any thread.
    func warn(about peer: String, window: String = "", _ message: @autoclosure () -> String) {
        let now = ContinuousClock.now
        let key = window.isEmpty ? peer : peer + "/" + window
        let loud = peerWarnings.withLock { last -> Bool in
            if let t = last[key], now - t < Self.peerWarningInterval { return false }
            last[key] = now
            return true
        }
        logger.log(level: loud ? .warning : .debug, "\(message())")
    }

    // MARK: Consensus actions

    func handle(_ event: ConsensusEvent) {
        guard waitingForSpace == nil else { return }
        let round = machine.round
        let forgotBefore = machine.forgotOwnVotes
        perform(machine.handle(event))
        if forgotBefore == nil, let at = machine.forgotOwnVotes {
            let found: String
            switch event {
            case .committedElsewhere(let h, _, _): found = "block \(h), caught up from a peer, holds a precommit"
            case .proposal: found = "a peer relayed a proposal at height \(at)"
            default: found = "a peer relayed a vote at height \(at)"
            }
            let cause = options.freshDataDirectory
                ? "\(member.id)'s data directory was created new at this start, so this member's node ran before with another one: is data_dir in its config a typo, or relative to a symlinked config's directory? Stop it and point data_dir at its own store (or, if that store is lost, let it catch up: it is doing so now). Or another node signs with its key"
                : "\(member.id)'s data directory is older than votes it signed (restored from a copy?), or another node signs with its key"
            logger.critical("\(found) of this validator's which its consensus state does not remember: \(cause). It signs nothing until height \(machine.signsAgainFrom.map(String.init) ?? "-") (moved on past every block it catches up), so it cannot sign twice where it may already have voted; if it was needed for a quorum, the chain waits for another validator")
        }
        if machine.round > round, !awaitingContent.isEmpty {
            // Blocks awaited for rounds that have now come near are fetched at once.
            for (hash, r) in awaitingContent where !withinBlockWindow(r, from: round) && withinBlockWindow(r) {
                p2p.broadcast(NetMessage.fetchBlock(hash).encoded)
            }
        }
        // A quiet round ends in `waiting` (Tendermint.swift); with transactions pending, the next round starts now.
        if case .timeout = event, machine.step == .waiting, !mempool.isEmpty, waitingForSpace == nil { perform(machine.handle(.transactionsAvailable)) }
    }

    /// Saves the machine's safety state (a test replaces it to fail).
    lazy var saveState: (SafetyState) throws -> Void = { [unowned self] state in
        try wal.save(state) { self.candidates[$0]?.block ?? self.unchecked[$0] }
    }

    /// `carried`: events from actions already carried out before a pause for space.
    func perform(_ actions: [ConsensusAction], carried: [ConsensusEvent] = []) {
        var pending = carried
        for (i, action) in actions.enumerated() {
            switch action {
            case .persist(let state):
                do {
                    try saveState(state)
                    // The save a pause for space held back (`performAfterWaitingForSpace`) ends it.
                    if waitingForSpace != nil { endWaitingForSpace("saved the consensus state", "consensus resumes") }
                } catch let e as StorageError where e.code == .noSpace {
                    // Nothing this state covers was sent (the sends come after it): the rest of
                    // the actions wait, in order, and the node takes no event meanwhile. A disk
                    // filled at once (past the store's reserve) stopped the node (found by
                    // black-box testing, 2026-12-07).
                    let rest = Array(actions[i...]), held = pending
                    waitForSpace(height: machine.height, e, what: "the consensus state (this validator's votes at height \(machine.height))") { [weak self] in
                        self?.performAfterWaitingForSpace(rest, carried: held)
                    }
                    return
                } catch {
                    fatal("cannot persist consensus state: \(error)")
                }
            case .broadcastProposal(let p):
                p2p.broadcast(proposalMessage(p).encoded)
            case .broadcastVote(let v):
                p2p.broadcast(NetMessage.vote(v).encoded)
            case .schedule(let t, let requested):
                let after = Self.wait(for: t, requested: requested, proposerAbsent: proposerAbsent(height: t.height, round: t.round))
                queue.asyncAfter(deadline: .now() + .milliseconds(Int(after))) { [weak self] in
                    guard let self, !self.stopped else { return }
                    self.handle(.timeout(t))
                }
            case .validate(let h, let r, let hash):
                if candidates[hash] != nil || unchecked[hash] != nil {
                    if let e = validationEvent(hash, height: h) { pending.append(e) }
                } else {
                    let round = min(r, awaitingContent[hash] ?? r)
                    awaitingContent[hash] = round
                    if withinBlockWindow(round) { p2p.broadcast(NetMessage.fetchBlock(hash).encoded) }
                }
            case .buildProposal(let h, let r):
                buildWanted = (h, r)
                if let e = build() { pending.append(e) }
            case .commit(let h, let r, let hash, let precommits):
                commit(height: h, round: r, hash: hash, precommits: precommits)
                // A block waiting for space: what follows (the next height's start) is dropped;
                // once it is written the machine is started again (`commit`).
                if waitingForSpace != nil { return }
            case .catchUp:
                if let peer = bestPeerAhead { requestBlocks(from: peer) } else { p2p.broadcast(statusMessage) }
            case .evidence(let e):
                record(e)
            }
        }
        for e in pending { handle(e) }
    }

    /// The message for this node's proposal `p`: with its block the first time, without it after.
    func proposalMessage(_ p: Proposal) -> NetMessage {
        let first = p.height == machine.height && proposalRoundsSentWithBlock.insert(p.round).inserted
        return .proposal(p, first ? candidates[p.blockHash]?.block : nil)
    }

    func validationEvent(_ hash: Hash, height: UInt64) -> ConsensusEvent? {
        if let known = candidates[hash] {
            return .validated(height: height, blockHash: hash, valid: true, timestampMillis: known.block.header.timestampMillis)
        }
        guard let block = unchecked.removeValue(forKey: hash) else { return nil }
        do {
            let built = try check(block)
            candidates[hash] = (block, built)
            return .validated(height: height, blockHash: hash, valid: true, timestampMillis: block.header.timestampMillis)
        } catch let failed as StorageError {
            // A read that failed here says nothing of the block, and the machine keeps a verdict
            // for the whole height: no verdict, and the block is checked again in a second. It
            // was judged invalid, so a disk error made the node prevote nil for the height
            // (found in review, 2026-12-06).
            logger.error("cannot check proposed block \(block.header.height) \(hash.hexString.prefix(16)): \(failed); checked again in 1 s")
            checkAgain(block, hash, height: height, afterMillis: 1_000)
            return nil
        } catch let ahead as TimestampAhead {
            // The state machine keeps a verdict for the whole height, and validity must not
            // depend on when a node looked: a proposer that times a block so that some nodes
            // see it too early must not split them for good. No verdict yet; check again when
            // the clock has caught up (at most every 10 s for a block far ahead).
            logger.notice("proposed block \(block.header.height) \(hash.hexString.prefix(16)) by \(block.header.proposer): \(ahead); checked again then")
            // Why, said once a while as a warning: a notice per proposal was all an operator saw
            // while a network whose clocks had been set back stood still for a minute, or while
            // a validator whose clock was behind prevoted nil on every block (found by
            // black-box testing, 2026-12-07).
            warn(about: block.header.proposer, window: "ahead", "proposed block \(block.header.height) by \(block.header.proposer) is stamped beyond the \(options.maxClockSkewMillis / 1000) s this node allows ahead of its clock; \(timestampAheadCause(proposer: block.header.proposer))")
            checkAgain(block, hash, height: height, afterMillis: min(ahead.millis + 1, Self.maxRecheckMillis))
            return nil
        } catch {
            logger.warning("proposed block \(block.header.height) \(hash.hexString.prefix(16)) by \(block.header.proposer) is invalid: \(error)")
            return .validated(height: height, blockHash: hash, valid: false)
        }
    }

    /// Why a proposal is stamped ahead of this node's clock: the head block itself (no block may
    /// be stamped before it), or the proposer's clock or this node's.
    func timestampAheadCause(proposer: String) -> String {
        if let ahead = headAheadOfClockMillis {
            return "the head block \(store.head.height) is stamped \(ahead / 1000) s ahead of this node's clock, and no block may be stamped before it: nothing commits until "
                + "the clocks pass it (clocks set back after blocks were stamped by clocks that were ahead, or this node's clock is behind)"
        }
        return "\(proposer)'s clock may be ahead, or this node's behind: if proposals of other validators are held back here too, check this node's clock"
    }

    /// How far the head block's timestamp is ahead of this node's clock, when beyond the allowed skew.
    var headAheadOfClockMillis: UInt64? {
        let now = clock()
        guard let stamp = (try? store.blockHeader(height: store.head.height))??.timestampMillis, stamp > now + options.maxClockSkewMillis else { return nil }
        return stamp - now
    }

    /// Keeps a proposed block that got no verdict and checks it again after `afterMillis`, if the
    /// machine is still at its height and nothing has decided it meanwhile.
    func checkAgain(_ block: CandidateBlock, _ hash: Hash, height: UInt64, afterMillis: UInt64) {
        unchecked[hash] = block
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(afterMillis))) { [weak self] in
            guard let self, !self.stopped, self.machine.height == height, self.unchecked[hash] != nil else { return }
            self.validateAndReport(hash)
        }
    }

    /// A precommit restored from a safety state written by an earlier version carries an
    /// attachment signed under the commit statement that did not name the round: peers would drop
    /// it, and a certificate holding it would not verify. The vote stands (its signature does not
    /// cover the attachment); the attachment is made again for the vote's own round and block,
    /// which is what this version signs with such a precommit.
    static func refreshingPrecommitAttachment(_ state: SafetyState, blocks: [Hash: CandidateBlock], member: Member,
                                              key: Ed25519PrivateKey) -> SafetyState {
        guard let v = state.precommit, let hash = v.blockHash, let block = blocks[hash], v.voter == member.id else { return state }
        if let a = try? PrecommitAttachment.decode(v.attachment), a.verify(header: block.header, round: v.round, member: member) { return state }
        var refreshed = state
        refreshed.precommit = Vote(type: v.type, height: v.height, round: v.round, blockHash: hash, voter: v.voter, signature: v.signature,
                                   attachment: PrecommitAttachment.make(header: block.header, round: v.round, key: key).encoded)
        return refreshed
    }

    /// The longest wait before a block whose timestamp was ahead of the clock is checked again.
    static let maxRecheckMillis: UInt64 = 10_000

    func validateAndReport(_ hash: Hash) {
        if let e = validationEvent(hash, height: machine.height) { handle(e) }
    }

    /// Checks a block against the head: links, limits, every transaction, and the header
    /// recomputed from the transactions. Transactions already in the mempool with the same
    /// envelope were fully checked on admission; their signatures are not checked again.
    /// `certified`: the block carries a verified quorum certificate (catch-up), so a record whose
    /// envelope was erased since (crypto-shredding) is accepted without it.
    func check(_ block: CandidateBlock, certified: Bool = false) throws -> BlockBuilder.Result {
        let head = store.head
        let header = block.header
        guard header.chainID == genesis.chainID else { throw LedgerError(.wrongChain, "block names chain \(header.chainID)") }
        guard header.height == head.height + 1, header.previousHash == head.blockHash else {
            throw LedgerError(.invalidBlock, "block \(header.height) does not extend head \(head.height)")
        }
        guard genesis.member(header.proposer)?.has(.validator) == true else {
            throw LedgerError(.invalidBlock, "block proposer \(header.proposer) is not a validator")
        }
        guard !block.submissions.isEmpty, block.submissions.count <= genesis.limits.maxBlockTransactions else {
            throw LedgerError(.invalidBlock, "block holds \(block.submissions.count) transactions (1-\(genesis.limits.maxBlockTransactions))")
        }
        if head.height > 0, let previous = try store.blockHeader(height: head.height), header.timestampMillis < previous.timestampMillis {
            throw LedgerError(.invalidBlock, "block timestamp goes backwards")
        }
        // The one rule that depends on when it is checked. Failing it is not a verdict: the
        // block is checked again once the clock catches up (`validationEvent`). A certified
        // block's timestamp was accepted by the quorum that certified it.
        let now = clock()
        if !certified, header.timestampMillis > now + options.maxClockSkewMillis {
            throw TimestampAhead(millis: header.timestampMillis - now - options.maxClockSkewMillis)
        }
        var ids = Set<HashKey>(minimumCapacity: block.submissions.count)
        var nonces = Set<NonceKey>(minimumCapacity: block.submissions.count)
        var claims = BlockClaims(certified: certified)
        var notSeen: [Int] = []
        for (i, s) in block.submissions.enumerated() {
            let tx = s.transaction
            guard ids.insert(HashKey(tx.id)).inserted, nonces.insert(NonceKey(tx.header)).inserted else {
                throw LedgerError(.replay, "transaction \(i) repeats a transaction or nonce of the same block")
            }
            let record = certified ? nil : try validator.amendedRecord(of: tx, state: store)
            if let claim = claims.conflict(tx, record: record) {
                throw LedgerError(.replay, "transaction \(i) claims \(claim), which another transaction of the same block claims")
            }
            claims.take(tx, record: record)
            if !verified.contains(s) { notSeen.append(i) }
            do {
                try beforeCheckingTransaction()
                try validator.checkStateful(tx, state: store, certified: certified)
            } catch let failed as StorageError {
                // A read that failed says nothing of the transaction: passed on as it is, so that
                // the caller gives no verdict (it was wrapped, and the block judged invalid).
                throw failed
            } catch { throw BatchError(index: i, error: error) }
        }
        // Signatures and envelopes of transactions this node has not seen yet, on every core.
        if !notSeen.isEmpty {
            let toVerify = notSeen
            let failures = Mutex<[(Int, any Error)]>([])
            let chunks = min(toVerify.count, ProcessInfo.processInfo.activeProcessorCount * 2)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                var k = c
                while k < toVerify.count {
                    let i = toVerify[k]
                    do {
                        if certified { try validator.checkStateless(block.submissions[i], envelopeMayBeShredded: true) }
                        else { try checkStateless(block.submissions[i]) }
                    } catch { failures.withLock { $0.append((i, error)) } }
                    k += chunks
                }
            }
            if let (i, error) = failures.withLock({ $0.min { $0.0 < $1.0 } }) { throw BatchError(index: i, error: error) }
        }
        let built = BlockBuilder.build(chainID: genesis.chainID, height: header.height, timestampMillis: header.timestampMillis,
                                       previousHash: head.blockHash, frontier: store.frontier,
                                       transactions: block.submissions.map(\.transaction), proposer: header.proposer)
        guard built.header == header else {
            throw LedgerError(.invalidBlock, "block header does not match its transactions (roots or counts differ)")
        }
        return built
    }

    func transactionsArrived() {
        guard !stopped, waitingForSpace == nil else { return }
        if machine.step == .waiting && !mempool.isEmpty { handle(.transactionsAvailable) }
        if let e = build() { handle(e) }
    }

    /// Answers a pending `.buildProposal` once the mempool holds transactions.
    func build() -> ConsensusEvent? {
        guard let (h, r) = buildWanted, machine.awaitingBuild.map({ $0 == (h, r) }) == true, h == store.head.height + 1 else {
            return nil
        }
        var picked: [Submission] = []
        var stale: [HashKey: any Error] = [:]
        var claims = BlockClaims()
        for s in mempool.oldest(genesis.limits.maxBlockTransactions, maxBytes: maxBlockContentBytes, overheadPerItem: NetMessage.submissionOverhead) {
            switch Self.check(pending: s.transaction, validator: validator, state: store, forBlock: true) {
            case .valid: break
            case .waits: continue
            case .unreadable(let e):
                logger.error("cannot check pending transaction \(s.transaction.id.hexString.prefix(16))… against the store: \(e); it waits")
                continue
            case .stale(let why):
                stale[HashKey(s.transaction.id)] = why
                continue
            }
            // One record per request, one install per name and version, no record corrected and
            // erased together: a conflicting claim waits for a later block, whose check against
            // the committed ledger then drops it if the first made it stale (a second answer to
            // one request) and keeps it if not (a correction after an erasure).
            // An amendment whose record cannot be read now waits, as an unreadable check does.
            let record: Hash?
            do { record = try validator.amendedRecord(of: s.transaction, state: store) } catch { continue }
            if claims.conflict(s.transaction, record: record) != nil { continue }
            claims.take(s.transaction, record: record)
            picked.append(s)
        }
        if !stale.isEmpty {
            // With its own reason: all were reported as a replay, which a client takes for "sent
            // before" (found in review).
            mempool.evict { s in
                stale[HashKey(s.transaction.id)].map { LedgerError((($0 as? LedgerError)?.code) ?? .invalidValue,
                                                                   "no longer valid against the committed ledger: \(($0 as? LedgerError)?.reason ?? "\($0)")") }
            }
        }
        guard !picked.isEmpty else { return nil }
        let head = store.head
        let previous: BlockHeader?
        do { previous = head.height > 0 ? try store.blockHeader(height: head.height) : nil } catch {
            // Without the last block's time the proposal could go back in time, which peers refuse:
            // none now; the next trigger builds again.
            logger.error("cannot read block \(head.height) to time a proposal after it: \(error); not proposing yet")
            return nil
        }
        buildWanted = nil
        let built = BlockBuilder.build(chainID: genesis.chainID, height: h, timestampMillis: max(clock(), previous?.timestampMillis ?? 0),
                                       previousHash: head.blockHash, frontier: store.frontier,
                                       transactions: picked.map(\.transaction), proposer: member.id)
        let block = CandidateBlock(header: built.header, submissions: picked)
        candidates[block.hash] = (block, built)
        return .built(height: h, round: r, blockHash: block.hash)
    }

    /// Stores the block the machine decided with `precommits`, a quorum of round `round`'s: the
    /// certificate and the checkpoint carry that round, which every signature in them names.
    func commit(height: UInt64, round: UInt32, hash: Hash, precommits: [Vote]) {
        guard let (block, built) = candidates[hash] else {
            fatal("decided block \(height) \(hash.hexString) is not held")
            return
        }
        var signatures: [MemberSignature] = []
        let text = Checkpoint(header: built.header, round: round).text
        var notes: [SignedNote.Signature] = []
        for v in precommits where v.round == round {
            guard let m = genesis.member(v.voter), let a = try? PrecommitAttachment.decode(v.attachment) else { continue }
            signatures.append(MemberSignature(member: m.id, keyID: m.keyID, signature: a.commitSignature))
            notes.append(SignedNote.Signature(name: m.id, keyID: m.keyID, signature: a.checkpointSignature))
        }
        let note = SignedNote(text: text, signatures: notes)
        let certificate = CommitCertificate(height: height, round: round, blockHash: hash, signatures: signatures)
        do {
            try writeBlock(built, certificate, block.submissions, note.serialized)
        } catch let e as StorageError where e.code == .noSpace {
            waitForSpace(height: height, e) { [weak self] in self?.commit(height: height, round: round, hash: hash, precommits: precommits) }
            return
        } catch {
            fatal("cannot write block \(height): \(error)")
            return
        }
        let waited = endWaitingForSpace("wrote block \(height)", "consensus resumes (the node catches up with what the others committed meanwhile)")
        adoptDeferredBlocks()
        afterCommit(block)
        // The timeouts that fired during the pause were dropped: re-armed, as at a start (the
        // machine's own messages of the height sent again, a proposal built if it is its turn).
        if waited, waitingForSpace == nil { perform(machine.start()) }
        logger.debug("committed block \(height) (\(block.submissions.count) transactions), log size \(built.header.logSize)")
    }

    func afterCommit(_ block: CandidateBlock) {
        forgetCommittedHeight(block)
        resumeAfterCommit()
    }

    /// A decided block that cannot be written for lack of space (nothing was written) waits:
    /// the node pauses consensus, says why in its log and health, and runs `retry` every
    /// `spaceRetryInterval` until the write succeeds. The other validators go on without it; it
    /// catches up once the block is written. A failure of any other kind stops the node.
    func waitForSpace(height: UInt64, _ error: StorageError, what: String? = nil, retry: @escaping @Sendable () -> Void) {
        let first = waitingForSpace == nil
        if first { waitingForSpace = (height, ContinuousClock.now) }
        let reason = "cannot write \(what ?? "block \(height)"): \(error.reason); consensus is paused on this node until it can be written (tried again every \(Self.describe(spaceRetryInterval)))"
        publishedWriteFailure.withLock { $0 = reason }
        if first { logger.error("\(reason)") } else { logger.debug("\(reason)") }
        queue.asyncAfter(deadline: .now() + spaceRetryInterval) { [weak self] in
            guard let self, !self.stopped else { return }
            retry()
        }
    }

    public var writeFailureReason: String? { publishedWriteFailure.withLock { $0 } }

    /// Carries out the actions a failed save of the safety state held back, from that save on,
    /// once it succeeds; until then it waits again.
    func performAfterWaitingForSpace(_ actions: [ConsensusAction], carried: [ConsensusEvent]) {
        guard waitingForSpace != nil else { return }
        // The first action is the save: `perform` ends the pause once it succeeds, or waits again.
        perform(actions, carried: carried)
        // Timeouts that fired meanwhile were dropped: re-armed, as at a start.
        if waitingForSpace == nil, !stopped { perform(machine.start()) }
    }

    /// Ends a pause for space, if one is under way: health clears, and the log says what was
    /// done (`done`) after how long and what comes next. True when a pause ended.
    @discardableResult
    func endWaitingForSpace(_ done: String, _ next: String) -> Bool {
        guard let waited = waitingForSpace else { return false }
        waitingForSpace = nil
        publishedWriteFailure.withLock { $0 = nil }
        logger.notice("\(done) after waiting \(Int((ContinuousClock.now - waited.since).components.seconds)) s for disk space; \(next)")
        return true
    }

    static func describe(_ interval: DispatchTimeInterval) -> String {
        switch interval {
        case .seconds(let s): return "\(s) s"
        case .milliseconds(let ms): return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
        default: return "\(interval)"
        }
    }

    /// After a block from catch-up could not be written for lack of space: once a block's worth
    /// of space (the largest block's content) is free, catch-up goes on; until then it waits.
    func resumeAfterWaitingForSpace() {
        guard let waited = waitingForSpace else { return }
        if let problem = store.database.spaceProblem(forWriting: UInt64(maxBlockContentBytes)) {
            waitForSpace(height: waited.height, problem) { [weak self] in self?.resumeAfterWaitingForSpace() }
            return
        }
        endWaitingForSpace("disk space is free again", "catching up from height \(waited.height)")
    }

    /// Answers the block's submitters and drops what was held for the height it decides.
    func forgetCommittedHeight(_ block: CandidateBlock) {
        mempool.committed(block.submissions.map(\.transaction), height: block.header.height, firstLogIndex: block.header.firstLogIndex)
        purger.committed(block.submissions)
        autoScorer?.committed(block)
        candidates = candidates.filter { $0.value.block.header.height > block.header.height }
        unchecked = [:]
        keptRounds = []
        lateProposalRounds = []
        proposalRoundsSentWithBlock = []
        awaitingContent = [:]
        deferredPrecommits = [:]
        reported = reported.filter { $0.key > block.header.height }
        buildWanted = nil
    }

    /// Tells the machine the highest height f+1 validators report having committed
    /// (`TendermintMachine.decidedByOthersThrough`).
    func updateDecidedByOthers() {
        machine.decidedByOthersThrough = heightReportedByHonest
    }

    /// How long a round waits for a proposal, and after its precommits, when its proposer is
    /// known not to take part (`proposerAbsent`), instead of the machine's 1 s and 0.5 s.
    static let absentProposerWaitMillis: UInt64 = 200
    /// A validator reporting a head this far below the height being decided is catching up, and
    /// neither proposes nor votes until it is done.
    static let catchingUpBehind: UInt64 = 64

    /// The time to wait for `t`. Timeouts decide only when a round gives up, never what is
    /// committed (docs/CONSENSUS.md), so a round whose proposer cannot propose gives up sooner:
    /// its propose wait and its precommit wait (a round with no proposal ends in nil
    /// precommits) are cut to `absentProposerWaitMillis`. With one of four validators down, or
    /// catching up, every fourth height waited 1.5 s for it: the network committed about
    /// 2 blocks/s while a replacement validator caught up 8,000 blocks (found by black-box
    /// testing, 2026-12-07), and one validator down put p99 near 1 s.
    /// `proposerAbsent` is asked only for those two steps: prevotes and rebroadcasts, scheduled
    /// far more often, take no P2P lock for it.
    static func wait(for t: Timeout, requested: UInt64, proposerAbsent: @autoclosure () -> Bool) -> UInt64 {
        guard t.step == .propose || t.step == .precommit, proposerAbsent() else { return requested }
        return min(requested, absentProposerWaitMillis)
    }

    /// Whether the proposer of (height, round) is another validator that is absent as `absent`
    /// says: no session, a silent session, or far behind. It is this node's own view: a wrong
    /// answer costs one round, as a lost proposal would. A peer's height is its own report over
    /// its authenticated session, so only the peer itself can make it look behind.
    func proposerAbsent(height: UInt64, round: UInt32) -> Bool {
        let proposer = machine.validators.proposer(height: height, round: round)
        guard proposer != member.id, let p2p else { return false }
        let silence = p2p.silence(of: proposer).map { UInt64(max(0, $0.nanoseconds) / 1_000_000) }
        let since = disconnectedSince[proposer] ?? startedAtMillis, now = clock()
        return Self.absent(connected: silence != nil, disconnectedForMillis: silence != nil || now < since ? 0 : now - since,
                           silentForMillis: silence ?? 0, reported: peerHeights[proposer], height: height,
                           statusIntervalMillis: options.statusIntervalMillis)
    }

    /// A peer with a session that has sent nothing for this many status intervals (it sends a
    /// status every interval) is hung: a stopped process keeps its session until the idle
    /// timeout (20 s), and each of its heights waited 1.5 s until then (found by black-box
    /// testing, 2026-12-07: 2.3 blocks/s for 20 s after `kill -STOP` of one of four).
    static let hungAfterStatusIntervals: UInt64 = 3

    /// Another validator is absent from `height` when there has been no session with it for a
    /// status interval, when its session has been silent for `hungAfterStatusIntervals`, or
    /// when the head it last reported is `catchingUpBehind` or more below (not yet reported:
    /// present). A network committing more than `catchingUpBehind` blocks per status interval
    /// could make an up-to-date proposer look behind; that costs its round.
    static func absent(connected: Bool, disconnectedForMillis: UInt64, silentForMillis: UInt64 = 0, reported: UInt64?, height: UInt64,
                       statusIntervalMillis: UInt64) -> Bool {
        guard connected else { return disconnectedForMillis >= statusIntervalMillis }
        if silentForMillis >= hungAfterStatusIntervals * max(statusIntervalMillis, 1) { return true }
        guard let reported else { return false }
        return reported &+ catchingUpBehind <= height
    }

    /// The highest height f+1 validator peers report having committed, so at least one honest
    /// validator has: 0 until that many report. One member's claim alone (a follower's, or a
    /// Byzantine validator's height of 2^63) moves nothing (found in review: it set `behind_by`
    /// on every node, and with it health's warning and the queries a node turns away).
    var heightReportedByHonest: UInt64 {
        let heights = peerHeights.filter { entry in genesis.validators.contains { $0.id == entry.key } }.values.sorted(by: >)
        let needed = genesis.validators.count - genesis.quorum + 1
        return heights.count >= needed ? heights[needed - 1] : 0
    }

    /// Once the machine is at the next height: the messages held for it, and the mempool.
    func resumeAfterCommit() {
        let replay = future
        future = []
        futureKeys = []
        futureBytes = 0
        futurePerSigner = [:]
        for (peer, m, at) in replay { dispatch(m, from: peer, receivedAt: at) }
        if machine.step == .waiting && !mempool.isEmpty { handle(.transactionsAvailable) }
        reportStall()
    }

    /// Milliseconds the current height has gone uncommitted with work pending; 0 when idle or moving.
    var uncommittedForMillis: UInt64 {
        let now = elapsedMillis(), head = store.head.height
        // Counted from the first look (progress.millis 0): the first status after a start with
        // work pending at height 0 counted from the clock's zero.
        if progress.millis == 0 || head != progress.height || (machine.step == .waiting && mempool.isEmpty) {
            progress = (head, now)
            return 0
        }
        return now > progress.millis ? now - progress.millis : 0
    }

    func reportStall() {
        let stalled = uncommittedForMillis, now = elapsedMillis()
        publishedStallMillis.store(stalled, ordering: .relaxed)
        publishedPeers.store(genesis.members.count > 1 ? p2p?.connectedPeers.count ?? 0 : -1, ordering: .relaxed)
        let reported = heightReportedByHonest, head = store.head.height
        publishedBehind.store(reported == 0 ? .max : reported > head ? reported - head : 0, ordering: .relaxed)
        guard stalled >= Self.stallMillis, now >= lastStallWarningMillis + 3 * Self.stallMillis else { return }
        lastStallWarningMillis = now
        let connected = Set(p2p?.connectedPeers ?? [])
        let reachable = genesis.validators.filter { $0.id == member.id || connected.contains($0.id) }
        let quorum = genesis.quorum
        var consequence = reachable.count < quorum ? ": nothing commits until more validators are up and connected" : ""
        if let ahead = headAheadOfClockMillis {
            consequence += "; the head block is stamped \(ahead / 1000) s ahead of this node's clock, and no block may be stamped before it: nothing commits until the clocks pass it"
        }
        logger.warning("no block committed for \(stalled / 1000) s (height \(store.head.height + 1), round \(machine.round), step \(machine.step), \(mempool.count) transactions waiting); \(reachable.count) of \(genesis.validators.count) validators reachable from here (\(reachable.map(\.id).sorted().joined(separator: ", "))), a quorum is \(quorum)\(consequence)")
    }

    // MARK: Catch-up

    func statusTick() {
        // Ticks far apart mean this node did not run, not that the network stalled: after a
        // `kill -STOP` of 40 s it warned "no block committed for 40 s … 4 of 4 validators
        // reachable" (found by black-box testing, 2026-12-07).
        // Measured on the monotonic clock, which runs on while the process is stopped; taken
        // before the checks below, so a pause for disk space is not taken for one.
        let tick = DispatchTime.now().uptimeNanoseconds / 1_000_000, interval = options.statusIntervalMillis
        let previousTick = lastTickMillis
        lastTickMillis = tick
        guard !stopped, waitingForSpace == nil, let p2p else { return }
        if previousTick > 0, tick > previousTick + 5 * max(interval, 1) {
            logger.notice("this node did not run for \((tick - previousTick) / 1000) s (its process was stopped, starved of CPU, or busy applying blocks); it catches up from its peers")
            progress = (store.head.height, elapsedMillis())
        }
        _ = consensusStatus()
        p2p.broadcast(statusMessage)
        if let peer = bestPeerAhead { requestBlocks(from: peer) }
        // Also while a peer claims to be ahead: a member claiming a height it never reaches (and
        // serving blocks without their envelopes) would otherwise keep this node from ever asking
        // the others for the envelopes it lacks.
        requestMissingEnvelopes()
        for (hash, round) in awaitingContent where withinBlockWindow(round) { p2p.broadcast(NetMessage.fetchBlock(hash).encoded) }
        autoScorer?.tick()
        // A follower sweeps whatever it holds (the oldest `sweepMax` each tick): it never builds
        // a block, so nothing else drops them, and a follower that held more than `sweepMax`
        // stale ones kept them for good (found in review, 2026-12-07).
        if mempool.count <= Self.sweepMax || !isValidator { sweepMempool() }
        // A follower never proposes: what was submitted to it reaches validators by gossip only,
        // which a full mempool or a broken link may have lost. It sends its pending ones again.
        if !isValidator, !mempool.isEmpty { gossip(mempool.oldest(Self.sweepMax, maxBytes: maxBlockContentBytes)) }
        if machine.step == .waiting && !mempool.isEmpty { handle(.transactionsAvailable) }
        // A stalled height is reported from here: a commit would also report it, but nothing
        // commits while a quorum is missing (the warning never came; found by black-box testing).
        reportStall()
    }

    /// What the committed ledger says of a pending transaction.
    enum PendingCheck {
        /// It can go in the next block.
        case valid
        /// Valid but for naming a height this node has not committed yet (gossip from a node
        /// just ahead); only a proposer picking for a block (`forBlock`) is told so.
        case waits
        /// The store could not be read, which says nothing about the transaction: it stays.
        case unreadable(StorageError)
        /// The committed ledger made it invalid: it is dropped with this reason.
        case stale(any Error)
    }

    /// Checks a pending transaction against `state`, as a proposer picking for a block
    /// (`forBlock`) or the mempool sweep does.
    static func check(pending tx: Transaction, validator: TransactionValidator, state: some LedgerStateReader, forBlock: Bool) -> PendingCheck {
        if forBlock, (try? validator.checkStateful(tx, state: state)) != nil { return .valid }
        do {
            try validator.checkStateful(tx, state: state, forMempool: true)
            return forBlock ? .waits : .valid
        } catch let e as StorageError {
            return .unreadable(e)
        } catch {
            return .stale(error)
        }
    }

    /// Pending transactions a small mempool is checked against the committed ledger once a second.
    static let sweepMax = 256

    /// Only a proposer's `build` drops pending transactions that the committed ledger made invalid
    /// (committed through another node, a conflicting claim or nonce committed first). A node that
    /// proposes rarely, or never (a follower), would keep them: its waiters would wait for good and
    /// an idle network would run empty rounds for them. A committed one answers its waiters with
    /// where it is; an invalid one is dropped with the reason.
    func sweepMempool() {
        let pending = mempool.oldest(Self.sweepMax, maxBytes: .max)
        guard !pending.isEmpty else { return }
        var stale: [HashKey: any Error] = [:]   // checked outside the mempool's lock
        for s in pending {
            if let at = try? store.location(of: s.transaction.id) {
                mempool.committed([s.transaction], height: at.height, firstLogIndex: at.logIndex)
                continue
            }
            switch Self.check(pending: s.transaction, validator: validator, state: store, forBlock: false) {
            case .valid, .waits: break
            case .unreadable(let e):
                logger.error("cannot check pending transaction \(s.transaction.id.hexString.prefix(16))… against the store: \(e); it stays")
            case .stale(let error):
                stale[HashKey(s.transaction.id)] = error
            }
        }
        if !stale.isEmpty { mempool.evict { stale[HashKey($0.transaction.id)] } }
    }

    /// Asks for the blocks above the head, at most one request every 2 s. `hint` is the peer that
    /// showed it is ahead; the request goes to `bestPeerAhead`, which a request left unanswered
    /// for 2 s moves away from the peer that left it.
    func requestBlocks(from hint: String) {
        let now = ContinuousClock.now
        if let last = lastRequest {
            if now - last.at < .seconds(2) { return }
            // A request the node outgrew (it committed that height through consensus meanwhile,
            // so the reply, if any, applied nothing) is no miss of the peer's.
            if store.head.height < last.from { catchUpMisses[last.peer, default: 0] += 1 }
        }
        let peer = bestPeerAhead ?? hint
        lastRequest = (peer, now, store.head.height + 1, peerHeights[peer] ?? 0)
        p2p.send(NetMessage.blockRequest(from: store.head.height + 1, count: UInt16(NetMessage.maxBlocksPerResponse)).encoded, to: peer)
    }

    /// Blocks from a peer: each must carry a valid quorum certificate and checkpoint, extend the
    /// head, and pass the same checks as a proposal.
    /// The reply of the peer asked that applies nothing although the node has not moved past
    /// the height it asked for (an empty reply, or blocks other than the one asked for) counts
    /// as a miss, as an unanswered request does: a peer that claims a great height and answers
    /// every request with nothing would otherwise stay the one asked.
    /// A reply holding only blocks the node has (an answer to a request for missing envelopes)
    /// is not taken for the answer to a catch-up request.
    func applyCommitted(_ list: [CommittedBlock], from peer: String) {
        if store.missingEnvelopeCount > 0 { restoreEnvelopes(from: list, peer: peer) }
        let answersCatchUp = list.isEmpty || list.contains { $0.block.header.height > store.head.height }
        let request = lastRequest?.peer == peer && answersCatchUp ? lastRequest : nil
        if request != nil { lastRequest = nil }
        // What an honest peer sends for the request: as many blocks as it has past our head, up to
        // `maxBlocksPerResponse`, while they fit in a frame.
        let claimed = min(request?.claimed ?? .max, peerHeights[peer] ?? 0)
        let wanted = min(NetMessage.maxBlocksPerResponse, Int(clamping: claimed &- min(claimed, store.head.height)))
        let sizes = list.map(\.encodedSize)
        let roomForMore = sizes.reduce(0, +) + (sizes.max() ?? 0) <= maxFrameBytes - NetMessage.blocksMessageHeaderBytes
        var applied = 0
        var refused = false
        var unreadable = false
        defer {
            if !stopped, !unreadable, refused || (applied == 0 && request.map { store.head.height < $0.from } == true) {
                catchUpMisses[peer, default: 0] += 1
            }
            // Status requests waiting on this batch answer with these figures.
            if applied > 0 { _ = consensusStatus() }
        }
        for c in list {
            let header = c.block.header
            guard header.height == store.head.height + 1 else { continue }
            let built: BlockBuilder.Result
            do {
                // The cheap checks first (a few signatures, hashes): a peer resending a block
                // whose checkpoint or content is wrong must not make this node verify every
                // transaction signature in it each time.
                try c.certificate.verify(header: header, genesis: genesis)
                let (cp, _) = try Checkpoint.verify(signedNote: c.checkpoint, genesis: genesis)
                guard cp.size == header.logSize, cp.rootHash == header.logRoot, cp.namesCommit(of: c.certificate) else {
                    throw LedgerError(.invalidCheckpoint, "checkpoint does not match block \(header.height) and the round of its certificate")
                }
                if let problem = Self.contentMismatch(c.block, envelopesMayBeShredded: true) {
                    warn(about: peer, "block \(header.height) from \(peer) does not match its certified header: \(problem); dropped, it is requested again")
                    refused = true
                    return
                }
                catchUpBlocksChecked += 1
                built = try check(c.block, certified: true)
            } catch let failed as StorageError {
                // This node's disk, not the peer's block: no miss charged; asked again later.
                logger.error("cannot check block \(header.height) from \(peer): \(failed); requested again")
                unreadable = true
                return
            } catch {
                warn(about: peer, window: "blocks", "block \(header.height) from \(peer) refused: \(error)")
                refused = true
                return
            }
            // A block that checked out and cannot be written is this node's failure, not the
            // peer's: stop, as the live commit path does, rather than charge an honest peer a
            // miss and ask again every 2 s while serving from a head that no longer moves.
            do {
                try writeBlock(built, c.certificate, c.block.submissions, c.checkpoint)
            } catch let e as StorageError where e.code == .noSpace {
                // Nothing was written: the node pauses, and asks again once it has room.
                unreadable = true
                waitForSpace(height: header.height, e) { [weak self] in self?.resumeAfterWaitingForSpace() }
                return
            } catch {
                fatal("cannot write block \(header.height), caught up from \(peer): \(error)")
                return
            }
            adoptDeferredBlocks()
            let stripped = c.block.submissions.filter { $0.envelope == nil && $0.transaction.body.envelopedRecord != nil }.count
            if stripped > 0 {
                logger.notice("block \(header.height) from \(peer) came without \(stripped) envelope(s); unless a later block erases those records, they are fetched from other peers once caught up")
            }
            applied += 1
            // The committed height's state goes before the machine moves on: moving may take up a
            // state persisted for the next height (a store restored from a backup) and ask for
            // the content of the block it proposed there, which must not be forgotten with it.
            forgetCommittedHeight(c.block)
            let signedHere = c.certificate.signatures.contains { $0.member == member.id }
            handle(.committedElsewhere(height: header.height, ownPrecommitRound: signedHere ? c.certificate.round ?? 0 : nil, blockHash: c.certificate.blockHash))
            resumeAfterCommit()
        }
        if applied > 0 {
            // A short answer to the request (fewer blocks than the peer claims to have, with room in
            // the frame for more) counts as a miss too: a member claiming a height and serving one
            // block at a time would otherwise stay the one asked and keep this node behind.
            let short = request != nil && applied < wanted && roomForMore
            catchUpMisses[peer] = short ? catchUpMisses[peer, default: 0] + 1 : nil
            logger.info("caught up \(applied) block(s) from \(peer); height \(store.head.height)")
            lastRequest = nil
            if let h = peerHeights[peer], h > store.head.height { requestBlocks(from: peer) }
        }
    }

    /// Envelopes of records this node committed without them (a catch-up block lacked them, and
    /// no block has erased those records), taken from a peer's copy of the committed block: the
    /// block must be the one this node committed at that height, and each envelope must hash to
    /// what its record names.
    func restoreEnvelopes(from list: [CommittedBlock], peer: String) {
        var candidates: [(envelope: Envelope, id: Hash)] = []
        for c in list where c.block.header.height <= store.head.height {
            guard (try? store.blockHeader(height: c.block.header.height))??.hash == c.block.hash else { continue }
            for s in c.block.submissions { if let e = s.envelope { candidates.append((e, s.transaction.id)) } }
        }
        let restored: Int
        do { restored = try store.restoreMissingEnvelopes(candidates) } catch {
            logger.error("cannot store the envelopes fetched from \(peer): \(error)")
            return
        }
        if restored > 0 {
            logger.notice("restored \(restored) envelope(s) missing from catch-up blocks, from \(peer); \(store.missingEnvelopeCount) still missing")
        }
    }

    /// Once caught up (the status tick calls it when no peer is ahead), asks one peer after
    /// another, one request a tick, for the committed blocks from the lowest height that has a
    /// record without its envelope.
    func requestMissingEnvelopes() {
        guard store.missingEnvelopeCount > 0, let lowest = (try? store.missingEnvelopes(limit: 1))?.first?.height else { return }
        // Not the peer asked for catch-up: it serves one block request at a time, and an envelope
        // request would push the catch-up request out.
        let catchingUpFrom = bestPeerAhead
        let peers = peerHeights.filter { $0.value >= lowest && $0.key != catchingUpFrom }.keys.sorted()
        guard !peers.isEmpty else { return }
        let turn = (envelopeRequest?.turn ?? -1) + 1
        let peer = peers[turn % peers.count]
        envelopeRequest = (peer, lowest, turn)
        p2p.send(NetMessage.blockRequest(from: lowest, count: UInt16(NetMessage.maxBlocksPerResponse)).encoded, to: peer)
    }

    // MARK: Evidence

    func record(_ e: Equivocation) {
        let body = e.body
        // One piece of evidence per offender and step at a height proves the fault; one per
        // round let a Byzantine validator, signing two votes in each of the 64 rounds ahead it may
        // use, have every honest node put hundreds of evidence transactions on the ledger per
        // height (found in review, 2026-12-08).
        let key = "\(body.offender)/\(body.step.rawValue)"
        guard reported[body.height, default: []].insert(key).inserted,
              member.has(.validator) || member.has(.auditor) else { return }
        if body.offender == member.id {
            // This node signs each step once: the other signature is another node's, with this
            // member's key (a standby started beside it, say). The peers warn; so must it
            // (found by black-box testing, 2026-12-06). Counted in status too.
            keySeenElsewhere += 1
            logger.critical("another node is signing with \(member.id)'s key: two \(body.step.name)s of \(member.id) at height \(body.height) round \(body.round), one not from this node. Stop one of them: two nodes with one key equivocate, and the evidence is on the ledger")
        } else {
            logger.warning("validator \(body.offender) equivocated: two \(body.step.name)s at height \(body.height) round \(body.round); recording evidence")
        }
        do {
            try submitOwn(.evidence(body))
        } catch {
            // Not recorded: the next equivocation seen at this height and step tries again (a
            // full mempool, say, would otherwise leave the fault unrecorded by this node).
            reported[body.height]?.remove(key)
            logger.error("evidence transaction refused: \(error)")
        }
    }

    /// Saved locked or valid blocks of the height after the head become candidates (the machine
    /// holds, or takes up there, the safety state naming them, and may re-propose or prevote
    /// them); those of heights already committed are dropped.
    func adoptDeferredBlocks() {
        guard !deferredBlocks.isEmpty else { return }
        let next = store.head.height + 1
        for (hash, block) in deferredBlocks where block.header.height <= next {
            deferredBlocks[hash] = nil
            guard block.header.height == next else { continue }
            do { candidates[hash] = (block, try check(block)) } catch is TimestampAhead { unchecked[hash] = block } catch let failed as StorageError {
                // No verdict from a failed read: kept and checked again, as `validationEvent` does
                // (it was dropped without a word; found in review, 2026-12-06).
                logger.error("cannot check saved block \(block.header.height) \(hash.hexString.prefix(16)): \(failed); checked again in 1 s")
                checkAgain(block, hash, height: block.header.height, afterMillis: 1_000)
            } catch {
                logger.warning("saved block \(block.header.height) \(hash.hexString.prefix(16)) is not valid on the committed ledger: \(error); dropped")
            }
        }
    }

    /// Logs and ends the process with status 70. `_exit`, not `exit`: C++ teardown while a
    /// RocksDB compaction runs aborts the process (SIGABRT, a core) instead; every committed
    /// block is in the synced WAL, so nothing is lost by skipping it.
    func fatal(_ message: String) {
        stopped = true
        logger.critical("\(message); stopping")
        FileHandle.standardError.write(Data("fatal: \(message)\n".utf8))
        stopProcess(message)
    }
}

/// Signs consensus messages with the member's Ed25519 key. Precommit attachments need the
/// block's header, which the node holds while the machine runs on its queue.
struct NodeSigner: ConsensusSigner, @unchecked Sendable {
    let memberID: String
    let key: Ed25519PrivateKey
    unowned let node: ConsensusNode

    func sign(_ message: [UInt8]) -> [UInt8] { key.signature(for: message) }

    func precommitAttachment(height: UInt64, round: UInt32, blockHash: Hash) -> [UInt8] {
        guard let header = node.candidates[blockHash]?.block.header else { return [] }
        return PrecommitAttachment.make(header: header, round: round, key: key).encoded
    }
}

/// Peer messages received and not yet handled, per peer: at most `maxMessages` and `maxBytes`
/// each, and one block request being served. Over a bound the message is dropped: consensus
/// messages are rebroadcast and transactions reach every validator in proposals, so a dropped
/// message costs time, never safety. Drops are logged at most once a second per peer.
/// Score endorsement messages have a backlog of their own (`scoring`), so a peer's scorer
/// resending its requests while this node's scorer is busy cannot crowd out its votes.
final class InboundBacklog: Sendable {
    static let maxMessages = 4_096
    static let maxBytes = 96 << 20
    /// All peers' messages together: with many members the per-peer bounds alone allowed
    /// gigabytes (96 MiB for each of up to 100 validators and their followers).
    static let maxTotalBytes = 1 << 30
    let maxMessages: Int
    let maxBytes: Int
    let maxTotalBytes: Int
    let name: String

    init(maxMessages: Int = InboundBacklog.maxMessages, maxBytes: Int = InboundBacklog.maxBytes,
         maxTotalBytes: Int = InboundBacklog.maxTotalBytes, name: String = "consensus messages") {
        self.maxMessages = maxMessages; self.maxBytes = maxBytes; self.maxTotalBytes = maxTotalBytes; self.name = name
    }
    /// Endorsement requests and endorsements: a scorer resends each pending request every
    /// second (at most 4,096 pending), each at most a transaction's size.
    static func scoring() -> InboundBacklog {
        InboundBacklog(maxMessages: 8_192, maxBytes: 32 << 20, maxTotalBytes: 256 << 20, name: "score endorsement messages")
    }
    /// Gossiped transactions and block requests: a batch of transactions is at most a frame.
    static func gossip() -> InboundBacklog {
        InboundBacklog(maxMessages: 4_096, maxBytes: 96 << 20, maxTotalBytes: 512 << 20, name: "gossiped transactions and block requests")
    }

    enum Outcome: Equatable { case taken, dropped(String, log: Bool) }

    private struct PerPeer {
        var messages = 0
        var bytes = 0
        var servingBlocks = false
        var dropped = 0
        var lastLog: ContinuousClock.Instant?
    }
    private struct State {
        var peers: [String: PerPeer] = [:]
        var totalBytes = 0
    }
    private let state = Mutex(State())

    func take(_ peer: String, bytes: Int, blockRequest: Bool = false) -> Outcome {
        state.withLock { s in
            var p = s.peers[peer, default: PerPeer()]
            defer { s.peers[peer] = p }
            let why: String
            if blockRequest && p.servingBlocks {
                why = "a block request of this peer is being served already"
            } else if p.messages >= maxMessages || p.bytes + bytes > maxBytes {
                why = "\(p.messages) of its \(name) (\(p.bytes) bytes) wait to be handled, at most \(maxMessages) (\(maxBytes) bytes)"
            } else if s.totalBytes + bytes > maxTotalBytes {
                why = "all peers' \(name) waiting to be handled come to \(s.totalBytes) bytes, at most \(maxTotalBytes)"
            } else {
                p.messages += 1
                p.bytes += bytes
                s.totalBytes += bytes
                if blockRequest { p.servingBlocks = true }
                return .taken
            }
            p.dropped += 1
            let now = ContinuousClock.now
            let log = p.lastLog.map { now - $0 >= .seconds(1) } ?? true
            if log { p.lastLog = now }
            return .dropped(why, log: log)
        }
    }

    func give(_ peer: String, bytes: Int, blockRequest: Bool = false) {
        state.withLock { s in
            guard var p = s.peers[peer] else { return }
            p.messages -= 1
            p.bytes -= bytes
            s.totalBytes -= bytes
            if blockRequest { p.servingBlocks = false }
            s.peers[peer] = p
        }
    }

    /// Messages waiting and messages dropped so far, for a peer.
    func counts(_ peer: String) -> (waiting: Int, bytes: Int, dropped: Int) {
        state.withLock { s in s.peers[peer].map { ($0.messages, $0.bytes, $0.dropped) } ?? (0, 0, 0) }
    }

    /// Bytes of all peers' messages waiting.
    var totalBytes: Int { state.withLock { $0.totalBytes } }
}

/// A proposed block's timestamp is further ahead of this node's clock than the allowed skew:
/// not yet acceptable, which is not the same as invalid.
struct TimestampAhead: Error, CustomStringConvertible {
    let millis: UInt64
    var description: String { "block timestamp is \(millis) ms beyond the allowed clock skew" }
}
