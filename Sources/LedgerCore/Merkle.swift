import LedgerCrypto

/// Where the Merkle algorithms read stored hashes from. A store keeps the hash of every
/// complete (perfect) subtree: level 0 holds leaf hashes, level k the subtree covering
/// leaves [index·2^k, (index+1)·2^k). Proofs read O(log n) of them; nothing loads the log.
public protocol MerkleHashSource {
    func nodeHash(level: Int, index: UInt64) throws -> Hash
}

/// RFC 9162 (RFC 6962) Merkle tree hashing, proofs and proof verification.
public enum Merkle {
    public static func leafHash(_ entry: [UInt8]) -> Hash { SHA256.hash(prefix: 0x00, entry) }
    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash { SHA256.hash(prefix: 0x01, left, right) }
    /// MTH({}) = SHA-256 of the empty string.
    public static let emptyRoot: Hash = SHA256.hash([])

    /// The largest power of two strictly less than n (n > 1).
    @inline(__always)
    static func splitPoint(_ n: UInt64) -> UInt64 {
        precondition(n > 1)
        return UInt64(1) << UInt64(63 - (n - 1).leadingZeroBitCount)
    }

    /// MTH(D[start : start+count]) from stored perfect subtrees.
    public static func subtreeHash(_ source: some MerkleHashSource, start: UInt64, count: UInt64) throws -> Hash {
        precondition(count > 0)
        if count & (count - 1) == 0 && start % count == 0 {
            return try source.nodeHash(level: count.trailingZeroBitCount, index: start / count)
        }
        let k = splitPoint(count)
        return nodeHash(try subtreeHash(source, start: start, count: k),
                        try subtreeHash(source, start: start + k, count: count - k))
    }

    public static func root(_ source: some MerkleHashSource, size: UInt64) throws -> Hash {
        size == 0 ? emptyRoot : try subtreeHash(source, start: 0, count: size)
    }

    /// PATH(m, D[n]) of RFC 9162 §2.1.3.1, ordered from the leaf upwards.
    public static func inclusionProof(_ source: some MerkleHashSource, index: UInt64, size: UInt64) throws -> [Hash] {
        guard index < size else {
            throw LedgerError(.invalidProof, "leaf index \(index) is not below tree size \(size)")
        }
        var path: [Hash] = []
        try inclusionPath(source, index: index, start: 0, count: size, into: &path)
        return path
    }

    private static func inclusionPath(_ source: some MerkleHashSource, index: UInt64, start: UInt64, count: UInt64,
                                      into path: inout [Hash]) throws {
        if count <= 1 { return }
        let k = splitPoint(count)
        if index < k {
            try inclusionPath(source, index: index, start: start, count: k, into: &path)
            path.append(try subtreeHash(source, start: start + k, count: count - k))
        } else {
            try inclusionPath(source, index: index - k, start: start + k, count: count - k, into: &path)
            path.append(try subtreeHash(source, start: start, count: k))
        }
    }

    /// PROOF(m, D[n]) of RFC 9162 §2.1.4.1.
    public static func consistencyProof(_ source: some MerkleHashSource, oldSize: UInt64, newSize: UInt64) throws -> [Hash] {
        guard oldSize <= newSize else {
            throw LedgerError(.invalidProof, "old size \(oldSize) is larger than new size \(newSize)")
        }
        if oldSize == 0 || oldSize == newSize { return [] }
        var proof: [Hash] = []
        try subproof(source, m: oldSize, start: 0, count: newSize, complete: true, into: &proof)
        return proof
    }

    private static func subproof(_ source: some MerkleHashSource, m: UInt64, start: UInt64, count: UInt64,
                                 complete: Bool, into proof: inout [Hash]) throws {
        if m == count {
            if !complete { proof.append(try subtreeHash(source, start: start, count: count)) }
            return
        }
        let k = splitPoint(count)
        if m <= k {
            try subproof(source, m: m, start: start, count: k, complete: complete, into: &proof)
            proof.append(try subtreeHash(source, start: start + k, count: count - k))
        } else {
            try subproof(source, m: m - k, start: start + k, count: count - k, complete: false, into: &proof)
            proof.append(try subtreeHash(source, start: start, count: k))
        }
    }

    /// The hashes of a proof written as base64 strings (receipts), naming the first entry that is
    /// not a base64 SHA-256 hash.
    public static func proofHashes(base64 entries: [String], what: String = "inclusion proof") throws -> [Hash] {
        try entries.enumerated().map { k, entry in
            guard let h = [UInt8](base64: entry), h.count == 32 else {
                throw LedgerError(.malformed, "\(what) entry \(k) \"\(entry.prefix(64))\" is not a base64 SHA-256 hash")
            }
            return h
        }
    }

