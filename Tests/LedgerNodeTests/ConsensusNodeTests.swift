import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import LedgerStore
import Logging
import XCTest

/// One `ConsensusNode` in this process, driven with hand-made peer messages signed by the other
/// validators' keys (which the test holds). Its P2P transport listens on loopback with no peers.
final class ConsensusNodeTests: XCTestCase {
    /// Four validators; val-a also issues and keeps government records (it signs the transactions).
    final class Fixture {
        static let ids = ["val-a", "val-b", "val-c", "val-d"]
        let keys: [String: MemberSecretKeys]
        let genesis: Genesis
        let directory: String
        let store: ChainStore
        let node: ConsensusNode
        var nonce: UInt64 = 0

        init(as me: String, limits: Limits = Limits()) async throws {
            var keys: [String: MemberSecretKeys] = [:]
            for id in Self.ids { keys[id] = MemberSecretKeys(memberID: id) }
            let members = Self.ids.map { id in
                Member(id: id, name: id, roles: id == "val-a" ? [.validator, .custodian, .governmentIssuer] : [.validator],
                       signingKey: keys[id]!.signing.publicKey, encryptionKey: keys[id]!.encryption.publicKey)
            }
            self.keys = keys
            genesis = try Genesis(bytes: try Genesis.render(chainID: "consensus-node-test", genesisTime: "2026-11-21T00:00:00Z",
                                                            members: members, limits: limits))
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("consensus-node-\(UUID())").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            store = try ChainStore.create(path: directory + "/ledger", genesis: genesis)
            var options = ConsensusNode.Options()
            options.autoScore = false
            // No timeout fires during a test: the machine moves only on the messages it is given.
            options.timeouts.propose = 600_000
            options.timeouts.prevote = 600_000
            options.timeouts.precommit = 600_000
            options.timeouts.rebroadcast = 600_000
            var logger = Logger(label: "consensus-node-test")
            logger.logLevel = .critical
            node = try ConsensusNode(store: store, keys: keys[me]!, options: options, walDirectory: directory + "/consensus",
                                     clock: { UInt64(Date().timeIntervalSince1970 * 1000) }, logger: logger)
            _ = try await node.start(listenHost: "127.0.0.1", listenPort: 0, peers: [])
        }

        func close() async {
            await node.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }

        /// Valid attestations signed by val-a, each with its payload envelope.
        func submissions(_ count: Int, seed: UInt64) throws -> [Submission] {
            try DemoRecords.requests(count: count, subjects: 5, seed: seed).map { r in
                nonce += 1
                return try r.build(genesis: genesis, keys: keys["val-a"]!, nonce: nonce, issuedAtMillis: 1)
            }
        }

        /// A block on the node's head holding `submissions`, as an honest proposer builds it.
        func block(_ submissions: [Submission], proposer: String, previousHash: Hash? = nil) -> CandidateBlock {
            let head = store.head
            let built = BlockBuilder.build(chainID: genesis.chainID, height: head.height + 1,
                                           timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000),
                                           previousHash: previousHash ?? head.blockHash, frontier: store.frontier,
                                           transactions: submissions.map(\.transaction), proposer: proposer)
            return CandidateBlock(header: built.header, submissions: submissions)
        }

        func proposal(_ block: CandidateBlock, round: UInt32 = 0, by proposer: String) -> Proposal {
            let bytes = Proposal.signingBytes(chainID: genesis.chainID, height: block.header.height, round: round, polRound: -1,
                                              blockHash: block.hash, proposer: proposer)
            return Proposal(height: block.header.height, round: round, polRound: -1, blockHash: block.hash, proposer: proposer,
                            signature: keys[proposer]!.signing.signature(for: bytes))
        }

        func vote(_ type: VoteType, height: UInt64, round: UInt32, hash: Hash?, by voter: String) -> Vote {
            let bytes = Vote.signingBytes(chainID: genesis.chainID, type: type, height: height, round: round, blockHash: hash, voter: voter)
            return Vote(type: type, height: height, round: round, blockHash: hash, voter: voter,
                        signature: keys[voter]!.signing.signature(for: bytes))
        }

        /// Delivers a message as if `peer` had sent it, and returns the machine's state after it.
        @discardableResult
        func deliver(_ message: NetMessage, from peer: String) -> SafetyState {
            node.queue.sync {
                node.dispatch(message, from: peer)
                return node.machine.state
            }
        }

