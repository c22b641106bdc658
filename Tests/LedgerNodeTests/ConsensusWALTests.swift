import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import XCTest

final class ConsensusWALTests: XCTestCase {
    /// Only a missing safety state means there is none: one that cannot be read stops the node
    /// from starting (it used to start with no lock in round 0, free to sign twice).
    func testAnUnreadableSafetyStateIsAnErrorAndAMissingOneIsNone() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let wal = try ConsensusWAL(directory: directory)
        XCTAssertNil(try wal.load(limits: Limits()).0)
        // A path that exists and cannot be read as a file (the same as EIO or EACCES for the read).
        try FileManager.default.createDirectory(atPath: directory + "/safety-state", withIntermediateDirectories: false)
        XCTAssertThrowsError(try ConsensusWAL(directory: directory).load(limits: Limits())) { error in
            XCTAssertTrue("\(error)".contains("cannot read the consensus safety state") && "\(error)".contains("refusing to start"), "\(error)")
        }
        // A state that cannot even be looked up (stat fails with anything but ENOENT: ENOTDIR here,
        // EIO or ESTALE elsewhere) is not a missing one either (found in review, 2026-12-06: it was
        // taken for missing, and the saved blocks deleted).
        let nested = try ConsensusWAL(directory: directory + "/nested/wal")
        try FileManager.default.removeItem(atPath: nested.directory)
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: nested.directory))
        XCTAssertThrowsError(try nested.load(limits: Limits())) { error in
            XCTAssertTrue("\(error)".contains("cannot look up the consensus safety state") && "\(error)".contains("Not a directory"), "\(error)")
        }
        XCTAssertThrowsError(try DurableFile.exists(nested.directory + "/safety-state"))
        XCTAssertFalse(try DurableFile.exists(directory + "/nested/none"))
        // Missing parents are created, each one's name made durable; a second call creates nothing.
        XCTAssertTrue(try DurableFile.createDirectories(directory + "/a/b/c"))
        XCTAssertTrue(try DurableFile.exists(directory + "/a/b/c"))
        XCTAssertFalse(try DurableFile.createDirectories(directory + "/a/b/c"))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: directory + "/a/b")[.posixPermissions] as? Int)
        XCTAssertEqual(mode & 0o777, 0o700, "parents are private too")
        // A directory that cannot be made is named with the system's reason, in words (a
        // read-only file system gave a Foundation error dump; found by black-box testing). A name
        // too long for the file system stands in for it here, as root may write anywhere.
        let long = directory + "/" + String(repeating: "x", count: 300)
        XCTAssertThrowsError(try DurableFile.createDirectories(long + "/d")) {
            XCTAssertTrue("\($0)".hasPrefix("cannot "), "\($0)")
            XCTAssertTrue("\($0)".contains("File name too long"), "\($0)")
        }
    }

    /// The rename of the safety state is made durable by syncing its directory; a directory that
    /// cannot be opened for that is an error for the caller, not a silent success.
    func testDirectorySyncFailureIsAnError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/safety-state"
        try ConsensusWAL.writeDurably([1, 2, 3], to: path, directory: directory)
        XCTAssertEqual(FileManager.default.contents(atPath: path).map(Array.init), [1, 2, 3])
        let missing = directory + "/no-such-directory"
        XCTAssertThrowsError(try ConsensusWAL.writeDurably([4, 5, 6], to: path, directory: missing)) { error in
            XCTAssertTrue("\(error)".contains(missing), "the error does not name the directory: \(error)")
        }
    }

    /// A locked block is saved without a checksum over its megabytes: it is checked against its
    /// own hash when read back. A torn file, altered transactions or a swapped envelope stop the
    /// node from starting; a block file in the earlier checksummed format is still read.
    func testSavedBlocksAreCheckedAgainstTheirHashWhenRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let chain = try OneValidator()
        let genesis = chain.genesis
        let block = try chain.block(count: 20, subjects: 5, seed: 3)
        let submissions = block.submissions
        var state = SafetyState(height: 1)
        state.lockedRound = 0; state.lockedHash = block.hash

        let wal = try ConsensusWAL(directory: directory)
        try wal.save(state) { $0 == block.hash ? block : nil }
        let path = wal.blockPath(block.hash)
        let saved = try XCTUnwrap(FileManager.default.contents(atPath: path).map(Array.init))
        XCTAssertTrue(saved.starts(with: ConsensusWAL.blockMagic))
        XCTAssertEqual(saved.count, ConsensusWAL.blockMagic.count + block.encodedSize, "a block file is its encoding, nothing more")

        func load() throws -> [Hash: CandidateBlock] { try ConsensusWAL(directory: directory).load(limits: genesis.limits).1 }
        let loaded = try XCTUnwrap(try load()[block.hash])
        XCTAssertEqual(loaded.submissions.map(\.transaction.id), submissions.map(\.transaction.id))
        XCTAssertEqual(loaded.submissions.map { $0.envelope?.hash }, submissions.map { $0.envelope?.hash })

        func refused(_ bytes: [UInt8], _ expected: String, line: UInt = #line) {
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            XCTAssertThrowsError(try load(), line: line) { error in
                XCTAssertTrue("\(error)".contains(path) && "\(error)".contains(expected), "\(error)", line: line)
            }
        }
        refused(Array(saved.dropLast(100)), "not a whole block")
        for offset in [saved.count / 3, saved.count / 2, saved.count - 10] {
            var altered = saved
            altered[offset] ^= 0x01
            refused(altered, "corruption")
        }
        var swapped = submissions
        swapped[0] = Submission(transaction: submissions[0].transaction, envelope: submissions[1].envelope)
        refused(ConsensusWAL.encodeBlock(CandidateBlock(header: block.header, submissions: swapped)), "envelope")

        // The earlier format: magic, length, encoded block, SHA-256 checksum.
        var w = ByteWriter()
        block.encode(&w)
        _ = FileManager.default.createFile(atPath: path, contents: Data(ConsensusWAL.wrap(w.bytes)))
        XCTAssertEqual(try load()[block.hash]?.submissions.map(\.transaction.id), submissions.map(\.transaction.id))
    }

    /// A crash between writing a new locked block and removing the old one (or mid-write) left
    /// files behind that no later run removed. Loading the state now removes every block file it
    /// does not name and every unfinished temporary file, and keeps what it names and anything
    /// that is not its own.
    func testLoadRemovesWhatACrashLeftBehind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let chain = try OneValidator()
        let genesis = chain.genesis
        func block(_ seed: UInt64) throws -> CandidateBlock { try chain.block(count: 3, subjects: 2, seed: seed) }
        let locked = try block(1), valid = try block(2), stale = try block(3)
        var state = SafetyState(height: 1)
        state.lockedRound = 0; state.lockedHash = locked.hash
        state.validRound = 1; state.validHash = valid.hash
        let wal = try ConsensusWAL(directory: directory)
        try wal.save(state) { hash in [locked, valid].first { $0.hash == hash } }

        // What a crash leaves: a block written for a state whose rename never happened, and the
        // temporary files of writes cut short.
        let fm = FileManager.default
        for (name, bytes) in [(wal.blockPath(stale.hash), ConsensusWAL.encodeBlock(stale)),
                              (directory + "/safety-state.tmp", [1, 2, 3]),
                              (wal.blockPath(stale.hash) + ".tmp", [4, 5]),
                              (directory + "/notes.txt", Array("an operator's file".utf8)),
                              (directory + "/block-not-a-hash", [6]),
                              (directory + "/block-notes.tmp", [7])] {
            XCTAssertTrue(fm.createFile(atPath: name, contents: Data(bytes)))
        }
        let reopened = try ConsensusWAL(directory: directory)
        let (loaded, blocks) = try reopened.load(limits: genesis.limits)
        XCTAssertEqual(loaded, state)
        XCTAssertEqual(Set(blocks.keys), [locked.hash, valid.hash])
        XCTAssertEqual(reopened.leftoversRemoved, ["block-" + stale.hash.hexString, "block-" + stale.hash.hexString + ".tmp", "safety-state.tmp"])
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: directory)),
                       ["safety-state", "block-" + locked.hash.hexString, "block-" + valid.hash.hexString, "notes.txt", "block-not-a-hash",
                        "block-notes.tmp"])

        // A block the state names is kept even when it cannot be read now (here a directory in
        // its place, as a file without read permission would be for a non-root node).
        let lockedPath = wal.blockPath(locked.hash)
        try fm.removeItem(atPath: lockedPath)
        try fm.createDirectory(atPath: lockedPath, withIntermediateDirectories: false)
        let again = try ConsensusWAL(directory: directory)
        XCTAssertEqual(Set(try again.load(limits: genesis.limits).1.keys), [valid.hash])
        XCTAssertEqual(again.leftoversRemoved, [])
        XCTAssertTrue(fm.fileExists(atPath: lockedPath))
        try fm.removeItem(atPath: lockedPath)

        // Moving the lock on removes the old block as before; a state that names no block keeps none.
        state = SafetyState(height: 2)
        try reopened.save(state) { _ in nil }
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: directory)), ["safety-state", "notes.txt", "block-not-a-hash", "block-notes.tmp"])

        // Without a state, no block file can be needed.
        try fm.removeItem(atPath: directory + "/safety-state")
        XCTAssertTrue(fm.createFile(atPath: wal.blockPath(stale.hash), contents: Data(ConsensusWAL.encodeBlock(stale))))
        let fresh = try ConsensusWAL(directory: directory)
        XCTAssertNil(try fresh.load(limits: genesis.limits).0)
        XCTAssertEqual(fresh.leftoversRemoved, ["block-" + stale.hash.hexString])
    }
}

