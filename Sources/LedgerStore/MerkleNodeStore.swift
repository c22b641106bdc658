import LedgerCore
import LedgerStorage

/// The global log's Merkle subtree hashes in one column family: key = level (u8) ‖ index (u64 BE),
/// value = 32-byte hash. Proofs read O(log n) keys; nothing loads the log.
public struct MerkleNodeStore: MerkleHashSource, Sendable {
    public let database: Database
    public let family: String

    public init(database: Database, family: String = "tree") {
        self.database = database
        self.family = family
    }

    public static func key(level: Int, index: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 9)
        w.u8(UInt8(level))
        w.u64(index)
        return w.bytes
    }

    public func nodeHash(level: Int, index: UInt64) throws -> Hash {
        guard let h = try database.get(family, Self.key(level: level, index: index)), h.count == 32 else {
            throw LedgerError(.notFound, "Merkle node level \(level) index \(index) is missing from the store")
        }
        return h
    }

    /// Adds newly completed nodes to a write batch.
    public func put(_ nodes: [MerkleFrontier.StoredNode], into batch: WriteBatch) throws {
        for node in nodes { try batch.put(family, Self.key(level: node.level, index: node.index), node.hash) }
    }
}
