import LedgerCrypto

/// Builds the next block from validated transactions: pure, so the node and the verifier
/// compute exactly the same header.
public struct BlockBuilder {
    public struct Result {
        public let header: BlockHeader
        /// The frontier of the global log after the block.
        public let frontier: MerkleFrontier
        /// Merkle nodes completed by the block, to store.
        public let nodes: [MerkleFrontier.StoredNode]
    }

    public static func build(chainID: String, height: UInt64, timestampMillis: UInt64, previousHash: Hash,
                             frontier: MerkleFrontier, transactions: [Transaction], proposer: String) -> Result {
        var blockTree = InMemoryMerkleTree()
        var global = frontier
        var nodes: [MerkleFrontier.StoredNode] = []
        nodes.reserveCapacity(transactions.count * 2)
        for tx in transactions {
            blockTree.append(leafHash: tx.id)
            nodes.append(contentsOf: global.append(leafHash: tx.id))
        }
        let header = BlockHeader(chainID: chainID, height: height, timestampMillis: timestampMillis, previousHash: previousHash,
                                 transactionCount: UInt32(transactions.count), transactionsRoot: blockTree.root,
                                 logSize: global.size, logRoot: global.root, proposer: proposer)
        return Result(header: header, frontier: global, nodes: nodes)
    }

    /// Signs a block's commit in `round` by one validator.
    public static func commitSignature(header: BlockHeader, round: UInt32, validator: Member, key: Ed25519PrivateKey) -> MemberSignature {
        let message = CommitCertificate.message(chainID: header.chainID, height: header.height, round: round, blockHash: header.hash)
        return MemberSignature(member: validator.id, keyID: validator.keyID, signature: key.signature(for: message))
    }
}
