import LedgerCore
import LedgerStorage

/// The log's Merkle nodes of every level from `lowest` up, in memory, densely by index. Nodes
/// never change once written, so the cache never goes stale; it only grows as blocks commit.
/// Inclusion proofs then read RocksDB only for the levels below `lowest`. `lowest` is the
/// smallest level whose nodes fit in the byte budget; as the log grows past it the lowest
/// level is dropped. Not thread-safe: `ChainStore` guards it with its lock.
struct MerkleNodeCache {
    /// Nodes per chunk (at most 1 MiB of hashes), so growth never copies a whole level.
    static let chunkNodes = 1 << 15
    let budgetBytes: Int
    private(set) var lowest: Int
    /// `chunks[l - lowest]` holds level l's nodes 0..<counts[l - lowest], 32 bytes each.
    private var chunks: [[[UInt8]]] = []
    private var counts: [UInt64] = []
    private var bytes = 0

    /// The lowest level whose nodes, and all above, take at most half the budget for a log of
    /// `size` leaves (the other half is room to grow). 64 means nothing is cached.
    static func lowestLevel(logSize size: UInt64, budgetBytes: Int) -> Int {
        guard budgetBytes >= 64 else { return 64 }
        var level = 0
        // Levels ≥ L hold fewer than 2 · (size >> L) nodes of 32 bytes.
        while level < 64, (size >> UInt64(level)) * 64 > UInt64(budgetBytes / 2) { level += 1 }
        return level
    }

    init(budgetBytes: Int, logSize: UInt64) {
        self.budgetBytes = budgetBytes
        lowest = Self.lowestLevel(logSize: logSize, budgetBytes: budgetBytes)
    }

    /// Fills the cache from the tree family: one pass over the keys of the cached levels.
    mutating func load(from database: Database, family: String) throws {
        guard lowest < 64 else { return }
        let it = try database.makeIterator(family)
        it.seek([UInt8(lowest)])
        while it.isValid {
            let key = it.key
            guard key.count == 9 else { throw LedgerError(.invalidBlock, "Merkle node key of \(key.count) bytes") }
            let index = key[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let value = it.value
            guard value.count == 32 else { throw LedgerError(.invalidBlock, "Merkle node level \(key[0]) index \(index) is \(value.count) bytes") }
            add(level: Int(key[0]), index: index, hash: value)
            it.next()
        }
        try it.checkStatus()
    }

    func hash(level: Int, index: UInt64) -> Hash? {
        let l = level - lowest
        guard l >= 0, l < counts.count, index < counts[l] else { return nil }
        let chunk = chunks[l][Int(index / UInt64(Self.chunkNodes))]
        let offset = Int(index % UInt64(Self.chunkNodes)) * 32
        return Array(chunk[offset..<offset + 32])
    }

    /// Adds a node written by a committed block. Nodes of a level arrive in index order; one
    /// that would leave a gap (never expected) is not cached and is read from the store instead.
    mutating func add(level: Int, index: UInt64, hash: Hash) {
        guard level >= lowest, level < 64 else { return }
        let l = level - lowest
        while counts.count <= l { counts.append(0); chunks.append([]) }
        guard index == counts[l] else { return }
        let within = Int(index % UInt64(Self.chunkNodes))
        if within == 0 { chunks[l].append([]) }
        chunks[l][chunks[l].count - 1].append(contentsOf: hash)
        counts[l] += 1
        bytes += 32
        if bytes > budgetBytes { dropLowest() }
    }

    /// Levels currently held, lowest first (for tests and status).
    var levelsHeld: ClosedRange<Int>? { counts.isEmpty ? nil : lowest...(lowest + counts.count - 1) }

    private mutating func dropLowest() {
        guard !counts.isEmpty else { return }
        bytes -= Int(counts[0]) * 32
        chunks.removeFirst()
        counts.removeFirst()
        lowest += 1
    }
}
