import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import XCTest

/// Two-machine governance with the real executables: each bureau approves with `credit-node
/// approve`, holding only its own key file; the submitter sends the approval files. Bad approval
/// files are refused before anything is sent.
final class GovernanceApprovalCLITests: XCTestCase {
    static let custodians = ["samr-330106", "data-330106"]
    var root: String!
    var node: DevNodeProcess!
    var url: String!

    /// A dev node whose genesis has a validator that is not a custodian, two custodian bureaus
    /// and a bank; every key made by `credit-node keygen` in its own directory.
    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("gov-cli-\(UUID().uuidString.prefix(8))").path
        let roles = ["dev": ["validator", "government_issuer"], "samr-330106": ["custodian", "government_issuer"],
                     "data-330106": ["custodian"], "bank-a": ["bank"]]
        for m in roles.keys.sorted() { try expectSuccess(["keygen", "--member", m, "--out", "\(root!)/keys/\(m)"]) }
        try FileManager.default.createDirectory(atPath: "\(root!)/pub", withIntermediateDirectories: true)
        for m in roles.keys {
            try FileManager.default.copyItem(atPath: "\(root!)/keys/\(m)/\(m).pub.json", toPath: "\(root!)/pub/\(m).pub.json")
        }
        for (file, chain) in [("genesis", "test.gov-approvals/v1"), ("other-genesis", "test.gov-approvals-other/v1")] {
            let members: [String: Any] = ["chain_id": chain, "genesis_time": "2026-11-21T00:00:00Z",
                                          "members": roles.keys.sorted().map { ["id": $0, "name": $0, "roles": roles[$0]!] }]
            try JSONSerialization.data(withJSONObject: members).write(to: URL(fileURLWithPath: "\(root!)/\(file)-members.json"))
            try expectSuccess(["genesis", "--members", "\(root!)/\(file)-members.json", "--keys-dir", "\(root!)/pub",
                               "--out", "\(root!)/\(file).json"])
        }
        // The dev node's directory: the genesis above, the validator's key, a new store.
        let dataDir = root + "/node"
        try FileManager.default.createDirectory(atPath: dataDir + "/keys", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(root!)/keys/dev/dev.key", toPath: dataDir + "/keys/dev.key")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dataDir + "/keys/dev.key")
        try FileManager.default.copyItem(atPath: "\(root!)/genesis.json", toPath: dataDir + "/genesis.json")
        do { _ = try ChainStore.create(path: dataDir + "/ledger", genesis: try genesis()) }
        node = try DevNodeProcess(dataDir: dataDir)
        url = try node.waitForAddress()
    }

    override func tearDownWithError() throws {
        node?.terminate()
        if let root { try? FileManager.default.removeItem(atPath: root) }
    }