    /// RFC 9162 §2.1.3.2: does `proof` show `leafHash` at `index` in the tree of `size` with `root`?
    public static func verifyInclusion(leafHash: Hash, index: UInt64, size: UInt64, proof: [Hash], root: Hash) -> Bool {
        guard index < size else { return false }
        var fn = index, sn = size - 1
        var r = leafHash
        for p in proof {
            guard p.count == 32, sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1; sn >>= 1
        }
        return sn == 0 && ConstantTime.equals(r, root)
    }

    /// RFC 9162 §2.1.4.2: does `proof` show the tree of `oldSize` with `oldRoot` is a prefix of
    /// the tree of `newSize` with `newRoot`?
    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: Hash, newRoot: Hash, proof: [Hash]) -> Bool {
        guard oldSize <= newSize else { return false }
        if oldSize == newSize { return proof.isEmpty && ConstantTime.equals(oldRoot, newRoot) }
        // The empty tree is a prefix of every tree, but only under the empty tree's root.
        if oldSize == 0 { return proof.isEmpty && ConstantTime.equals(oldRoot, emptyRoot) }
        guard !proof.isEmpty, proof.allSatisfy({ $0.count == 32 }) else { return false }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1, sn = newSize - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        var fr = path[0], sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1; sn >>= 1
        }
        return sn == 0 && ConstantTime.equals(fr, oldRoot) && ConstantTime.equals(sr, newRoot)
    }
}

/// The right edge of a growing tree: one pending perfect subtree per set bit of the size.
/// Appending a leaf yields the newly completed subtree hashes that a store must keep.
public struct MerkleFrontier: Sendable, Equatable {
    public private(set) var size: UInt64 = 0
    /// `hashes[level]` is the perfect subtree of 2^level leaves pending on the right edge.
    public private(set) var hashes: [Hash?] = []

    public init() {}

    /// Rebuilds the frontier of a tree of `size` leaves from stored subtrees.
    public init(size: UInt64, source: some MerkleHashSource) throws {
        self.size = size
        for level in 0..<64 where size >> UInt64(level) & 1 == 1 {
            while hashes.count <= level { hashes.append(nil) }
            hashes[level] = try source.nodeHash(level: level, index: (size >> UInt64(level)) - 1)
        }
    }

    public struct StoredNode: Sendable, Equatable {
        public let level: Int
        public let index: UInt64
        public let hash: Hash
    }

    /// Appends a leaf hash; returns every node (the leaf and completed parents) to store.
    @discardableResult
    public mutating func append(leafHash: Hash) -> [StoredNode] {
        var nodes = [StoredNode(level: 0, index: size, hash: leafHash)]
        var node = leafHash
        var level = 0
        var index = size
        while index & 1 == 1 {
            node = Merkle.nodeHash(hashes[level]!, node)
            hashes[level] = nil
            level += 1
            index >>= 1
            nodes.append(StoredNode(level: level, index: index, hash: node))
        }
        while hashes.count <= level { hashes.append(nil) }
        hashes[level] = node
        size += 1
        return nodes
    }

    public var root: Hash {
        var r: Hash? = nil
        for h in hashes {
            guard let h else { continue }
            r = r.map { Merkle.nodeHash(h, $0) } ?? h
        }
        return r ?? Merkle.emptyRoot
    }
}

/// A whole tree in memory: for block transaction roots, tests and small logs.
public struct InMemoryMerkleTree: MerkleHashSource {
    private var levels: [[Hash]] = [[]]
    public init() {}
    public init(leafHashes: [Hash]) { for h in leafHashes { append(leafHash: h) } }

    public var size: UInt64 { UInt64(levels[0].count) }

    public mutating func append(leafHash: Hash) {
        levels[0].append(leafHash)
        var level = 0
        var index = levels[0].count - 1
        while index & 1 == 1 {
            let parent = Merkle.nodeHash(levels[level][index - 1], levels[level][index])
            level += 1
            index >>= 1
            if levels.count <= level { levels.append([]) }
            levels[level].append(parent)
        }
    }

    public func nodeHash(level: Int, index: UInt64) throws -> Hash {
        guard level < levels.count, index < UInt64(levels[level].count) else {
            throw LedgerError(.notFound, "no Merkle node at level \(level) index \(index)")
        }
        return levels[level][Int(index)]
    }

    public var root: Hash { (try? Merkle.root(self, size: size)) ?? Merkle.emptyRoot }
}
