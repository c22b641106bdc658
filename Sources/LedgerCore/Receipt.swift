import Foundation

/// A self-contained proof that a transaction is in the ledger: the transaction, its RFC 9162
/// inclusion proof, a quorum-signed checkpoint, and the block (header and commit certificate)
/// that holds it. Verifiable offline with the genesis file alone (`credit-verify receipt`).
public struct Receipt: Codable, Sendable, Equatable {
    public static let format = "creditledger-receipt/v1"

    public struct BlockPart: Codable, Sendable, Equatable {
        public var height: UInt64
        public var header: String
        public var commit_certificate: String
    }

    public var format: String
    public var chain_id: String
    public var genesis_sha256: String
    public var transaction: String
    public var log_index: UInt64
    public var tree_size: UInt64
    public var inclusion_proof: [String]
    public var checkpoint: String
    public var block: BlockPart

    public init(genesis: Genesis, transaction: Transaction, logIndex: UInt64, proof: [Hash], checkpoint: String,
                header: BlockHeader, certificate: CommitCertificate) throws {
        let (cp, _) = try Checkpoint.verify(signedNote: checkpoint, genesis: genesis)
        self.init(genesis: genesis, transaction: transaction, logIndex: logIndex, proof: proof, checkpoint: checkpoint,
                  verifiedTreeSize: cp.size, header: header, certificate: certificate)
    }

    /// With a checkpoint the caller has already verified, of tree size `verifiedTreeSize`: a
    /// provenance of a thousand receipts under one checkpoint verifies its signatures once.
    public init(genesis: Genesis, transaction: Transaction, logIndex: UInt64, proof: [Hash], checkpoint: String,
                verifiedTreeSize: UInt64, header: BlockHeader, certificate: CommitCertificate) {
        format = Self.format
        chain_id = genesis.chainID
        genesis_sha256 = genesis.hash.hexString
        self.transaction = transaction.encoded.base64String
        log_index = logIndex
        tree_size = verifiedTreeSize
        inclusion_proof = proof.map(\.base64String)
        self.checkpoint = checkpoint
        block = BlockPart(height: header.height, header: header.encoded.base64String, commit_certificate: certificate.encoded.base64String)
    }

    public struct Verified: Sendable {
        public let transaction: Transaction
        public let height: UInt64
        public let checkpoint: Checkpoint
        public let checkpointSigners: [String]
    }

    /// Checks everything against `genesis`; throws naming the first thing that fails.
    /// `policyRules` (the policy engine, `Policy.PolicyRules()`) checks the document of an
    /// `install_policy` transaction; without it a receipt for one is refused, naming why.
    public func verify(genesis: Genesis, policyRules: (any PolicyRules)? = nil) throws -> Verified {
        func bad(_ s: String) -> LedgerError { LedgerError(.invalidProof, "receipt: \(s)") }
        guard format == Self.format else { throw bad("format is \(format), expected \(Self.format)") }
        guard chain_id == genesis.chainID, genesis_sha256 == genesis.hash.hexString else {
            throw bad("it is for chain \(chain_id) with genesis \(genesis_sha256.prefix(64)), not this genesis (\(genesis.chainID), \(genesis.hash.hexString))")
        }
        guard let txBytes = [UInt8](base64: transaction) else { throw bad("transaction is not base64") }
        let tx: Transaction
        do { tx = try Transaction.decode(txBytes, maxBytes: genesis.limits.maxTransactionBytes) } catch { throw bad("transaction: \(error)") }
        do { try TransactionValidator(genesis: genesis, policyRules: policyRules).checkStateless(Submission(transaction: tx, envelope: nil), envelopeMayBeShredded: true) }
        catch { throw bad("transaction: \(error)") }
        let (cp, signers): (Checkpoint, [String])
        do { (cp, signers) = try Checkpoint.verify(signedNote: checkpoint, genesis: genesis) } catch { throw bad("checkpoint: \(error)") }
        guard cp.size == tree_size else { throw bad("tree size \(tree_size) is not the checkpoint's size \(cp.size)") }
        let proof: [Hash]
        do { proof = try Merkle.proofHashes(base64: inclusion_proof) } catch { throw bad("\(error)") }
        guard Merkle.verifyInclusion(leafHash: tx.id, index: log_index, size: cp.size, proof: proof, root: cp.rootHash) else {
            throw bad("inclusion proof of log index \(log_index) does not verify against the checkpoint root")
        }
        guard let headerBytes = [UInt8](base64: block.header), let certBytes = [UInt8](base64: block.commit_certificate) else {
            throw bad("block header or certificate is not base64")
        }
        let header: BlockHeader
        do {
            header = try BlockHeader.decode(headerBytes)
            try CommitCertificate.decode(certBytes).verify(header: header, genesis: genesis)
        } catch { throw bad("block: \(error)") }
        // Each disagreement named as itself (an edited block.height read "block 1 does not hold
        // log index 0", which it does; found by black-box testing).
        guard header.height == block.height else {
            throw bad("block.height says \(block.height), but the block header it carries is of height \(header.height)")
        }
        guard header.firstLogIndex <= log_index, log_index < header.logSize, header.logSize <= cp.size else {
            throw bad("block \(header.height) does not hold log index \(log_index) within the checkpoint")
        }
        return Verified(transaction: tx, height: header.height, checkpoint: cp, checkpointSigners: signers)
    }
}
