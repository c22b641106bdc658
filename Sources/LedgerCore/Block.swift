import LedgerCrypto

/// A block header: links to its parent and commits to its transactions and the global log.
public struct BlockHeader: Hashable, Sendable {
    public static let version: UInt8 = 1
    public let chainID: String
    public let height: UInt64
    /// The proposer's clock in milliseconds since 1970, agreed by consensus: never before the
    /// parent's, not far ahead of a voter's clock, and a score's as-of date (docs/FORMAT.md §8).
    public let timestampMillis: UInt64
    /// Hash of the previous block; block 1 links to the genesis hash.
    public let previousHash: Hash
    public let transactionCount: UInt32
    /// RFC 9162 root over this block's transactions.
    public let transactionsRoot: Hash
    /// Size and root of the global log after this block.
    public let logSize: UInt64
    public let logRoot: Hash
    public let proposer: String

    public init(chainID: String, height: UInt64, timestampMillis: UInt64, previousHash: Hash, transactionCount: UInt32,
                transactionsRoot: Hash, logSize: UInt64, logRoot: Hash, proposer: String) {
        self.chainID = chainID; self.height = height; self.timestampMillis = timestampMillis
        self.previousHash = previousHash; self.transactionCount = transactionCount
        self.transactionsRoot = transactionsRoot; self.logSize = logSize; self.logRoot = logRoot; self.proposer = proposer
    }

    public var encoded: [UInt8] {
        var w = ByteWriter(capacity: 200)
        w.u8(Self.version)
        w.string8(chainID)
        w.u64(height)
        w.u64(timestampMillis)
        w.raw(previousHash)
        w.u32(transactionCount)
        w.raw(transactionsRoot)
        w.u64(logSize)
        w.raw(logRoot)
        w.string8(proposer)
        return w.bytes
    }

    /// SHA-256(domain ‖ encoded header).
    public var hash: Hash { SHA256.hash(parts: [Domain.block, encoded]) }

    /// Index in the global log of this block's first transaction.
    public var firstLogIndex: UInt64 { logSize - UInt64(transactionCount) }

    public static func decode(_ bytes: [UInt8]) throws -> BlockHeader {
        var r = ByteReader(bytes, context: "block header")
        let v = try r.u8("version")
        guard v == version else { throw LedgerError(.unsupportedVersion, "block header version \(v) is not supported") }
        let header = BlockHeader(
            chainID: try r.string8("chain_id", max: FieldLimits.chainID), height: try r.u64("height"),
            timestampMillis: try r.u64("timestamp"), previousHash: try r.raw(32, "previous_hash"),
            transactionCount: try r.u32("transaction_count"), transactionsRoot: try r.raw(32, "transactions_root"),
            logSize: try r.u64("log_size"), logRoot: try r.raw(32, "log_root"),
            proposer: try r.string8("proposer", max: FieldLimits.memberID))
        try r.expectEnd()
        guard UInt64(header.transactionCount) <= header.logSize else {
            throw LedgerError(.invalidBlock, "block \(header.height) has more transactions than the log")
        }
        return header
    }
}

/// Validator signatures over a block hash, all given in one consensus round: at least the
/// genesis quorum makes the block final. Tendermint lets an honest validator precommit a block
/// in one round and commit another in a later one; only a quorum of precommits from a *single*
/// round decides. So each signature names its round, and a certificate holds one round's
/// signatures (docs/CONSENSUS.md §4). `round` is nil only for a certificate stored before
/// signatures named their round (legacy encoding, FORMAT.md §8): this version reads those and
/// never writes them.
public struct CommitCertificate: Hashable, Sendable {
    public let height: UInt64
    public let round: UInt32?
    public let blockHash: Hash
    public let signatures: [MemberSignature]

    /// First byte of the current encoding; a legacy one starts with the high byte of its height, 0.
    static let version: UInt8 = 2

    public init(height: UInt64, round: UInt32?, blockHash: Hash, signatures: [MemberSignature]) {
        self.height = height; self.round = round; self.blockHash = blockHash; self.signatures = signatures
    }

    /// What a validator signs to commit a block in `round`; with `round` nil, the legacy
    /// statement, which no longer named the round and which this version never signs.
    public static func message(chainID: String, height: UInt64, round: UInt32?, blockHash: Hash) -> [UInt8] {
        var w = ByteWriter(capacity: 96)
        w.raw(round == nil ? Domain.legacyCommit : Domain.commit)
        w.string8(chainID)
        w.u64(height)
        if let round { w.u32(round) }
        w.raw(blockHash)
        return w.bytes
    }

    public var encoded: [UInt8] {
        var w = ByteWriter()
        if let round { w.u8(Self.version); w.u64(height); w.u32(round) } else { w.u64(height) }
        w.raw(blockHash)
        w.u8(UInt8(signatures.count))
        for s in signatures { s.encode(&w) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> CommitCertificate {
        var r = ByteReader(bytes, context: "commit certificate")
        let round: UInt32?
        let height: UInt64
        switch bytes.first {
        case Self.version:
            _ = try r.u8("version")
            height = try r.u64("height")
            round = try r.u32("round")
        case 0:
            height = try r.u64("height")
            round = nil
        default:
            throw LedgerError(.unsupportedVersion, "commit certificate \(bytes.first.map { "starts with byte \($0)" } ?? "is empty"), not version \(Self.version) (nor 0, the legacy encoding)")
        }
        let hash = try r.raw(32, "block_hash")
        let n = Int(try r.u8("signatures.count"))
        var sigs: [MemberSignature] = []
        for i in 0..<n { sigs.append(try MemberSignature.decode(&r, field: "signatures[\(i)]")) }
        try r.expectEnd()
        return CommitCertificate(height: height, round: round, blockHash: hash, signatures: sigs)
    }

    /// Checks the certificate names `header`, and that a quorum of distinct validators signed it.
    public func verify(header: BlockHeader, genesis: Genesis) throws {
        let hash = header.hash
        guard height == header.height, blockHash == hash else {
            throw LedgerError(.invalidBlock, "commit certificate at height \(height) does not name block \(header.height) \(hash.hexString.prefix(16))")
        }
        // Who signed is checked before any signature is: a certificate repeating one validator's
        // signature a hundred times cost a hundred checks before its quorum was counted, which
        // let one validator keep a peer's consensus queue busy (found in review, 2026-12-06).
        var signers = Set<String>()
        for s in signatures {
            guard let m = genesis.member(s.member), m.has(.validator) else {
                throw LedgerError(.invalidBlock, "commit certificate of block \(height) is signed by \(s.member), not a validator")
            }
            guard signers.insert(m.id).inserted else {
                throw LedgerError(.invalidBlock, "commit certificate of block \(height) holds more than one signature by \(s.member)")
            }
        }
        guard signers.count >= genesis.quorum else {
            throw LedgerError(.invalidBlock,
                "commit certificate of block \(height) has \(signers.count) validator signatures, needs \(genesis.quorum)")
        }
        let message = Self.message(chainID: genesis.chainID, height: height, round: round, blockHash: blockHash)
        for s in signatures {
            guard let m = genesis.member(s.member) else { continue }
            guard s.keyID == m.keyID, m.signingKey.isValidSignature(s.signature, for: message) else {
                throw LedgerError(.badSignature, "commit certificate of block \(height): signature by \(s.member) does not verify")
            }
        }
    }
}
