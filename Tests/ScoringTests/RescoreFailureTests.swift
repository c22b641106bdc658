import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import LedgerStore
import Logging
import Scoring
import Synchronization
import XCTest

extension NodeAndRescoreTests {
    /// 2026-11-21 00:00 UTC in milliseconds: the dev scorer chain's block and signing time.
    static let devAsOfMillis = UInt64(try! LedgerDate(iso: "2026-11-21").dayNumber) * 86_400_000

    /// Signs transactions as the member of `devScorerChain`, each with the next nonce.
    final class DevSigner: @unchecked Sendable {
        let genesis: Genesis
        let member: Member
        let keys: MemberSecretKeys
        let millis: UInt64
        private let lock = NSLock()
        private var nonce: UInt64

        init(genesis: Genesis, member: Member, keys: MemberSecretKeys, millis: UInt64 = NodeAndRescoreTests.devAsOfMillis, nonce: UInt64 = 0) {
            self.genesis = genesis; self.member = member; self.keys = keys; self.millis = millis; self.nonce = nonce
        }

        func callAsFunction(_ body: TransactionBody) -> Submission {
            let n = lock.withLock { nonce += 1; return nonce }
            let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID, nonce: n, issuedAtMillis: millis)
            return Submission(transaction: Transaction.sign(header: header, body: body, key: keys.signing), envelope: nil)
        }

