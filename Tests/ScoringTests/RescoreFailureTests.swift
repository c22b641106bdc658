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
        let (keys, member, genesis, store) = try devScorerChain(chainID: "creditledger.test/upgrade-fail")
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
        _ = try await ledger.submit([signed(.governance(Self.individualBusinessV2(genesis: genesis, keys: keys)))])
        try await Self.waitUntilRescoreFinished(ledger)
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
