import LedgerCrypto

/// What validators sign during consensus (docs/CONSENSUS.md §Messages). Defined here, beside
/// the transaction format, because evidence of equivocation carries these signatures and every
/// node and the verifier must check them.
public enum ConsensusStatement {
    public static let proposalDomain: [UInt8] = Array("CreditLedger/v1/proposal\n".utf8)
    public static let voteDomain: [UInt8] = Array("CreditLedger/v1/vote\n".utf8)

    /// Step codes: 0 proposal, 1 prevote, 2 precommit.
    public static func proposal(chainID: String, height: UInt64, round: UInt32, polRound: Int32, blockHash: Hash, proposer: String) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.raw(proposalDomain)
        w.string8(chainID)
        w.u64(height); w.u32(round); w.i32(polRound)
        w.raw(blockHash)
        w.string8(proposer)
        return w.bytes
    }

    public static func vote(chainID: String, step: UInt8, height: UInt64, round: UInt32, blockHash: Hash?, voter: String) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.raw(voteDomain)
        w.string8(chainID)
        w.u8(step)
        w.u64(height); w.u32(round)
        if let blockHash { w.u8(1); w.raw(blockHash) } else { w.u8(0) }
        w.string8(voter)
        return w.bytes
    }
}

/// Proof that a validator signed two different messages for one height, round and step
/// (equivocation). Recorded on the ledger by the validator or auditor that saw it.
public struct EvidenceBody: Hashable, Sendable {
    public enum Step: UInt8, Sendable, CaseIterable {
        case proposal = 0, prevote = 1, precommit = 2
        public var name: String { ["proposal", "prevote", "precommit"][Int(rawValue)] }
    }
    /// One of the two signed messages: what it named, and the offender's signature over it.
    public struct Signed: Hashable, Sendable {
        public let blockHash: Hash?
        /// Proposals only: the proof-of-lock round, or -1.
        public let polRound: Int32
        public let signature: [UInt8]
        public init(blockHash: Hash?, polRound: Int32, signature: [UInt8]) {
            self.blockHash = blockHash; self.polRound = polRound; self.signature = signature
        }
    }

    public var offender: String
    public var step: Step
    public var height: UInt64
    public var round: UInt32
    public var first: Signed
    public var second: Signed

    public init(offender: String, step: Step, height: UInt64, round: UInt32, first: Signed, second: Signed) {
        self.offender = offender; self.step = step; self.height = height; self.round = round
        self.first = first; self.second = second
    }

    func signedBytes(_ s: Signed, chainID: String) -> [UInt8] {
        if step == .proposal {
            return ConsensusStatement.proposal(chainID: chainID, height: height, round: round, polRound: s.polRound,
                                               blockHash: s.blockHash ?? [], proposer: offender)
        }
        return ConsensusStatement.vote(chainID: chainID, step: step.rawValue, height: height, round: round, blockHash: s.blockHash, voter: offender)
    }

    /// Both messages are the offender's, for the same height, round and step, and differ.
    public func verify(genesis: Genesis) throws {
        guard let m = genesis.member(offender), m.has(.validator) else {
            throw LedgerError(.invalidValue, "evidence names \(offender), which is not a validator")
        }
        // A vote's signed bytes hold no proof-of-lock round, so for votes only the block can
        // differ: otherwise one honest vote, copied with two made-up rounds, would pass as two.
        if step != .proposal, first.polRound != -1 || second.polRound != -1 {
            throw LedgerError(.invalidValue, "evidence of a \(step.name) has pol_round \(first.polRound) and \(second.polRound); a vote carries none (-1)")
        }
        guard first.blockHash != second.blockHash || first.polRound != second.polRound else {
            throw LedgerError(.invalidValue, "evidence holds two identical \(step.name)s: that is not equivocation")
        }
        if step == .proposal, first.blockHash == nil || second.blockHash == nil {
            throw LedgerError(.invalidValue, "a proposal always names a block")
        }
        for (i, s) in [first, second].enumerated() where !m.signingKey.isValidSignature(s.signature, for: signedBytes(s, chainID: genesis.chainID)) {
            throw LedgerError(.badSignature, "evidence message \(i + 1) does not verify with \(offender)'s key")
        }
    }

    func encode(_ w: inout ByteWriter) {
        w.string8(offender); w.u8(step.rawValue); w.u64(height); w.u32(round)
        for s in [first, second] {
            if let h = s.blockHash { w.u8(1); w.raw(h) } else { w.u8(0) }
            w.i32(s.polRound)
            w.raw(s.signature)
        }
    }

    static func decode(_ r: inout ByteReader) throws -> EvidenceBody {
        let offender = try r.string8("offender", max: FieldLimits.memberID)
        let code = try r.u8("step")
        guard let step = Step(rawValue: code) else { throw LedgerError(.invalidValue, "evidence step \(code) is unknown (0-2)") }
        let height = try r.u64("height"), round = try r.u32("round")
        func signed(_ field: String) throws -> Signed {
            let flag = try r.u8("\(field).has_block")
            guard flag <= 1 else { throw LedgerError(.malformed, "\(field).has_block is \(flag), must be 0 or 1") }
            let hash: Hash? = flag == 1 ? try r.raw(32, "\(field).block_hash") : nil
            return Signed(blockHash: hash, polRound: try r.i32("\(field).pol_round"), signature: try r.raw(64, "\(field).signature"))
        }
        return EvidenceBody(offender: offender, step: step, height: height, round: round, first: try signed("first"), second: try signed("second"))
    }
}
