import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import Policy
import XCTest

/// Governance approvals made apart (`GovernanceApproval`, `credit-node approve`): each custodian
/// signs with its own key; the submitter checks the files and puts them in the body.
final class GovernanceApprovalTests: XCTestCase {
    var consortium: PolicyConsortium!

    override func setUpWithError() throws { consortium = try PolicyConsortium() }

    var genesis: Genesis { consortium.genesis }

    func policy(version: Int = 2, edit: (String) -> String = { $0 }) throws -> [UInt8] {
        let text = String(decoding: try Files.read("Genesis/policies/credit-grade.json"), as: UTF8.self)
        return Array(edit(text.replacingOccurrences(of: "\"version\": 1", with: "\"version\": \(version)")).utf8)
    }

    /// Written to a file and read back, as it travels between the bureaus.
    func approval(_ member: String, _ proposal: GovernanceBody, genesis: Genesis? = nil) throws -> GovernanceApproval {
        let made = try GovernanceApproval.approve(proposal, genesis: genesis ?? self.genesis, keys: consortium.keys[member]!)
        let read = try GovernanceApproval(json: made.json)
        XCTAssertEqual(read, made)
        return read
    }

    func assertRefused(_ a: GovernanceApproval, for proposal: GovernanceBody, _ code: LedgerError.Code, _ words: [String],
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try a.check(for: proposal, genesis: genesis, source: "approval x.json"), file: file, line: line) { e in
            let error = e as? LedgerError
            XCTAssertEqual(error?.code, code, "\(e)", file: file, line: line)
            for w in ["approval x.json"] + words {
                XCTAssertTrue("\(e)".contains(w), "\"\(w)\" not in \(e)", file: file, line: line)
            }
        }
    }

    func testApprovalsMadeApartInstallThePolicyWithTheSameBodyAsKeysHeldTogether() async throws {
        let (proposal, parsed) = try QueryClient.policyProposal(genesis: genesis, document: try policy())
        XCTAssertEqual(proposal.name, "credit-grade")
        XCTAssertEqual(proposal.version, 2)
        XCTAssertEqual(proposal.documentHash, parsed.hash)
        let signatures = try ["samr", "data-bureau"].map { try approval($0, proposal).check(for: proposal, genesis: genesis) }
        let apart = try QueryClient.governance(genesis: genesis, proposal, submitter: consortium.keys["samr"]!, approvers: [],
                                               approvals: signatures, nonce: 1, issuedAtMillis: nowMillis)
        let together = try QueryClient.installPolicy(genesis: genesis, document: try policy(), name: "credit-grade", version: 2,
                                                     submitter: consortium.keys["samr"]!,
                                                     approvers: [consortium.keys["samr"]!, consortium.keys["data-bureau"]!],
                                                     nonce: 1, issuedAtMillis: nowMillis)
        XCTAssertEqual(apart.transaction.body, together.transaction.body, "Ed25519 is deterministic: the same approvals, in the same order")

        let dir = NSTemporaryDirectory() + "approval-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try ChainStore.create(path: dir, genesis: genesis)
        let ledger = try Ledger(store: store, validatorKeys: consortium.keys["samr"]!, clock: { nowMillis }, blockInterval: .zero)
        let producer = Task { await ledger.runBlockProducer() }
        // The submitter's own key and the data bureau's file, mixed.
        let mixed = try QueryClient.governance(genesis: genesis, proposal, submitter: consortium.keys["samr"]!,
                                               approvers: [consortium.keys["samr"]!], approvals: [signatures[1]],
                                               nonce: 2, issuedAtMillis: nowMillis)
        var failure: (any Error)? = nil
        do { _ = try await ledger.submit([mixed]) } catch { failure = error }
        producer.cancel()
        _ = await producer.value
        XCTAssertNil(failure, "\(failure.map { "\($0)" } ?? "")")
        XCTAssertEqual(store.latestPolicy(name: "credit-grade")?.version, 2)
    }

    func testApprovalsForAnythingElseAreRefusedNamingTheDifference() throws {
        let (proposal, _) = try QueryClient.policyProposal(genesis: genesis, document: try policy())
        let good = try approval("data-bureau", proposal)
        XCTAssertNoThrow(try good.check(for: proposal, genesis: genesis))

        let (v3, _) = try QueryClient.policyProposal(genesis: genesis, document: try policy(version: 3))
        assertRefused(try approval("data-bureau", v3), for: proposal, .invalidValue,
                      ["approves policy credit-grade@3", "this transaction is for policy credit-grade@2"])

        let (edited, _) = try QueryClient.policyProposal(genesis: genesis, document: try policy { $0.replacingOccurrences(of: "\"width\": 50", with: "\"width\": 10") })
        assertRefused(try approval("data-bureau", edited), for: proposal, .invalidValue,
                      ["different document", edited.documentHash.hexString, proposal.documentHash.hexString])

        let erasure = QueryClient.erasureProposal(records: [SHA256.hash([1])])
        assertRefused(try approval("data-bureau", erasure), for: proposal, .invalidValue, ["approves erase_records", "install_policy"])

        let other = try Genesis(bytes: try Genesis.render(chainID: "creditledger.test/other", genesisTime: "2026-11-21T00:00:00Z",
                                                          members: genesis.members))
        let (otherProposal, _) = try QueryClient.policyProposal(genesis: other, document: try policy())
        XCTAssertEqual(otherProposal, proposal)
        assertRefused(try approval("data-bureau", proposal, genesis: other), for: proposal, .wrongChain,
                      ["creditledger.test/other", "creditledger.test/policy"])

        // A bank cannot approve, neither with the helper nor with a file made by hand.
        XCTAssertThrowsError(try GovernanceApproval.approve(proposal, genesis: genesis, keys: consortium.keys["bank-a"]!)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
            XCTAssertTrue("\($0)".contains("bank-a is not a custodian"), "\($0)")
        }
        let bank = genesis.member("bank-a")!
        let forged = GovernanceApproval(chainID: genesis.chainID, action: .installPolicy, name: "credit-grade", version: 2,
                                        documentHash: proposal.documentHash, member: "bank-a", keyID: bank.keyID,
                                        signature: consortium.keys["bank-a"]!.signing.signature(for: proposal.approvalMessage(chainID: genesis.chainID)))
        assertRefused(forged, for: proposal, .notAuthorized, ["bank-a", "not a custodian"])
        let stranger = GovernanceApproval(chainID: genesis.chainID, action: .installPolicy, name: "credit-grade", version: 2,
                                          documentHash: proposal.documentHash, member: "stranger", keyID: 1, signature: good.signature)
        assertRefused(stranger, for: proposal, .unknownSigner, ["stranger", "not a member"])

        let otherKey = GovernanceApproval(chainID: good.chainID, action: good.action, name: good.name, version: good.version,
                                          documentHash: good.documentHash, member: good.member, keyID: good.keyID &+ 1, signature: good.signature)
        assertRefused(otherKey, for: proposal, .unknownKey, ["key id", "data-bureau"])

        var flipped = good.signature
        flipped[0] ^= 0x80
        let tampered = GovernanceApproval(chainID: good.chainID, action: good.action, name: good.name, version: good.version,
                                          documentHash: good.documentHash, member: good.member, keyID: good.keyID, signature: flipped)
        assertRefused(tampered, for: proposal, .badSignature, ["data-bureau", "does not verify"])
        // Signed by the wrong custodian's key under the right name.
        let swapped = GovernanceApproval(chainID: good.chainID, action: good.action, name: good.name, version: good.version,
                                         documentHash: good.documentHash, member: "samr", keyID: genesis.member("samr")!.keyID,
                                         signature: good.signature)
        assertRefused(swapped, for: proposal, .badSignature, ["samr", "does not verify"])

        // A key file that is not the genesis key of its member approves nothing.
        XCTAssertThrowsError(try GovernanceApproval.approve(proposal, genesis: genesis, keys: MemberSecretKeys(memberID: "data-bureau"))) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .unknownKey)
        }
    }

    func testApprovalFilesAreReadStrictlyAndEachMemberApprovesOnce() throws {
        let (proposal, _) = try QueryClient.policyProposal(genesis: genesis, document: try policy())
        let good = try approval("data-bureau", proposal)
        let object = try JSONSerialization.jsonObject(with: good.json) as! [String: Any]
        XCTAssertEqual(Set(object.keys), ["format", "chain_id", "action", "name", "version", "document_sha256", "member", "key_id", "signature"])
        XCTAssertEqual(object["format"] as? String, GovernanceApproval.format)
        XCTAssertEqual(object["document_sha256"] as? String, proposal.documentHash.hexString)
        for (key, value) in [("format", "creditledger-secret-key/v1" as Any), ("version", "2"), ("signature", "AAAA"), ("action", "install_everything")] {
            var o = object
            o[key] = value
            XCTAssertThrowsError(try GovernanceApproval(json: try JSONSerialization.data(withJSONObject: o))) {
                XCTAssertEqual(($0 as? LedgerError)?.code, .malformed, "\(key): \($0)")
            }
        }
        // A key the format does not have, or one given twice, is named (they were passed over).
        var extra = object
        extra["record"] = ["ab"]
        XCTAssertThrowsError(try GovernanceApproval(json: try JSONSerialization.data(withJSONObject: extra))) {
            XCTAssertTrue("\($0)".contains("unknown key \"record\""), "\($0)")
        }
        let text = String(decoding: good.json, as: UTF8.self)
        let twice = text.replacingOccurrences(of: "\"member\"", with: "\"member\" : \"samr\", \"member\"")
        XCTAssertThrowsError(try GovernanceApproval(json: Data(twice.utf8))) {
            XCTAssertTrue("\($0)".contains("\"member\" appears twice"), "\($0)")
        }

        let dir = NSTemporaryDirectory() + "approval-files-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try good.write(to: dir + "/data.json")
        try approval("samr", proposal).write(to: dir + "/samr.json")
        XCTAssertEqual(try GovernanceApproval.signatures(files: [dir + "/samr.json", dir + "/data.json"], for: proposal, genesis: genesis).map(\.member),
                       ["samr", "data-bureau"])
        XCTAssertThrowsError(try GovernanceApproval.signatures(files: [dir + "/data.json", dir + "/data.json"], for: proposal, genesis: genesis)) {
            XCTAssertTrue("\($0)".contains("second approval by data-bureau"), "\($0)")
        }
        XCTAssertThrowsError(try QueryClient.governance(genesis: genesis, proposal, submitter: consortium.keys["samr"]!,
                                                        approvers: [consortium.keys["data-bureau"]!], approvals: [good.memberSignature],
                                                        issuedAtMillis: nowMillis)) {
            XCTAssertTrue("\($0)".contains("data-bureau approves twice"), "\($0)")
        }
    }

    /// Validators refuse an approval set that names a custodian twice, as the tools do: the
    /// same approvals could otherwise be written several ways.
    func testValidatorsRefuseARepeatedApproval() throws {
        let proposal = QueryClient.erasureProposal(records: [SHA256.hash([1])])
        let samr = consortium.keys["samr"]!, data = consortium.keys["data-bureau"]!
        let valid = try QueryClient.governance(genesis: genesis, proposal, submitter: samr, approvers: [samr, data], nonce: 1, issuedAtMillis: 1)
        XCTAssertNoThrow(try TransactionValidator(genesis: genesis).checkStateless(valid))
        guard case .governance(var body) = valid.transaction.body else { return XCTFail("not governance") }
        body.approvals.append(body.approvals[1])
        let header = valid.transaction.header
        let repeated = Submission(transaction: Transaction.sign(header: header, body: .governance(body), key: samr.signing), envelope: nil)
        XCTAssertThrowsError(try TransactionValidator(genesis: genesis).checkStateless(repeated)) {
            XCTAssertTrue("\($0)".contains("governance approval by data-bureau appears twice"), "\($0)")
        }
    }

    /// set_parameter has no meaning yet: a body approved by every custodian is still refused, so
    /// it cannot be recorded (or replayed by one custodian) ahead of a version that gives it one.
    func testValidatorsRefuseTheReservedSetParameter() throws {
        let proposal = GovernanceBody(action: .setParameter, name: "max-query-rate", version: 1, document: Array("{}".utf8))
        let samr = consortium.keys["samr"]!, data = consortium.keys["data-bureau"]!
        let tx = try QueryClient.governance(genesis: genesis, proposal, submitter: samr, approvers: [samr, data], nonce: 1, issuedAtMillis: 1)
        XCTAssertThrowsError(try TransactionValidator(genesis: genesis).checkStateless(tx)) {
            XCTAssertTrue("\($0)".contains("set_parameter is reserved"), "\($0)")
        }
    }

    func testAnErasureApprovalNamesItsRecordsInAnyOrder() throws {
        let a = SHA256.hash([1]), b = SHA256.hash([2])
        let ab = QueryClient.erasureProposal(records: [a, b]), ba = QueryClient.erasureProposal(records: [b, a, b])
        XCTAssertEqual(ab, ba)
        XCTAssertEqual(ab.erasedRecords.count, 2)
        let approval = try approval("data-bureau", ab)
        XCTAssertEqual(Set(approval.records), [a, b])
        XCTAssertNoThrow(try approval.check(for: ba, genesis: genesis))
        assertRefused(approval, for: QueryClient.erasureProposal(records: [a]), .invalidValue,
                      ["approves erasing \(approval.records.map(\.hexString).joined(separator: ", "))", "this transaction erases \(a.hexString)"])
        // The listed ids must be the ones the document hash covers.
        var o = try JSONSerialization.jsonObject(with: approval.json) as! [String: Any]
        o["records"] = [a.hexString]
        XCTAssertThrowsError(try GovernanceApproval(json: try JSONSerialization.data(withJSONObject: o))) {
            XCTAssertTrue("\($0)".contains("records do not match document_sha256"), "\($0)")
        }
    }
}
