import LedgerCore
import LedgerCrypto

public enum VoteType: UInt8, Sendable, Hashable, CaseIterable {
    case prevote = 1, precommit = 2
    public var name: String { self == .prevote ? "prevote" : "precommit" }
}

/// A proposer's signed offer of a block for (height, round). `polRound` is the round in which
/// the block got a quorum of prevotes (Tendermint's "valid round"), or -1.
public struct Proposal: Hashable, Sendable {
    public let height: UInt64
    public let round: UInt32
    public let polRound: Int32
    public let blockHash: Hash
    public let proposer: String
    public let signature: [UInt8]

    public init(height: UInt64, round: UInt32, polRound: Int32, blockHash: Hash, proposer: String, signature: [UInt8]) {
        self.height = height; self.round = round; self.polRound = polRound
        self.blockHash = blockHash; self.proposer = proposer; self.signature = signature
    }

    public static func signingBytes(chainID: String, height: UInt64, round: UInt32, polRound: Int32, blockHash: Hash, proposer: String) -> [UInt8] {
        ConsensusStatement.proposal(chainID: chainID, height: height, round: round, polRound: polRound, blockHash: blockHash, proposer: proposer)
    }

    public func signingBytes(chainID: String) -> [UInt8] {
        Self.signingBytes(chainID: chainID, height: height, round: round, polRound: polRound, blockHash: blockHash, proposer: proposer)
    }

    public func encode(_ w: inout ByteWriter) {
        w.u64(height); w.u32(round); w.i32(polRound); w.raw(blockHash); w.string8(proposer); w.raw(signature)
    }

    public static func decode(_ r: inout ByteReader) throws -> Proposal {
        Proposal(height: try r.u64("proposal.height"), round: try r.u32("proposal.round"), polRound: try r.i32("proposal.pol_round"),
                 blockHash: try r.raw(32, "proposal.block_hash"),
                 proposer: try r.string8("proposal.proposer", max: FieldLimits.memberID),
                 signature: try r.raw(64, "proposal.signature"))
    }
}

/// A validator's signed prevote or precommit for a block hash, or for nothing (nil).
/// A precommit for a block carries an `attachment`: the voter's commit-certificate signature
/// and checkpoint cosignature, which the node checks before the vote reaches the state machine.
public struct Vote: Hashable, Sendable {
    public let type: VoteType
    public let height: UInt64
    public let round: UInt32
    public let blockHash: Hash?
    public let voter: String
    public let signature: [UInt8]
    public let attachment: [UInt8]

    public static let maxAttachmentBytes = 512

    public init(type: VoteType, height: UInt64, round: UInt32, blockHash: Hash?, voter: String, signature: [UInt8], attachment: [UInt8] = []) {
        self.type = type; self.height = height; self.round = round; self.blockHash = blockHash
        self.voter = voter; self.signature = signature; self.attachment = attachment
    }

    public static func signingBytes(chainID: String, type: VoteType, height: UInt64, round: UInt32, blockHash: Hash?, voter: String) -> [UInt8] {
        ConsensusStatement.vote(chainID: chainID, step: type.rawValue, height: height, round: round, blockHash: blockHash, voter: voter)
    }

    public func signingBytes(chainID: String) -> [UInt8] {
        Self.signingBytes(chainID: chainID, type: type, height: height, round: round, blockHash: blockHash, voter: voter)
    }

    public func encode(_ w: inout ByteWriter) {
        w.u8(type.rawValue); w.u64(height); w.u32(round)
        if let blockHash { w.u8(1); w.raw(blockHash) } else { w.u8(0) }
        w.string8(voter); w.raw(signature)
        w.u16(UInt16(attachment.count)); w.raw(attachment)
    }

    public static func decode(_ r: inout ByteReader) throws -> Vote {
        guard let type = VoteType(rawValue: try r.u8("vote.type")) else {
            throw LedgerError(.malformed, "vote.type is not prevote (1) or precommit (2)")
        }
        let height = try r.u64("vote.height"), round = try r.u32("vote.round")
        let flag = try r.u8("vote.has_block")
        guard flag <= 1 else { throw LedgerError(.malformed, "vote.has_block is \(flag), must be 0 or 1") }
        let hash: Hash? = flag == 1 ? try r.raw(32, "vote.block_hash") : nil
        let voter = try r.string8("vote.voter", max: FieldLimits.memberID)
        let sig = try r.raw(64, "vote.signature")
        let n = Int(try r.u16("vote.attachment.length"))
        guard n <= maxAttachmentBytes else { throw LedgerError(.fieldTooLarge, "vote.attachment is \(n) bytes, limit \(maxAttachmentBytes)") }
        return Vote(type: type, height: height, round: round, blockHash: hash, voter: voter, signature: sig, attachment: try r.raw(n, "vote.attachment"))
    }
}

/// Two conflicting signed messages by one validator for the same height, round and step.
public enum Equivocation: Hashable, Sendable {
    case proposals(Proposal, Proposal)
    case votes(Vote, Vote)

    /// The ledger form, for an evidence transaction.
    public var body: EvidenceBody {
        switch self {
        case .proposals(let a, let b):
            return EvidenceBody(offender: a.proposer, step: .proposal, height: a.height, round: a.round,
                                first: .init(blockHash: a.blockHash, polRound: a.polRound, signature: a.signature),
                                second: .init(blockHash: b.blockHash, polRound: b.polRound, signature: b.signature))
        case .votes(let a, let b):
            return EvidenceBody(offender: a.voter, step: a.type == .prevote ? .prevote : .precommit, height: a.height, round: a.round,
                                first: .init(blockHash: a.blockHash, polRound: -1, signature: a.signature),
                                second: .init(blockHash: b.blockHash, polRound: -1, signature: b.signature))
        }
    }

    public var offender: String {
        switch self {
        case .proposals(let a, _): return a.proposer
        case .votes(let a, _): return a.voter
        }
    }
    public var height: UInt64 {
        switch self {
        case .proposals(let a, _): return a.height
        case .votes(let a, _): return a.height
        }
    }
}

/// Signs what the state machine decides to send. Production signs with the member's Ed25519
/// key; the simulator uses a cheap deterministic stand-in.
public protocol ConsensusSigner: Sendable {
    var memberID: String { get }
    func sign(_ message: [UInt8]) -> [UInt8]
    /// The attachment of a precommit for `blockHash` at `height` in `round` (commit signature,
    /// checkpoint cosignature; both name the round, so a certificate cannot mix rounds).
    func precommitAttachment(height: UInt64, round: UInt32, blockHash: Hash) -> [UInt8]
}

/// The validators of a chain, in proposer order.
public struct ValidatorSet: Sendable, Hashable {
    public let ids: [String]
    public init(ids: [String]) { self.ids = ids.sorted() }
    public var count: Int { ids.count }
    /// f = ⌊(n−1)/3⌋
    public var faultTolerance: Int { (ids.count - 1) / 3 }
    /// n − f: two such sets share at least one honest validator.
    public var quorum: Int { ids.count - faultTolerance }
    /// f + 1: at least one honest validator.
    public var weakQuorum: Int { faultTolerance + 1 }
    public func contains(_ id: String) -> Bool { ids.contains(id) }
    /// Round-robin: proposer(h, r) = ids[(h + r) mod n].
    public func proposer(height: UInt64, round: UInt32) -> String {
        ids[Int((height &+ UInt64(round)) % UInt64(ids.count))]
    }
}