        var state: SafetyState { node.queue.sync { node.machine.state } }
    }

    /// Copies of `block` under its genuine header with altered content: envelopes swapped between
    /// two transactions, an envelope stripped, a transaction replaced by another valid one, and
    /// a transaction dropped.
    func tamperedCopies(of block: CandidateBlock, other: Submission) -> [(String, CandidateBlock)] {
        var subs = block.submissions
        let swapped = [Submission(transaction: subs[0].transaction, envelope: subs[1].envelope),
                       Submission(transaction: subs[1].transaction, envelope: subs[0].envelope)] + subs[2...]
        var stripped = subs
        stripped[0] = Submission(transaction: subs[0].transaction, envelope: nil)
        var replaced = subs
        replaced[1] = other
        subs.removeLast()
        return [("envelopes swapped", CandidateBlock(header: block.header, submissions: swapped)),
                ("envelope stripped", CandidateBlock(header: block.header, submissions: stripped)),
                ("transaction replaced", CandidateBlock(header: block.header, submissions: replaced)),
                ("transaction dropped", CandidateBlock(header: block.header, submissions: subs))]
    }

    /// Proposer of (1, 0) is val-b (validators sorted, `(h + r) mod n`); the node under test is val-c.
    func testTamperedCopyOfAProposalDoesNotMakeTheHonestBlockInvalid() async throws {
        let f = try await Fixture(as: "val-c")
        let subs = try f.submissions(4, seed: 1)
        let genuine = f.block(subs, proposer: "val-b")
        let p = f.proposal(genuine, by: "val-b")
        let copies = tamperedCopies(of: genuine, other: try f.submissions(1, seed: 2)[0])
        for (what, copy) in copies {
            XCTAssertEqual(copy.hash, genuine.hash, "\(what): the copy keeps the signed header")
            XCTAssertNotNil(ConsensusNode.contentMismatch(copy), "\(what) is not recognised as tampered")
        }
        XCTAssertNil(ConsensusNode.contentMismatch(genuine))
        // val-d forwards the genuine signed proposal with one envelope altered, before val-b's own copy arrives.
        var state = f.deliver(.proposal(p, copies[0].1), from: "val-d")
        XCTAssertEqual(state.step, .propose)
        XCTAssertNil(state.prevote, "a tampered copy made the node vote: \(String(describing: state.prevote))")
        for (_, copy) in copies.dropFirst() { state = f.deliver(.proposal(p, copy), from: "val-d") }
        XCTAssertNil(state.prevote)
        state = f.deliver(.proposal(p, genuine), from: "val-b")
        XCTAssertEqual(state.prevote?.blockHash, genuine.hash, "the genuine block was not prevoted after tampered copies")
        await f.close()
    }

    /// The content of a proposal received without it is fetched; a tampered answer leaves it
    /// awaited, and the genuine answer is prevoted.
    func testTamperedFetchReplyIsDroppedAndTheGenuineContentIsStillAccepted() async throws {
        let f = try await Fixture(as: "val-c")
        let genuine = f.block(try f.submissions(4, seed: 3), proposer: "val-b")
        let p = f.proposal(genuine, by: "val-b")
        var state = f.deliver(.proposal(p, nil), from: "val-b")
        XCTAssertNil(state.prevote)
        XCTAssertTrue(f.node.queue.sync { f.node.awaitingContent.contains(genuine.hash) })
        for (what, copy) in tamperedCopies(of: genuine, other: try f.submissions(1, seed: 4)[0]) {
            state = f.deliver(.blockContent(copy), from: "val-d")
            XCTAssertNil(state.prevote, "\(what): \(String(describing: state.prevote))")
            XCTAssertTrue(f.node.queue.sync { f.node.awaitingContent.contains(genuine.hash) }, "\(what): the block is no longer fetched")
        }
        state = f.deliver(.blockContent(genuine), from: "val-a")
        XCTAssertEqual(state.prevote?.blockHash, genuine.hash)
        await f.close()
    }

    /// Content that does match its header is still judged: an invalid block is prevoted nil.
    func testInvalidBlockMatchingItsHeaderIsStillRefused() async throws {
        let f = try await Fixture(as: "val-c")
        let invalid = f.block(try f.submissions(2, seed: 5), proposer: "val-b", previousHash: Hashes.zero)
        XCTAssertNil(ConsensusNode.contentMismatch(invalid))
        let state = f.deliver(.proposal(f.proposal(invalid, by: "val-b"), invalid), from: "val-b")
        XCTAssertEqual(state.step, .prevote)
        XCTAssertNotNil(state.prevote)
        XCTAssertNil(state.prevote?.blockHash, "a block that does not extend the head was prevoted")
        await f.close()
    }
}
