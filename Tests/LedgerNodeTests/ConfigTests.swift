import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
import Logging
@testable import LedgerNode
import P2P
import XCTest

/// A node's configuration file: a misspelt field or a timeout out of range is refused, naming it,
/// instead of the node running with a default.
final class ConfigTests: XCTestCase {
    func load(_ json: String) throws -> NodeConfig {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("node-\(UUID()).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try NodeConfig.load(path: path).0
    }

    let base = #""genesis": "g.json", "key": "k.key", "data_dir": "d", "http": "127.0.0.1:8601", "p2p": "127.0.0.1:26601""#

    func testUnknownFieldsAndTimeoutsOutOfRangeAreRefused() throws {
        XCTAssertNoThrow(try load("{\(base), \"timeouts\": {\"propose_ms\": 3000, \"rebroadcast_ms\": 1}, \"peers\": {}}"))
        // Taken, but a timeout under 50 ms is warned about at start, naming it.
        XCTAssertEqual(try load("{\(base), \"timeouts\": {\"propose_ms\": 3000, \"rebroadcast_ms\": 1}}").warnings,
                       ["timeouts.rebroadcast_ms is 1 ms, under 50 ms: rounds end before proposals and votes cross a busy network, so heights "
                        + "take many rounds, and each rebroadcast sends this validator's votes again (the default is 1000 ms)"])
        XCTAssertEqual(try load("{\(base), \"timeouts\": {\"propose_ms\": 50, \"prevote_ms\": 49, \"precommit_ms\": 2}}").warnings.map { $0.prefix(24) },
                       ["timeouts.prevote_ms is 4", "timeouts.precommit_ms is"])
        XCTAssertEqual(try load("{\(base)}").warnings, [])
        XCTAssertEqual(try load("{\(base), \"member_http\": \"0.0.0.0:8611\"}").member_http, "0.0.0.0:8611")
        XCTAssertEqual(try load("{\(base), \"commit_wait_seconds\": 20}").commit_wait_seconds, 20)
        // IPv6 in brackets, as URLs write it: the host comes back without them (they were taken
        // as part of a host name, and the address failed only when dialled or bound).
        XCTAssertNoThrow(try load("{\(base), \"peers\": {\"bank-b\": \"[::1]:26604\"}}"))
        XCTAssertEqual(Genesis.listenHostAndPort("[::1]:26604")?.host, "::1")
        XCTAssertEqual(Genesis.listenHostAndPort("[fe80::1]:0")?.port, 0)
        XCTAssertEqual(Genesis.listenHostAndPort("127.0.0.1:8601")?.host, "127.0.0.1")
        let cases: [(String, String)] = [
            ("{\(base), \"peer\": {}}", "unknown field \"peer\""),
            ("{\(base), \"timeouts\": {\"propose\": 3000}}", "unknown field timeouts.propose"),
            ("{\(base), \"timeouts\": {\"rebroadcast_ms\": 0}}", "timeouts.rebroadcast_ms is 0"),
            // Negative: named with the range (it was "not valid JSON"; found by black-box testing).
            ("{\(base), \"timeouts\": {\"propose_ms\": -5}}", "timeouts.propose_ms is -5; it must be 1-600000"),
            // A listener whose host does not resolve is named by its field (a label over 63
            // characters: refused without asking DNS, so the test needs no network).
            ("{\(base), \"member_http\": \"\(String(repeating: "a", count: 64)).example:18843\"}", "member_http: cannot resolve host \(String(repeating: "a", count: 64)).example ("),
            // The genesis file given as the config.
            (#"{"chain_id": "x", "members": [], "genesis_time": "2026-11-21T00:00:00Z"}"#, "is a genesis file (it has chain_id and members), not a node's config"),
            ("{\(base), \"timeouts\": {\"precommit_ms\": 18446744073709551615}}", "number beyond ±10^15 (line 1, column"),
            ("{\(base), \"timeouts\": {\"propose_ms\": 1e20}}", "1e20: numbers must be integers (a config file's numbers are whole numbers)"),
            ("{\(base), \"commit_wait_seconds\": 0}", "commit_wait_seconds is 0; it must be 1-3600"),
            ("{\(base), \"log_level\": \"loud\"}", "log_level is \"loud\"; it must be one of trace, debug, info"),
            // Addresses (found in review, 2026-12-06: any "x:n" passed until the node tried it).
            ("{\(base), \"peers\": {\"bank-b\": \"127.0.0.1:0\"}}", "peers.bank-b must be host:port (a host without spaces or slashes, IPv6 in brackets, a port of 1-65535), got \"127.0.0.1:0\""),
            ("{\(base), \"peers\": {\"bank-b\": \"bank b.example:26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"member_http\": \"0.0.0.0:70000\"}", "member_http must be host:port"),
            ("{\(base), \"member_http\": \"0.0.0.0:+8611\"}", "member_http must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"127.0.0.1:026604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"[::1:26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"[]:26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"::1:26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"[:]:26604\"}}", "peers.bank-b must be host:port"),
            ("{\(base), \"peers\": {\"bank-b\": \"10.0.0.4:26604\", \"bank-b\": \"10.0.0.9:1\"}}", "key \"bank-b\" appears twice in one object"),
            (#"{"genesis": "g.json", "key": "k.key", "data_dir": "d", "http": "127.0.0.1:8601", "p2p": "http://127.0.0.1:26601"}"#, "p2p must be host:port"),
            (#"{"genesis": "g.json", "key": "k.key", "data_dir": "d", "http": "local host:8601", "p2p": "127.0.0.1:26601"}"#, "http must be host:port"),
            // Two of the node's own listeners on one address (found by black-box testing, 2026-12-07).
            ("{\(base), \"member_http\": \"127.0.0.1:8601\"}", "http and member_http both listen on port 8601 (127.0.0.1 and 127.0.0.1); each listener needs its own address"),
            ("{\(base), \"member_http\": \"0.0.0.0:26601\"}", "p2p and member_http both listen on port 26601"),
            // Said in words, not as a DecodingError dump (found by black-box testing).
            (#"{"genesis": "g.json", "key": "k.key", "http": "127.0.0.1:8601", "p2p": "127.0.0.1:26601"}"#, "missing field \"data_dir\""),
            // An empty path (the store went to the filesystem root; found by black-box testing).
            (#"{"genesis": "g.json", "key": "k.key", "data_dir": "", "http": "127.0.0.1:8601", "p2p": "127.0.0.1:26601"}"#, "data_dir is empty; give a path"),
            (#"{"genesis": " ", "key": "k.key", "data_dir": "d", "http": "127.0.0.1:8601", "p2p": "127.0.0.1:26601"}"#, "genesis is empty"),
            (#"{"genesis": "g.json", "key": "", "data_dir": "d", "http": "127.0.0.1:8601", "p2p": "127.0.0.1:26601"}"#, "key is empty"),
        ]
        for (json, words) in cases {
            XCTAssertThrowsError(try load(json), words) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
    }

    /// A config or genesis file is read within its limit: an endless one (here /dev/zero) is
    /// refused by name, not read into memory whole first (found in review, 2026-12-07).
    func testAnEndlessConfigOrGenesisFileIsRefusedByName() throws {
        XCTAssertThrowsError(try NodeConfig.load(path: "/dev/zero")) {
            XCTAssertTrue("\($0)".contains("/dev/zero is larger than any config file can be (over 1 MiB)"), "\($0)")
        }
        XCTAssertThrowsError(try Genesis(file: "/dev/zero")) {
            XCTAssertTrue("\($0)".contains("/dev/zero is larger than any genesis file can be (over 16 MiB)"), "\($0)")
        }
        XCTAssertThrowsError(try Genesis(file: "/nonexistent/genesis.json")) {
            XCTAssertTrue("\($0)".contains("cannot read /nonexistent/genesis.json: No such file or directory"), "\($0)")
        }
    }

    /// A data directory is one member's: a node started on it with another member's key (whose
    /// consensus state it would take for its own) is refused, naming both.
    func testADataDirectoryServesTheMemberThatFirstRanOnIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("claim-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try NetworkNode.claimDataDirectory(dir, for: "bank-a")
        XCTAssertEqual(try String(contentsOfFile: dir + "/member", encoding: .utf8), "bank-a\n")
        XCTAssertNoThrow(try NetworkNode.claimDataDirectory(dir, for: "bank-a"))
        XCTAssertThrowsError(try NetworkNode.claimDataDirectory(dir, for: "bank-b")) {
            XCTAssertTrue("\($0)".contains("data directory \(dir) is bank-a's") && "\($0)".contains("this node's key is bank-b's"), "\($0)")
        }
        // With the member file deleted, the votes in the safety state still name bank-a: another
        // member's key is refused (it claimed the directory), bank-a's own takes it back.
        var state = SafetyState(height: 7)
        state.prevote = Vote(type: .prevote, height: 7, round: 0, blockHash: nil, voter: "bank-a", signature: Array(repeating: 0, count: 64))
        try ConsensusWAL(directory: dir + "/consensus").save(state) { _ in nil }
        try FileManager.default.removeItem(atPath: dir + "/member")
        XCTAssertThrowsError(try NetworkNode.claimDataDirectory(dir, for: "bank-b")) {
            XCTAssertTrue("\($0)".contains("data directory \(dir) holds bank-a's consensus state") && "\($0)".contains("this node's key is bank-b's"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/member"), "the refused start claimed the directory")
        XCTAssertNoThrow(try NetworkNode.claimDataDirectory(dir, for: "bank-a"))
        XCTAssertEqual(try String(contentsOfFile: dir + "/member", encoding: .utf8), "bank-a\n")
    }

    /// A start refused for its listeners or its data directory makes and claims nothing there:
    /// two of its listeners that are one socket once resolved (127.1 is 127.0.0.1), a host that
    /// is not this machine's, a `ledger` that is no store, a store of another chain (which is
    /// opened to read its genesis, so RocksDB's own log inside it may move; no member file is
    /// written beside it). Each was found by black-box testing (2026-12-08) after the node had
    /// opened or made a store, joined P2P or claimed the directory.
    func testARefusedStartWritesNothingAndSaysWhatToChange() async throws {
        let net = try LocalConsortium(name: "refused-start")
        defer { try? FileManager.default.removeItem(atPath: net.root) }
        let dir = "\(net.root)/samr-330106"
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/node.json"))) as? [String: Any])
        let port = try LocalConsortium.freePort()
        func refusal(_ changes: [String: Any]) async throws -> String {
            let c = config.merging(changes) { $1 }
            try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: dir + "/bad.json"))
            do {
                try await NetworkNode.run(configPath: dir + "/bad.json", logger: Logger(label: "test"))
                XCTFail("the node started with \(changes)")
                return ""
            } catch { return "\(error)" }
        }
        var why = try await refusal(["data_dir": "d1", "p2p": "127.0.0.1:\(port)", "http": "127.1:\(port)"])
        XCTAssertTrue(why.contains("http address 127.1:\(port) is the same listening socket as p2p 127.0.0.1:\(port)"), why)
        XCTAssertTrue(why.contains("nothing was started"), why)
        why = try await refusal(["data_dir": "d1", "http": "192.0.2.1:\(port)"])
        XCTAssertTrue(why.contains("http address 192.0.2.1:\(port) cannot be listened on: 192.0.2.1 is not an address of this machine"), why)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/d1"), "a start refused for its listeners made its data directory")
        try FileManager.default.createDirectory(atPath: dir + "/d2/ledger", withIntermediateDirectories: true)
        why = try await refusal(["data_dir": "d2"])
        XCTAssertTrue(why.contains("\(dir)/d2/ledger exists but is no ledger store (a directory without RocksDB's CURRENT file)"), why)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/d2"), ["ledger"], "the refused start wrote beside it")
        _ = try DevNode.open(dataDirectory: dir + "/dev")
        let before = try FileManager.default.contentsOfDirectory(atPath: dir + "/dev").sorted()
        why = try await refusal(["data_dir": "dev"])
        XCTAssertTrue(why.contains("is not the genesis of the store in \(dir)/dev/ledger"), why)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/dev").sorted(), before, "the refused start claimed the directory")
    }

    /// `credit-node genesis` refuses a members file with a field it does not know, before anything is written.
    func testMembersFileWithAMisspeltFieldIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("members-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let members = #"{"chain_id": "cn.test/v1", "genesis_time": "2026-11-21T00:00:00Z", "score_endorsement_required": 1, "members": []}"#
        try members.write(toFile: dir + "/members.json", atomically: true, encoding: .utf8)
        let r = try VerifierCLITests.run("credit-node", ["genesis", "--members", dir + "/members.json", "--keys-dir", dir, "--out", dir + "/genesis.json"])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("unknown field \"score_endorsement_required\""), r.output)
        XCTAssertFalse(r.output.contains("ExitCode"), "the error is printed once: \(r.output)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/genesis.json"))
        // A key given twice was settled silently by taking the first (found by black-box testing).
        let twice = #"{"chain_id": "cn.test/v1", "chain_id": "cn.other/v1", "genesis_time": "2026-11-21T00:00:00Z", "members": []}"#
        try twice.write(toFile: dir + "/members.json", atomically: true, encoding: .utf8)
        let again = try VerifierCLITests.run("credit-node", ["genesis", "--members", dir + "/members.json", "--keys-dir", dir, "--out", dir + "/genesis.json"])
        XCTAssertEqual(again.status, 1, again.output)
        XCTAssertTrue(again.output.contains("key \"chain_id\" appears twice in one object"), again.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/genesis.json"))
    }

    /// A member that sorts after this node and has no address to dial is named at start: only
    /// the member whose id sorts first dials, so the two would never connect, silently.
    func testMembersThisNodeWillNeverReachAreNamed() throws {
        let keys = ["a-bank", "b-bureau", "z-auditor"].map { MemberSecretKeys(memberID: $0) }
        let members = keys.map { k in
            Member(id: k.memberID, name: k.memberID, roles: k.memberID == "b-bureau" ? [.validator, .custodian] : [.validator],
                   signingKey: k.signing.publicKey, encryptionKey: k.encryption.publicKey)
        }
        let genesis = try Genesis(bytes: try Genesis.render(chainID: "never-connected-test", genesisTime: "2026-11-21T00:00:00Z", members: members))
        XCTAssertEqual(NetworkNode.neverConnected(genesis: genesis, me: "a-bank", addressed: ["b-bureau"]), ["z-auditor"])
        XCTAssertEqual(NetworkNode.neverConnected(genesis: genesis, me: "a-bank", addressed: ["b-bureau", "z-auditor"]), [])
        // A member sorting before this node dials it: not this node's to name.
        XCTAssertEqual(NetworkNode.neverConnected(genesis: genesis, me: "z-auditor", addressed: []), [])
        // A listener on another port than genesis lists for the member is named (it sat isolated, unexplained).
        let listed = Member(id: "b-bureau", name: "b", roles: [.validator], signingKey: keys[1].signing.publicKey,
                            encryptionKey: keys[1].encryption.publicKey, p2pAddress: "10.0.0.2:26602")
        XCTAssertTrue(NetworkNode.listenerMismatch(listed, listenPort: 27669)?.contains("listens for P2P on port 27669, but genesis lists b-bureau at 10.0.0.2:26602") == true)
        XCTAssertNil(NetworkNode.listenerMismatch(listed, listenPort: 26602))
        XCTAssertNil(NetworkNode.listenerMismatch(members[0], listenPort: 27669), "no address in genesis: nothing to compare")

        // Peers: the config's address over genesis; not this node itself, not a stranger.
        let config = try load("{\(base), \"peers\": {\"b-bureau\": \"10.0.0.2:26602\"}}")
        XCTAssertEqual(try NodeConfig.peerAddresses(config, genesis: genesis, me: "a-bank").map { "\($0.memberID)@\($0.host):\($0.port)" },
                       ["b-bureau@10.0.0.2:26602"])
        // A config copied from one template names the node itself: not dialled.
        XCTAssertEqual(try NodeConfig.peerAddresses(config, genesis: genesis, me: "b-bureau").map(\.memberID), [])
        let stranger = try load("{\(base), \"peers\": {\"mallory\": \"10.0.0.9:26602\"}}")
        XCTAssertThrowsError(try NodeConfig.peerAddresses(stranger, genesis: genesis, me: "a-bank")) {
            XCTAssertTrue("\($0)".contains("config names peer mallory, which is not a member"), "\($0)")
        }
    }

}
