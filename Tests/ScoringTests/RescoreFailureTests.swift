import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import Scoring
import XCTest

extension NodeAndRescoreTests {
    /// A subject that cannot be scored (more records than a score update covers) fails the
    /// re-score after a model install on every try. The job still finishes, counts the failure,
    /// and is not run again after a restart.
    func testARescoreWithASubjectThatCannotBeScoredFinishesOnce() async throws {
        let keys = MemberSecretKeys(memberID: "dev")
        let member = Member(id: "dev", name: "dev", roles: [.validator, .custodian, .governmentIssuer, .bank, .scorer],
                            signingKey: keys.signing.publicKey, encryptionKey: keys.encryption.publicKey)
        let genesis = try Genesis(bytes: Genesis.render(chainID: "creditledger.test/upgrade-fail", genesisTime: "2026-11-21T00:00:00Z",
                                                        members: [member], models: try ["individual-business.json", "enterprise.json"].map(Models.installed)))
        let store = try ChainStore.create(path: "\(directory)/ledger", genesis: genesis)
        let asOfMillis = UInt64(try LedgerDate(iso: "2026-11-21").dayNumber) * 86_400_000
        let demo = DemoSubjects(count: 20, seed: 4, asOf: try LedgerDate(iso: "2026-11-21"))
        var nonce: UInt64 = 0
        func signed(_ body: TransactionBody) -> Submission {
            nonce += 1
            return Submission(transaction: Transaction.sign(header: TransactionHeader(chainID: genesis.chainID, signer: "dev", keyID: member.keyID,
                                                                                      nonce: nonce, issuedAtMillis: asOfMillis),
                                                            body: body, key: keys.signing), envelope: nil)
        }
        var block: [Submission] = []
        for records in demo.records { for r in records { block.append(signed(.attestation(try r.body()))) } }
        let individuals = zip(demo.subjects, demo.records).filter { $0.0.subject_kind == "individual_business" }
        let crowded = try XCTUnwrap(individuals.first)
        for _ in 0...FieldLimits.scoreInputs { block.append(signed(.attestation(try crowded.1[0].body()))) }
        try store.appendBlock(block, timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])

        let stateDir = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        var ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        var producer = Task { [ledger] in await ledger.runBlockProducer() }
        let v1 = genesis.models[0]
        let text = String(decoding: v1.document, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
        var g = GovernanceBody(action: .installModel, name: "individual-business", version: 2, document: Array(text.utf8))
        g.approvals = [MemberSignature(member: "dev", keyID: member.keyID, signature: keys.signing.signature(for: g.approvalMessage(chainID: genesis.chainID)))]
        _ = try await ledger.submit([signed(.governance(g))])
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ledger.rescoreStatus?["state"] as? String != "finished" { try await Task.sleep(for: .milliseconds(20)) }
        let status = try XCTUnwrap(ledger.rescoreStatus)
        XCTAssertEqual(status["state"] as? String, "finished", "\(status)")
        XCTAssertEqual(status["failed"] as? Int, 1, "\(status)")
        XCTAssertEqual(status["done"] as? Int, individuals.count - 1, "\(status)")

        // Restart: the job is not run again.
        producer.cancel()
        await producer.value
        let sizeBefore = store.head.logSize
        ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        producer = Task { [ledger] in await ledger.runBlockProducer() }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertNil(ledger.rescoreStatus, "the finished job ran again")
        XCTAssertEqual(store.head.logSize, sizeBefore)
        producer.cancel()
        await producer.value
    }
}
