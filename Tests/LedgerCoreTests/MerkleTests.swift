import LedgerCore
import LedgerCrypto
import XCTest

/// RFC 6962 / RFC 9162 vectors as published in transparency-dev/merkle (testonly/constants.go,
/// proof/verify_test.go) and certificate-transparency.
final class MerkleTests: XCTestCase {
    let leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .map { [UInt8](hex: $0)! }
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    func tree(_ n: Int) -> InMemoryMerkleTree { InMemoryMerkleTree(leafHashes: leaves.prefix(n).map(Merkle.leafHash)) }

    func testEmptyRoot() {
        XCTAssertEqual(Merkle.emptyRoot.hexString, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(MerkleFrontier().root, Merkle.emptyRoot)
    }

    func testRootsForSizesOneToEight() throws {
        var frontier = MerkleFrontier()
        for n in 1...8 {
            frontier.append(leafHash: Merkle.leafHash(leaves[n - 1]))
            XCTAssertEqual(try Merkle.root(tree(n), size: UInt64(n)).hexString, roots[n - 1], "size \(n)")
            XCTAssertEqual(frontier.root.hexString, roots[n - 1], "frontier size \(n)")
        }
    }

    func testPublishedInclusionProofs() throws {
        let cases: [(index: UInt64, size: UInt64, proof: [String])] = [
            (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
            (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
            (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
            (0, 1, []),
        ]
        for c in cases {
            let t = tree(Int(c.size))
            let proof = try Merkle.inclusionProof(t, index: c.index, size: c.size)
            XCTAssertEqual(proof.map(\.hexString), c.proof, "leaf \(c.index) size \(c.size)")
            let root = [UInt8](hex: roots[Int(c.size) - 1])!
            XCTAssertTrue(Merkle.verifyInclusion(leafHash: Merkle.leafHash(leaves[Int(c.index)]), index: c.index,
                                                 size: c.size, proof: proof, root: root))
        }
    }

    func testPublishedConsistencyProofs() throws {
        let cases: [(old: UInt64, new: UInt64, proof: [String])] = [
            (1, 1, []),
            (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
            (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
            (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
            (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        ]
        let full = tree(8)
        for c in cases {
            let proof = try Merkle.consistencyProof(full, oldSize: c.old, newSize: c.new)
            XCTAssertEqual(proof.map(\.hexString), c.proof, "\(c.old) → \(c.new)")
            XCTAssertTrue(Merkle.verifyConsistency(oldSize: c.old, newSize: c.new, oldRoot: [UInt8](hex: roots[Int(c.old) - 1])!,
                                                   newRoot: [UInt8](hex: roots[Int(c.new) - 1])!, proof: proof))
        }
    }

    /// Every proof for every leaf and size pair up to 70 verifies; any altered hash, index or root fails.
    func testExhaustiveSmallTreesAndTampering() throws {
        let hashes = (0..<70).map { Merkle.leafHash([UInt8(truncatingIfNeeded: $0), 7]) }
        let t = InMemoryMerkleTree(leafHashes: hashes)
        var frontier = MerkleFrontier()
        var rootsBySize: [Hash] = [Merkle.emptyRoot]
        for h in hashes { frontier.append(leafHash: h); rootsBySize.append(frontier.root) }
        for size in UInt64(1)...70 {
            XCTAssertEqual(try Merkle.root(t, size: size), rootsBySize[Int(size)])
            for index in 0..<size {
                let proof = try Merkle.inclusionProof(t, index: index, size: size)
                XCTAssertTrue(Merkle.verifyInclusion(leafHash: hashes[Int(index)], index: index, size: size, proof: proof, root: rootsBySize[Int(size)]))
                if !proof.isEmpty {
                    var bad = proof
                    bad[bad.count / 2][0] ^= 1
                    XCTAssertFalse(Merkle.verifyInclusion(leafHash: hashes[Int(index)], index: index, size: size, proof: bad, root: rootsBySize[Int(size)]))
                }
                XCTAssertFalse(Merkle.verifyInclusion(leafHash: hashes[Int(index)], index: index, size: size, proof: proof + [Hashes.zero], root: rootsBySize[Int(size)]))
                if size > 1 {
                    XCTAssertFalse(Merkle.verifyInclusion(leafHash: hashes[Int(index)], index: (index + 1) % size, size: size, proof: proof, root: rootsBySize[Int(size)]))
                }
            }
            for old in 0...size {
                let proof = try Merkle.consistencyProof(t, oldSize: old, newSize: size)
                XCTAssertTrue(Merkle.verifyConsistency(oldSize: old, newSize: size, oldRoot: rootsBySize[Int(old)], newRoot: rootsBySize[Int(size)], proof: proof), "\(old) → \(size)")
                if old > 0 && old < size {
                    var rewritten = rootsBySize[Int(old)]
                    rewritten[0] ^= 1
                    XCTAssertFalse(Merkle.verifyConsistency(oldSize: old, newSize: size, oldRoot: rewritten, newRoot: rootsBySize[Int(size)], proof: proof))
                    var bad = proof
                    bad[0][5] ^= 1
                    XCTAssertFalse(Merkle.verifyConsistency(oldSize: old, newSize: size, oldRoot: rootsBySize[Int(old)], newRoot: rootsBySize[Int(size)], proof: bad))
                }
            }
        }
        XCTAssertFalse(Merkle.verifyConsistency(oldSize: 2, newSize: 1, oldRoot: rootsBySize[2], newRoot: rootsBySize[1], proof: []))
        XCTAssertFalse(Merkle.verifyConsistency(oldSize: 1, newSize: 2, oldRoot: rootsBySize[1], newRoot: rootsBySize[2], proof: []))
        XCTAssertThrowsError(try Merkle.inclusionProof(t, index: 5, size: 5))
    }

    func testFrontierRestoresFromStoredNodes() throws {
        let hashes = (0..<37).map { Merkle.leafHash([UInt8($0)]) }
        let t = InMemoryMerkleTree(leafHashes: hashes)
        for size in UInt64(0)...37 {
            var grown = MerkleFrontier()
            for h in hashes.prefix(Int(size)) { grown.append(leafHash: h) }
            let restored = try MerkleFrontier(size: size, source: t)
            XCTAssertEqual(restored.root, grown.root)
            XCTAssertEqual(restored, grown)
        }
    }
}