    func genesis() throws -> Genesis { try Genesis(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/genesis.json")))) }
    func key(_ m: String) -> String { "\(root!)/keys/\(m)/\(m).key" }

    @discardableResult
    func expectSuccess(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (status, out) = try VerifierCLITests.run("credit-node", args)
        XCTAssertEqual(status, 0, "credit-node \(args.joined(separator: " ")): \(out)", file: file, line: line)
        return out
    }

    /// Runs credit-node, expects a failure whose message contains every one of `words`.
    func expectRefusal(_ args: [String], _ words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let (status, out) = try VerifierCLITests.run("credit-node", args)
        XCTAssertNotEqual(status, 0, "credit-node \(args.joined(separator: " ")) succeeded: \(out)", file: file, line: line)
        for w in words { XCTAssertTrue(out.contains(w), "\"\(w)\" not in: \(out)", file: file, line: line) }
    }

    /// `verifier-keys` prints the keys that sign checkpoints, the validators'; a standard note
    /// verifier given an auditor's or a bank's key would accept a checkpoint that member alone
    /// signed (found by an independent verifier). Every member's with --all-members.
    func testVerifierKeysPrintsTheValidatorsKeysUnlessAskedForAll() throws {
        let g = try genesis()
        func keys(_ extra: [String]) throws -> [String] {
            try expectSuccess(["verifier-keys", "--genesis", root + "/genesis.json"] + extra)
                .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        }
        XCTAssertEqual(try keys([]), ["dev"].map { id in g.members.first { $0.id == id }!.verifierKey })
        XCTAssertEqual(try keys(["--all-members"]), g.members.map(\.verifierKey))
        XCTAssertEqual(g.members.count, 4)
        XCTAssertTrue(try expectSuccess(["verifier-keys", "--genesis", root + "/genesis.json"]).contains("when 1 of these 1 validator keys signed it"))
    }

    /// Client commands check the signing member's roles against the node's genesis before they
    /// send anything (the node refused them batch by batch, or at the first record).
    func testClientCommandsCheckRolesBeforeSending() throws {
        let before = try LedgerClient(baseURL: url).getJSON("/v1/health")["log_size"] as? Int
        try expectRefusal(["demo-data", "--subjects", "5", "--out", root + "/d1.jsonl", "--node", url, "--key", key("bank-a")],
                          ["--key is bank-a's, which is not a government issuer", "nothing was sent"])
        try expectRefusal(["demo-data", "--subjects", "5", "--out", root + "/d2.jsonl", "--node", url, "--key", key("samr-330106")],
                          ["--key is samr-330106's, which is not a bank", "give --bank-key", "nothing was sent"])
        // A key file of another ledger (the same member id, another key), or of no member: named
        // before sending (a query went out and left a bad_signature record for good).
        try expectSuccess(["keygen", "--member", "bank-a", "--out", root + "/other-ledger"])
        try expectSuccess(["keygen", "--member", "bank-z", "--out", root + "/other-ledger"])
        let query = ["query", "--node", url!, "--policy", "credit-grade", "--subject", "91350100M000100Y43", "--purpose", "loan_application"]
        try expectRefusal(query + ["--key", root + "/other-ledger/bank-a.key"],
                          ["the key file of bank-a does not hold the signing key that chain", "nothing was sent"])
        try "consent form of 91350100M000100Y43 for bank-a\n".write(toFile: root + "/form.txt", atomically: true, encoding: .utf8)
        try expectRefusal(["consent", "--node", url!, "--key", root + "/other-ledger/bank-z.key", "--subject", "91350100M000100Y43", "--grantee", "bank-a",
                           "--purpose", "loan_application", "--evidence", root + "/form.txt"],
                          ["the key file's member bank-z is not a member of chain", "nothing was sent"])
        // A grant records the consent form's hash: without --evidence nothing is sent (validators refuse a grant of zeros).
        try expectRefusal(["consent", "--node", url!, "--key", key("bank-a"), "--subject", "91350100M000100Y43", "--grantee", "bank-a",
                           "--purpose", "loan_application"], ["a grant needs --evidence FILE, the signed consent form you keep"])
        try expectRefusal(["consent", "--node", url!, "--key", key("bank-a"), "--subject", "91350100M000100Y43", "--grantee", "bank-a",
                           "--purpose", "loan_application", "--evidence", root!], ["--evidence \(root!) is a directory"])
        _ = FileManager.default.createFile(atPath: root + "/empty-form.txt", contents: Data())
        try expectRefusal(["consent", "--node", url!, "--key", key("bank-a"), "--subject", "91350100M000100Y43", "--grantee", "bank-a",
                           "--purpose", "loan_application", "--evidence", root + "/empty-form.txt"], ["--evidence \(root!)/empty-form.txt is empty"])
        try "\n \r\n\t".write(toFile: root + "/blank-form.txt", atomically: true, encoding: .utf8)
        try expectRefusal(["consent", "--node", url!, "--key", key("bank-a"), "--subject", "91350100M000100Y43", "--grantee", "bank-a",
                           "--purpose", "loan_application", "--evidence", root + "/blank-form.txt"],
                          ["--evidence \(root!)/blank-form.txt holds only spaces and line ends"])
        // A parameter value longer than policies take is named before sending (it was refused on the record).
        try expectRefusal(query + ["--key", key("bank-a"), "--param", "amount_yuan=" + String(repeating: "9", count: 65)],
                          ["--param amount_yuan is 65 bytes; policies take values of at most 64", "nothing was sent"])
        XCTAssertEqual(try LedgerClient(baseURL: url).getJSON("/v1/health")["log_size"] as? Int, before)
    }

    /// `keygen` never overwrites either file. After a crash between the key and its public file,
    /// a rerun keeps the key and writes the public file from it (it used to refuse for good,
    /// with nothing able to rebuild the public file); a public file without its key is refused.
    func testKeygenRebuildsAMissingPublicFileAndOverwritesNothing() throws {
        let dir = root + "/keygen"
        try expectSuccess(["keygen", "--member", "bank-z", "--out", dir])
        let pub = dir + "/bank-z.pub.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: pub))
        try expectRefusal(["keygen", "--member", "bank-z", "--out", dir], ["bank-z.key", "File exists"])
        try FileManager.default.removeItem(atPath: pub)
        let out = try expectSuccess(["keygen", "--member", "bank-z", "--out", dir])
        XCTAssertTrue(out.contains("kept the existing"), out)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: pub)), original, "the public file is rebuilt from the kept key")
        try FileManager.default.removeItem(atPath: dir + "/bank-z.key")
        try expectRefusal(["keygen", "--member", "bank-z", "--out", dir], ["exists without its key"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/bank-z.key"), "no key is made beside a stale public file")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }, [])
    }

    /// Writes a variant of the shipped credit-grade policy.
    /// `--out` never writes over a secret key file or one of the command's own inputs: a
    /// custodian who typed `--out` where `--key` belonged used to lose the key every governance
    /// change needs; nor a receipt. Other existing outputs are replaced whole (scripts write them on every run).
    func testOutputNeverReplacesASecretKeyOrAnInput() throws {
        let doc = try policy("credit-grade")
        let keyBefore = try Data(contentsOf: URL(fileURLWithPath: key("data-330106")))
        let docBefore = try Data(contentsOf: URL(fileURLWithPath: doc))
        let base = ["approve", "policy", "--genesis", root + "/genesis.json", "--key", key("data-330106"), "--file", doc]
        try expectRefusal(base + ["--out", key("data-330106")], ["an input of this command", "nothing was written"])
        try expectRefusal(base + ["--out", key("samr-330106")], ["holds a secret key"])
        try expectRefusal(base + ["--out", doc], ["is \(doc), an input of this command"])
        try expectRefusal(base + ["--out", root + "/genesis.json"], ["an input of this command"])
        try expectRefusal(["receipt", String(repeating: "ab", count: 32), "--node", url!, "--out", key("bank-a")], ["holds a secret key"])
        try expectRefusal(["demo-data", "--subjects", "3", "--out", key("bank-a")], ["holds a secret key"])
        try expectRefusal(["receipt", String(repeating: "ab", count: 32), "--node", url!, "--out", root + "/no-such-dir/r.json"],
                          ["--out \(root!)/no-such-dir/r.json: directory \(root!)/no-such-dir does not exist", "nothing was written"])
        try "notes".write(toFile: root + "/notes", atomically: true, encoding: .utf8)
        try expectRefusal(["demo-data", "--subjects", "3", "--out", root + "/notes"], ["--out \(root!)/notes is a file"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: key("data-330106"))), keyBefore)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: doc)), docBefore)
        XCTAssertNoThrow(try MemberSecretKeys.load(from: key("bank-a")))
        // A node that cannot be reached is named, with the reason in words.
        try expectRefusal(["checkpoint", "--node", "http://127.0.0.1:1"], ["cannot reach the node at 127.0.0.1:1", "connection refused"])
        // A public key file given as the secret key, a genesis that is not one, and keygen's
        // --out naming a file are said in words (they were DecodingError and Foundation dumps;
        // found by black-box testing).
        let pub = key("data-330106").replacingOccurrences(of: ".key", with: ".pub.json")
        XCTAssertTrue(FileManager.default.fileExists(atPath: pub), pub)
        // Readable by all, as keygen writes it: named for what it is, not met with chmod advice.
        try expectRefusal(["approve", "policy", "--genesis", root + "/genesis.json", "--key", pub, "--file", doc, "--out", root + "/x.json"],
                          ["is a public key file (MEMBER.pub.json): give the secret MEMBER.key"])
        // Copied under another name and made private, it is still recognised by its content.
        let renamed = root + "/copied-key.json"
        try FileManager.default.copyItem(atPath: pub, toPath: renamed)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: renamed)
        try expectRefusal(["approve", "policy", "--genesis", root + "/genesis.json", "--key", renamed, "--file", doc, "--out", root + "/x.json"],
                          ["is not a CreditLedger secret key file: missing field \"format\"", "looks like a public key file"])
        try expectRefusal(["approve", "policy", "--genesis", doc, "--key", key("data-330106"), "--file", doc, "--out", root + "/x.json"],
                          ["genesis is not a CreditLedger genesis"])
        try expectRefusal(["keygen", "--member", "x1", "--out", doc], ["is a file; name the directory"])
        // A bare host:port is not taken for a URL without a scheme (found by black-box testing).
        try expectRefusal(["checkpoint", "--node", "127.0.0.1:1"], ["node address 127.0.0.1:1 is not an http:// URL; write it as http://127.0.0.1:1"])
        // A receipt is never replaced: it may be the only copy of its proof (an answer's result
        // and salt are nowhere else; found by black-box testing).
        let receipt = root + "/kept-receipt.json"
        let text = "{\n  \"format\" : \"\(AnswerReceipt.format.replacingOccurrences(of: "/", with: "\\/"))\",\n  \"result\" : \"{}\"\n}\n"
        try text.write(toFile: receipt, atomically: true, encoding: .utf8)
        try expectRefusal(base + ["--out", receipt], ["holds an answer receipt (\(AnswerReceipt.format))", "name a new file", "nothing was written"])
        try expectRefusal(["receipt", String(repeating: "ab", count: 32), "--node", url!, "--out", receipt], ["holds an answer receipt"])
        XCTAssertEqual(try String(contentsOfFile: receipt, encoding: .utf8), text)
        // A transaction's receipt can be fetched again, and a file that only mentions the format is no receipt: both replaced.
        for other in ["{\"format\": \"\(Receipt.format)\"}", "notes on \(AnswerReceipt.format)"] {
            try other.write(toFile: root + "/replaceable.json", atomically: true, encoding: .utf8)
            try expectSuccess(base + ["--out", root + "/replaceable.json"])
        }
        // An earlier output is replaced.
        let out = root + "/data.approval.json"
        try "stale".write(toFile: out, atomically: true, encoding: .utf8)
        try expectSuccess(base + ["--out", out])
        XCTAssertEqual(try GovernanceApproval.load(path: out).member, "data-330106")
    }

    func policy(_ name: String, replacing: [(String, String)] = []) throws -> String {
        var text = try String(contentsOfFile: VerifierCLITests.repository + "/Genesis/policies/credit-grade.json", encoding: .utf8)
        for (a, b) in replacing { text = text.replacingOccurrences(of: a, with: b) }
        let path = "\(root!)/\(name).json"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func logSize() throws -> Int {
        try XCTUnwrap(try LedgerClient(baseURL: url).getJSON("/v1/status")["log_size"] as? Int)
    }

    func installedPolicies() throws -> [String] {
        try LedgerClient(baseURL: url).policies().map { "\($0["name"] ?? "?")@\($0["version"] ?? "?")" }
    }

    func approve(_ kind: String, as member: String, _ args: [String], genesis: String? = nil, out: String) throws -> String {
        try expectSuccess(["approve", kind, "--genesis", genesis ?? root + "/genesis.json", "--key", key(member), "--out", out] + args)
    }

    func testEachBureauApprovesOnItsOwnAndThePolicyInstallsFromTheirApprovalFiles() throws {
        let doc = try policy("credit-grade")
        let hash = SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: doc)))).hexString
        var files: [String: String] = [:]
        for m in Self.custodians {
            files[m] = "\(root!)/\(m).approval.json"
            let out = try approve("policy", as: m, ["--file", doc], out: files[m]!)
            for w in ["install_policy", "credit-grade@1", hash, "test.gov-approvals/v1", m] {
                XCTAssertTrue(out.contains(w), "approve output lacks \(w): \(out)")
            }
            let saved = try GovernanceApproval.load(path: files[m]!)
            XCTAssertEqual(saved.member, m)
            XCTAssertEqual(saved.documentHash.hexString, hash)
        }
        // A bank's key cannot approve.
        try expectRefusal(["approve", "policy", "--genesis", root + "/genesis.json", "--key", key("bank-a"), "--file", doc,
                           "--out", root + "/bank.approval.json"], ["bank-a is not a custodian"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/bank.approval.json"))

        let before = try logSize()
        let install = ["install-policy", "--node", url!, "--file", doc, "--key", key("samr-330106"), "--approval", files["samr-330106"]!]

        // An approval of another version of the policy.
        let v2 = try policy("credit-grade-v2", replacing: [("\"version\": 1", "\"version\": 2")])
        _ = try approve("policy", as: "data-330106", ["--file", v2], out: root + "/v2.approval.json")
        try expectRefusal(install + ["--approval", root + "/v2.approval.json"],
                          ["v2.approval.json", "approves policy credit-grade@2", "this transaction is for policy credit-grade@1"])
        // An approval of another document under the same name and version.
        let edited = try policy("credit-grade-edited", replacing: [("\"width\": 50", "\"width\": 10")])
        _ = try approve("policy", as: "data-330106", ["--file", edited], out: root + "/edited.approval.json")
        try expectRefusal(install + ["--approval", root + "/edited.approval.json"], ["edited.approval.json", "different document", hash])
        // An approval made for another chain.
        _ = try approve("policy", as: "data-330106", ["--file", doc], genesis: root + "/other-genesis.json",
                        out: root + "/other-chain.approval.json")
        try expectRefusal(install + ["--approval", root + "/other-chain.approval.json"],
                          ["other-chain.approval.json", "chain test.gov-approvals-other/v1", "test.gov-approvals/v1"])
        // A bank's approval, made without the CLI's own refusal.
        let g = try genesis()
        let (proposal, _) = try QueryClient.policyProposal(genesis: g, document: Array(try Data(contentsOf: URL(fileURLWithPath: doc))))
        let bankKeys = try MemberSecretKeys.load(from: key("bank-a"))
        let bank = g.member("bank-a")!
        try GovernanceApproval(chainID: g.chainID, action: .installPolicy, name: proposal.name, version: proposal.version,
                               documentHash: proposal.documentHash, member: bank.id, keyID: bank.keyID,
                               signature: bankKeys.signing.signature(for: proposal.approvalMessage(chainID: g.chainID)))
            .write(to: root + "/bank.approval.json")
        try expectRefusal(install + ["--approval", root + "/bank.approval.json"], ["bank.approval.json", "bank-a", "not a custodian"])
        // The data bureau's approval with one signature byte changed.
        var tampered = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: files["data-330106"]!))) as! [String: Any]
        var signature = [UInt8](base64: tampered["signature"] as! String)!
        signature[10] ^= 0x01
        tampered["signature"] = signature.base64String
        try JSONSerialization.data(withJSONObject: tampered).write(to: URL(fileURLWithPath: root + "/tampered.approval.json"))
        try expectRefusal(install + ["--approval", root + "/tampered.approval.json"], ["tampered.approval.json", "data-330106", "does not verify"])
        // Without the data bureau at all.
        try expectRefusal(install, ["no approval from data-330106"])

        // Nothing was submitted: the node's log did not move and the policy is not installed.
        XCTAssertEqual(try logSize(), before)
        XCTAssertFalse(try installedPolicies().contains("credit-grade@1"))

        // Both bureaus' own files: installed.
        let ok = try expectSuccess(install + ["--approval", files["data-330106"]!])
        XCTAssertTrue(ok.contains("credit-grade@1"), ok)
        XCTAssertTrue(try installedPolicies().contains("credit-grade@1"))
    }

    /// A model upgrade the way SCORING.md §8 describes it, with the shipped tools: each bureau
    /// approves the model file on its own machine, one submits it with `install-model`, and the
    /// node lists the new version. An approval of another version is refused before sending, and
    /// a new version of another kind before approval.
    func testBureausApproveAModelApartAndItInstallsFromTheirApprovalFiles() throws {
        var text = try String(contentsOfFile: VerifierCLITests.repository + "/Genesis/models/individual-business.json", encoding: .utf8)
        let v1 = root + "/model-v1.json"
        try text.write(toFile: v1, atomically: true, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
        let v2 = root + "/model-v2.json"
        try text.write(toFile: v2, atomically: true, encoding: .utf8)
        var files: [String: String] = [:]
        for m in Self.custodians {
            files[m] = "\(root!)/\(m).model.approval.json"
            let out = try approve("model", as: m, ["--file", v2], out: files[m]!)
            for w in ["install_model", "model individual-business@2", "test.gov-approvals/v1", m] {
                XCTAssertTrue(out.contains(w), "approve output lacks \(w): \(out)")
            }
        }
        try expectRefusal(["approve", "model", "--genesis", root + "/genesis.json", "--key", key("data-330106"), "--file", root + "/genesis.json",
                           "--out", root + "/junk.approval.json"], ["is not creditledger-scorecard/v1"])
        let install = ["install-model", "--node", url!, "--file", v2, "--key", key("samr-330106"), "--approval", files["samr-330106"]!]
        _ = try approve("model", as: "data-330106", ["--file", v1], out: root + "/v1.approval.json")
        try expectRefusal(install + ["--approval", root + "/v1.approval.json"], ["v1.approval.json", "individual-business@1"])
        XCTAssertFalse(try installedModels().contains("individual-business@2"))
        let ok = try expectSuccess(install + ["--approval", files["data-330106"]!])
        XCTAssertTrue(ok.contains("individual-business@2"), ok)
        XCTAssertTrue(try installedModels().contains("individual-business@2"), "the node lists the installed model")
        // v1 installed after v2 (allowed) re-scores nothing on the node, and rescore --submit
        // refuses it: its updates would be served instead of v2's (found by black-box testing).
        let v1files = Self.custodians.map { m in "\(root!)/\(m).v1.approval.json" }
        for (m, f) in zip(Self.custodians, v1files) { _ = try approve("model", as: m, ["--file", v1], out: f) }
        try expectSuccess(["install-model", "--node", url!, "--file", v1, "--key", key("samr-330106")] + v1files.flatMap { ["--approval", $0] })
        XCTAssertTrue(try installedModels().contains("individual-business@1"))
        try expectRefusal(["rescore", "--data-dir", root + "/node", "--model", v1, "--submit", url!, "--key", key("samr-330106")],
                          ["individual-business v1 is superseded on this chain by v2", "nothing was sent"])
        // A new version of another kind (a risk warning as individual-business v3) is named before
        // sending: validators refuse it, and it stopped every grade query of that kind.
        let risk = try String(contentsOfFile: VerifierCLITests.repository + "/Genesis/models/risk-warning.json", encoding: .utf8)
            .replacingOccurrences(of: "\"name\": \"risk-warning\"", with: "\"name\": \"individual-business\"")
            .replacingOccurrences(of: "\"version\": 1", with: "\"version\": 3")
        try risk.write(toFile: root + "/model-v3.json", atomically: true, encoding: .utf8)
        try expectRefusal(["install-model", "--node", url!, "--file", root + "/model-v3.json", "--key", key("samr-330106")] + v1files.flatMap { ["--approval", $0] },
                          ["individual-business version 3 is a risk_warning model, but individual-business version 2 is a scorecard"])
        XCTAssertFalse(try installedModels().contains("individual-business@3"))
        // An approver naming the chain by its node is told the same before approving, against the
        // versions installed by governance (v2 here), not only genesis's.
        try expectRefusal(["approve", "model", "--node", url!, "--key", key("data-330106"), "--file", root + "/model-v3.json",
                           "--out", root + "/v3.approval.json"],
                          ["individual-business version 3 is a risk_warning model, but individual-business version 2 is a scorecard"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/v3.approval.json"))
    }

    func installedModels() throws -> [String] {
        let models = try LedgerClient(baseURL: url).getJSON("/v1/models")["models"] as? [[String: Any]] ?? []
        return models.map { "\($0["name"] ?? "?")@\($0["version"] ?? "?")" }
    }

    func testBureausApproveAnErasureApartAndTheSubmitterMixesItsKeyWithTheOtherFile() throws {
        // Two records with payloads, sent by the supervision bureau (through the library, not
        // `credit-node submit`, whose options are not what this test is about).
        let request = try JSONDecoder().decode(AttestationRequest.self,
                                               from: Data(contentsOf: URL(fileURLWithPath: VerifierCLITests.repository + "/Genesis/examples/penalty.json")))
        let samr = try MemberSecretKeys.load(from: key("samr-330106"))
        let ids = try (1...2).map { n -> String in
            let s = try request.build(genesis: try genesis(), keys: samr, nonce: UInt64(n), issuedAtMillis: 1)
            _ = try LedgerClient(baseURL: url).submit(s)
            return s.transaction.id.hexString
        }
        let a = ids[0], b = ids[1]
        // The data bureau lists the ids in one order, the submitter in the other.
        let out = try approve("erase", as: "data-330106", ["--id", a, "--id", b], out: root + "/data.erase.json")
        XCTAssertTrue(out.contains("erase_records") && out.contains(a) && out.contains(b), out)
        // A policy approval does not approve an erasure.
        _ = try approve("policy", as: "data-330106", ["--file", try policy("credit-grade")], out: root + "/policy.approval.json")
        let erase = ["erase", "--node", url!, "--id", b, "--id", a, "--key", key("samr-330106"), "--approver-key", key("samr-330106")]
        try expectRefusal(erase + ["--approval", root + "/policy.approval.json"], ["policy.approval.json", "approves install_policy", "erase_records"])
        // An approval of one record only does not approve erasing two.
        _ = try approve("erase", as: "data-330106", ["--id", a], out: root + "/one.erase.json")
        try expectRefusal(erase + ["--approval", root + "/one.erase.json"], ["one.erase.json", "this transaction erases"])
        // More records than validators take is refused before anyone approves.
        let many = (0...FieldLimits.erasedRecords).flatMap { n in ["--id", SHA256.hash(Array("r\(n)".utf8)).hexString] }
        try expectRefusal(["approve", "erase", "--genesis", root + "/genesis.json", "--key", key("data-330106"), "--out", root + "/many.erase.json"] + many,
                          ["names at most 1024 records; 1025 were given"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/many.erase.json"))

        let done = try expectSuccess(erase + ["--approval", root + "/data.erase.json"])
        let result = try JSONSerialization.jsonObject(with: Data(done.utf8)) as? [String: Any]
        XCTAssertEqual(result?["status"] as? String, "committed", done)
        XCTAssertEqual(result?["erased"] as? [String], [a, b].sorted(), "the ids as signed, sorted (they were printed as typed)")
        // The same erasure again (approvals carry no nonce) is refused: it was committed, and
        // its purge run, once more (found by black-box testing).
        try expectRefusal(erase + ["--approval", root + "/data.erase.json"], ["names only records erased already", "nothing is left to erase"])
        let eraseID = try XCTUnwrap(result?["id"] as? String, done)
        XCTAssertEqual(try LedgerClient(baseURL: url).getJSON("/v1/transactions/\(eraseID)")["status"] as? String, "committed")
        // The subject's history names the erasure of each record (it showed them as before).
        let erasedTx = try XCTUnwrap(try LedgerClient(baseURL: url).getJSON("/v1/transactions/\(a)")["encoded"] as? String)
        let subject = try XCTUnwrap(try Transaction.decode(try XCTUnwrap([UInt8](base64: erasedTx))).body.subject)
        let history = try LedgerClient(baseURL: url).getJSON("/v1/subjects/\(subject.code)/history")["records"] as? [[String: Any]] ?? []
        XCTAssertEqual(history.first { $0["id"] as? String == a }?["erased_by"] as? String, eraseID, "\(history)")
    }

    /// A bureau corrects and revokes its own records with `credit-node submit --corrects` and
    /// `credit-node revoke`: the reason is a code (free text is in the clear on every node, and is
    /// refused before anything is sent), a resend commits nothing twice, and only the issuer amends.
    func testABureauCorrectsAndRevokesItsRecordWithTheCLI() throws {
        let penalty = VerifierCLITests.repository + "/Genesis/examples/penalty.json"
        let corrected = root + "/corrected.json"
        let text = try String(contentsOfFile: penalty, encoding: .utf8)
        try text.replacingOccurrences(of: "\"amount_yuan\": 5000 }", with: "\"amount_yuan\": 3000 }")
            .replacingOccurrences(of: "\"amount_yuan\": 5000\n", with: "\"amount_yuan\": 3000\n")
            .write(toFile: corrected, atomically: true, encoding: .utf8)
        let common = ["--node", url!, "--genesis", root + "/genesis.json", "--key", key("samr-330106")]
        func committed(_ out: String) throws -> [String: Any] {
            let line = try XCTUnwrap(out.split(separator: "\n").last { $0.hasPrefix("{") }, out)
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], out)
            XCTAssertEqual(object["status"] as? String, "committed", out)
            return object
        }
        let original = try XCTUnwrap(try committed(try expectSuccess(["submit"] + common + ["--file", penalty]))["id"] as? String)
        try expectRefusal(["submit"] + common + ["--file", corrected, "--corrects", original, "--reason", "amount was wrong"],
                          ["--reason must be a reason code", "not free text"])
        try expectRefusal(["submit"] + common + ["--file", corrected, "--corrects", original, "--reason", "tel_13800138000"],
                          ["--reason must be a reason code", "no digits, so no ID, licence or phone number"])
        try expectRefusal(["submit"] + common + ["--file", corrected, "--corrects", original], ["--corrects and --reason go together"])
        let fix = ["submit"] + common + ["--file", corrected, "--corrects", original, "--reason", "data_error"]
        let correction = try XCTUnwrap(try committed(try expectSuccess(fix))["id"] as? String)
        XCTAssertEqual(try committed(try expectSuccess(fix))["sent_before"] as? Bool, true, "sent again, recorded once")
        let tx = try LedgerClient(baseURL: url).getJSON("/v1/transactions/\(correction)")
        XCTAssertTrue("\(tx)".contains("data_error") && "\(tx)".contains(original), "\(tx)")
        // Only the issuer amends its record.
        try expectRefusal(["revoke", "--node", url!, "--key", key("data-330106"), "--id", correction, "--reason", "issued_in_error"],
                          ["only the issuer samr-330106 may amend"])
        let revoke = ["revoke"] + common + ["--id", correction, "--reason", "issued_in_error"]
        let revocation = try XCTUnwrap(try committed(try expectSuccess(revoke))["id"] as? String)
        XCTAssertEqual(try committed(try expectSuccess(revoke))["sent_before"] as? Bool, true)
        XCTAssertEqual(try LedgerClient(baseURL: url).getJSON("/v1/transactions/\(revocation)")["status"] as? String, "committed")
    }
}