/// A one-validator chain whose height-1 blocks of demo records the WAL tests save and load.
private struct OneValidator {
    let keys = MemberSecretKeys(memberID: "val-a")
    let genesis: Genesis

    init() throws {
        let member = Member(id: "val-a", name: "val-a", roles: [.validator, .custodian, .governmentIssuer],
                            signingKey: keys.signing.publicKey, encryptionKey: keys.encryption.publicKey)
        genesis = try Genesis(bytes: try Genesis.render(chainID: "wal-test", genesisTime: "2026-11-21T00:00:00Z",
                                                        members: [member], limits: Limits()))
    }

    /// `count` signed demo records about `subjects` subjects (nonces from `seed` × 100 + 1), as a block at height 1.
    func block(count: Int, subjects: Int, seed: UInt64) throws -> CandidateBlock {
        var nonce = seed * 100
        let submissions = try DemoRecords.requests(count: count, subjects: subjects, seed: seed).map { r -> Submission in
            nonce += 1
            return try r.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: 1)
        }
        let built = BlockBuilder.build(chainID: genesis.chainID, height: 1, timestampMillis: 1, previousHash: genesis.hash,
                                       frontier: MerkleFrontier(), transactions: submissions.map(\.transaction), proposer: "val-a")
        return CandidateBlock(header: built.header, submissions: submissions)
    }
}