        /// Every record of `demo`, attested.
        func attestations(_ demo: DemoSubjects) throws -> [Submission] {
            try demo.records.joined().map { self(.attestation(try $0.body())) }
        }
    }

    /// A subject that cannot be scored (more records than a score update covers) fails the
    /// re-score after a model install on every try. The job still finishes, counts the failure,
    /// and is not run again after a restart.
    func testARescoreWithASubjectThatCannotBeScoredFinishesOnce() async throws {
        let (keys, member, genesis, store) = try devScorerChain(chainID: "creditledger.test/upgrade-fail")
        let asOfMillis = Self.devAsOfMillis
        let signed = DevSigner(genesis: genesis, member: member, keys: keys)
        let demo = DemoSubjects(count: 20, seed: 4, asOf: try LedgerDate(iso: "2026-11-21"))
        var block = try signed.attestations(demo)
        let individuals = zip(demo.subjects, demo.records).filter { $0.0.subject_kind == "individual_business" }
        let crowded = try XCTUnwrap(individuals.first)
        for _ in 0...FieldLimits.scoreInputs { block.append(signed(.attestation(try crowded.1[0].body()))) }
        try store.appendBlock(block, timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])

        let stateDir = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        var ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        var producer = Task { [ledger] in await ledger.runBlockProducer() }
        let v2 = Self.individualBusinessV2(genesis: genesis, keys: keys)
        _ = try await ledger.submit([signed(.governance(v2))])
        try await Self.waitUntilRescoreFinished(ledger, modelHash: v2.documentHash.hexString)
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

    /// A re-score that ends with subjects unconfirmed (`incomplete`: here every update is
    /// refused, as when too few endorsers are up) runs again by itself after its wait, without a
    /// restart, and finishes once updates commit; the status says which attempt it is on and
    /// when the next one starts.
    func testAnIncompleteRescoreRunsAgainWithoutARestart() throws {
        let (keys, member, genesis, store) = try devScorerChain(chainID: "creditledger.test/upgrade-retry")
        let asOfMillis = Self.devAsOfMillis
        let signed = DevSigner(genesis: genesis, member: member, keys: keys)
        let demo = DemoSubjects(count: 12, seed: 6, asOf: try LedgerDate(iso: "2026-11-21"))
        try store.appendBlock(try signed.attestations(demo), timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])
        try store.appendBlock([signed(.governance(Self.individualBusinessV2(genesis: genesis, keys: keys)))],
                              timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])
        let individuals = demo.subjects.filter { $0.subject_kind == "individual_business" }.count
        XCTAssertGreaterThan(individuals, 0)

        /// Refuses every update while `refusing`, then commits each in a block of its own.
        final class Host: RescoreHost, @unchecked Sendable {
            let store: ChainStore
            let engine: ScoreEngine
            let logger: Logger
            let signer: DevSigner
            let refusing = Atomic<Bool>(true)
            let refused = Atomic<Int>(0)
            weak var rescorer: UpgradeRescorer?
            init(store: ChainStore, signer: DevSigner) {
                self.store = store; self.signer = signer
                engine = ScoreEngine(genesis: store.genesis)
                var l = Logger(label: "rescore-retry-test"); l.logLevel = .critical; logger = l
            }
            var memberID: String { signer.member.id }
            func isDesignated(_ subject: USCC) -> Bool { true }
            var hasRoomForRescore: Bool { true }
            func submitRescored(_ body: ScoreUpdateBody) {
                if refusing.load(ordering: .relaxed) {
                    refused.add(1, ordering: .relaxed)
                    rescorer?.released(body.subject)
                    return
                }
                let s = signer(.scoreUpdate(body))
                do {
                    try store.appendBlock([s], timestampMillis: signer.millis, proposer: signer.member.id, signers: [(signer.member, signer.keys.signing)])
                    let head = store.head
                    rescorer?.committed([s], firstLogIndex: head.logSize - 1, logSize: head.logSize)
                } catch {
                    XCTFail("the update was not committed: \(error)")
                    rescorer?.released(body.subject)
                }
            }
        }
        let host = Host(store: store, signer: DevSigner(genesis: genesis, member: member, keys: keys, nonce: 1_000_000))
        let stateDir = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let rescorer = UpgradeRescorer(host: host, stateDirectory: stateDir, retryDelay: { _ in .milliseconds(300) })
        host.rescorer = rescorer
        defer { rescorer.stop() }
        rescorer.resume()   // the install is committed and not finished here: its job starts

        func waitFor(_ what: String, _ condition: ([String: any Sendable]) -> Bool) throws -> [String: any Sendable] {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if let s = rescorer.status, condition(s) { return s }
                Thread.sleep(forTimeInterval: 0.01)
            }
            XCTFail("\(what): status \(String(describing: rescorer.status))")
            throw XCTSkip("gave up waiting")
        }
        let incomplete = try waitFor("attempt 1 ends incomplete") { $0["state"] as? String == "incomplete" }
        XCTAssertEqual(incomplete["attempt"] as? Int, 1, "\(incomplete)")
        XCTAssertEqual(incomplete["done"] as? Int, 0, "\(incomplete)")
        XCTAssertEqual(incomplete["pass"] as? Int, UpgradeRescorer.maxPasses, "\(incomplete)")
        XCTAssertNotNil(incomplete["next_attempt_in_seconds"] as? Int, "\(incomplete)")
        XCTAssertEqual(host.refused.load(ordering: .relaxed), individuals * UpgradeRescorer.maxPasses)
        host.refusing.store(false, ordering: .relaxed)

        let finished = try waitFor("a later attempt finishes") { $0["state"] as? String == "finished" }
        XCTAssertGreaterThanOrEqual(finished["attempt"] as? Int ?? 0, 2, "\(finished)")
        XCTAssertEqual(finished["done"] as? Int, individuals, "\(finished)")
        XCTAssertNil(finished["next_attempt_in_seconds"], "\(finished)")
        XCTAssertEqual((finished["previous"] as? [[String: any Sendable]])?.count, 0, "one entry per job, not one per attempt: \(finished)")
        let done = try String(contentsOfFile: stateDir + "/rescore-done", encoding: .utf8)
        XCTAssertTrue(done.contains(try XCTUnwrap(store.latestModel(name: "individual-business")).hash.hexString))
        // The job is over: nothing runs it again.
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertEqual(rescorer.status?["attempt"] as? Int, finished["attempt"] as? Int)
        XCTAssertEqual(rescorer.status?["state"] as? String, "finished")
    }
}
