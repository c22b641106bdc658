import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore
@testable import Scoring
import XCTest

/// The running node's ledger engine refuses tampered score updates; the rescorer scores every
/// subject of a store while blocks keep being appended.
final class NodeAndRescoreTests: XCTestCase {
    var directory = ""

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scoring-node-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    func testLedgerCommitsHonestAndRefusesTamperedScoreUpdates() async throws {
        let c = try ScoringConsortium(validators: ["samr"])
        let store = try ChainStore.create(path: "\(directory)/ledger", genesis: c.genesis)
        let ledger = try Ledger(store: store, validatorKeys: c.keys["samr"]!, clock: { asOfMillis }, blockInterval: .milliseconds(5))
        let producer = Task { await ledger.runBlockProducer() }
        defer { producer.cancel() }
        var nonce: UInt64 = 0
        let records = Examples.teaShop().list
        _ = try await ledger.submit(try records.map { nonce += 1; return try c.attest($0, by: "samr", nonce: nonce) })

        let subject = try USCC("92330106MA2H4K7Q3A")
        let engine = ScoreEngine(genesis: c.genesis)
        let (inputs, date) = try store.scoreInputs(subject: subject)
        let asOf = ScoreAsOf(logSize: store.head.logSize, date: date)
        let model = try engine.model(try XCTUnwrap(store.latestModel(name: "individual-business")))
        let honest = try engine.makeScoreUpdate(subject: subject, inputs: inputs.map(\.transaction), model: model, asOf: asOf)
        func endorsed(_ u: ScoreUpdateBody) -> ScoreUpdateBody {
            var e = u
            e.endorsements = [MemberSignature(member: "data-bureau", keyID: c.member("data-bureau").keyID,
                                              signature: c.keys["data-bureau"]!.signing.signature(for: u.endorsementMessage(chainID: c.genesis.chainID)))]
            return e
        }
        var tampered = honest
        tampered.grade = .s
        nonce += 1
        do {
            _ = try await ledger.submit([c.scoreTransaction(endorsed(tampered), nonce: nonce)])
            XCTFail("a tampered score update was committed")
        } catch {
            XCTAssertTrue("\(error)".contains("claims grade S"), "\(error)")
        }
        nonce += 1
        let committed = try await ledger.submit([c.scoreTransaction(endorsed(honest), nonce: nonce)])
        XCTAssertEqual(committed.count, 1)
        XCTAssertEqual(try store.scoreUpdates(of: subject, limit: 5).first?.transaction.id, committed[0].id)
    }

    /// Writes `count` demo subjects' records into a store, in blocks of `perBlock`.
    static func writeDemo(_ c: ScoringConsortium, store: ChainStore, subjects: Int, seed: UInt64, nonce: inout UInt64) throws -> DemoSubjects {
        let demo = DemoSubjects(count: subjects, seed: seed, asOf: try LedgerDate(iso: "2026-11-21"))
        var block: [Submission] = []
        let signers = c.genesis.validators.map { (member: $0, key: c.keys[$0.id]!.signing) }
        for records in demo.records {
            for r in records {
                nonce += 1
                let signer = r.issuer_role == "bank" ? "bank-a" : "samr"
                let tx = Transaction.sign(header: c.header(signer, nonce: nonce), body: .attestation(try r.body()), key: c.keys[signer]!.signing)
                block.append(Submission(transaction: tx, envelope: nil))
            }
            if block.count >= 500 {
                try store.appendBlock(block, timestampMillis: asOfMillis, proposer: "samr", signers: signers)
                block = []
            }
        }
        if !block.isEmpty { try store.appendBlock(block, timestampMillis: asOfMillis, proposer: "samr", signers: signers) }
        return demo
    }

    func testDemoSubjectsAreValidAndReplayExactly() throws {
        let asOf = try LedgerDate(iso: "2026-11-21")
        let demo = DemoSubjects(count: 400, seed: 11, asOf: asOf)
        XCTAssertEqual(DemoSubjects(count: 400, seed: 11, asOf: asOf).records, demo.records, "a seed replays exactly")
        XCTAssertNotEqual(DemoSubjects(count: 400, seed: 12, asOf: asOf).records, demo.records)
        let kinds = Dictionary(grouping: demo.subjects, by: \.subject_kind).mapValues(\.count)
        XCTAssertGreaterThan(kinds["individual_business"] ?? 0, 200)
        XCTAssertGreaterThan(kinds["enterprise"] ?? 0, 90)
        XCTAssertGreaterThan(Set(demo.subjects.map(\.industry)).count, 8)
        XCTAssertGreaterThan(Set(demo.subjects.map(\.division)).count, 5)
        XCTAssertGreaterThan(demo.recordCount, 400 * 6)
        for (s, records) in zip(demo.subjects, demo.records) {
            let uscc = try USCC(s.uscc)
            XCTAssertEqual(uscc.subjectKind?.name, s.subject_kind)
            XCTAssertEqual(uscc.divisionCode, s.division)
            XCTAssertEqual(records.first?.category, "registration", "a subject's first record is its registration")
            for r in records {
                let body = try r.body()
                XCTAssertNoThrow(try body.check())
                XCTAssertLessThanOrEqual(body.eventDate, asOf)
            }
        }
        // Plausible grade spread under the shipped models.
        let ib = try Models.individualBusiness(), ent = try Models.enterprise()
        var grades: [Grade: Int] = [:]
        for (s, records) in zip(demo.subjects, demo.records) {
            let facts = try SubjectFacts(subject: try USCC(s.uscc), records: try records.enumerated().map { (try $1.body(), SHA256.hash([UInt8($0 % 256)])) }, asOfDate: asOf)
            grades[try Evaluator.evaluate(s.subject_kind == "enterprise" ? ent : ib, facts).grade, default: 0] += 1
        }
        XCTAssertGreaterThanOrEqual(grades.count, 5, "\(grades)")
        XCTAssertGreaterThan((grades[.a] ?? 0) + (grades[.aPlus] ?? 0) + (grades[.b] ?? 0), 200, "\(grades)")
    }

    func testRescorerScoresEverySubjectWhileBlocksAreAppended() throws {
        let c = try ScoringConsortium()
        let store = try ChainStore.create(path: "\(directory)/rescore", genesis: c.genesis)
        var nonce: UInt64 = 0
        let demo = try Self.writeDemo(c, store: store, subjects: 600, seed: 5, nonce: &nonce)
        let asOfLogSize = store.head.logSize
        let engine = ScoreEngine(genesis: c.genesis)
        let model = try engine.model(try XCTUnwrap(store.latestModel(name: "enterprise")))
        let rescorer = Rescorer(store: store, engine: engine, model: model, batchSize: 64)

        // Ingestion continues on another thread while the rescorer runs.
        let writer = Thread {
            var n: UInt64 = 1_000_000
            _ = try? Self.writeDemo(c, store: store, subjects: 300, seed: 99, nonce: &n)
        }
        writer.start()
        var updates: [ScoreUpdateBody] = []
        var progress: [Rescorer.Progress] = []
        let summary = try rescorer.run(asOfLogSize: asOfLogSize, progress: { progress.append($0) }) { batch, results in
            XCTAssertLessThanOrEqual(batch.count, 64)
            XCTAssertEqual(batch.count, results.count)
            updates += batch
        }
        while writer.isExecuting || !writer.isFinished { Thread.sleep(forTimeInterval: 0.01) }

        let enterprises = demo.subjects.filter { $0.subject_kind == "enterprise" }
        XCTAssertEqual(updates.count, enterprises.count)
        XCTAssertEqual(summary.progress.failed, 0, "\(summary.failures)")
        XCTAssertEqual(summary.progress.skipped, demo.subjects.count - enterprises.count)
        XCTAssertEqual(summary.grades.reduce(0, +), enterprises.count)
        XCTAssertEqual(progress.last?.subjectsDone, demo.subjects.count)
        XCTAssertTrue(progress.map(\.updates) == progress.map(\.updates).sorted())
        // Each update is exactly what the validator accepts, against the store that kept growing.
        let validator = TransactionValidator.withScoring(genesis: c.genesis)
        for u in updates.prefix(40) {
            var e = u
            e.endorsements = [try engine.endorse(update: u, recomputedFrom: try store.subjectRecords(u.subject, before: u.asOfLogSize, limit: 2000).map(\.transaction),
                                                 model: model, asOf: summary.asOf, keys: c.keys["data-bureau"]!)]
            XCTAssertNoThrow(try validator.checkStateful(c.scoreTransaction(e, nonce: 9_000_000).transaction, state: store))
        }
        XCTAssertGreaterThan(store.head.logSize, asOfLogSize, "ingestion went on")
        // Stopping early leaves the rest for a later run.
        let stopped = try rescorer.run(shouldStop: { true }) { _, _ in }
        XCTAssertTrue(stopped.stopped)
    }

    /// The subject index keeps what scoring reads of every record (ScoreIndex.swift): the same
    /// records as decoding the transactions, corrections and revocations included, and the
    /// rescorer's updates are exactly those computed from the transactions. Entries of a store
    /// written before (the kind byte alone) are read from the transactions instead.
    func testSubjectIndexKeepsWhatScoringReadsOfEveryRecord() throws {
        let c = try ScoringConsortium()
        let store = try ChainStore.create(path: "\(directory)/index", genesis: c.genesis)
        var nonce: UInt64 = 0
        let demo = try Self.writeDemo(c, store: store, subjects: 300, seed: 8, nonce: &nonce)
        // Amendments: correct some of the supervision bureau's records, revoke others, correct a correction.
        var amendments: [Submission] = []
        var corrected: [Hash] = []
        let signers = c.genesis.validators.map { (member: $0, key: c.keys[$0.id]!.signing) }
        for s in demo.subjects.prefix(40) {
            let records = try store.subjectRecords(try USCC(s.uscc), before: store.head.logSize, limit: 100)
            guard let first = records.first(where: { $0.transaction.header.signer == "samr" }), case .attestation(var body) = first.transaction.body else { continue }
            nonce += 1
            if amendments.count % 3 == 2 {
                amendments.append(try c.amend(AmendmentBody(action: .revocation, target: first.transaction.id, reason: "error", replacement: nil), by: "samr", nonce: nonce))
            } else {
                body.attributes = body.attributes.map { Attribute(name: $0.name, value: $0.value + 1) }
                body.severity = body.category == .penalty ? .serious : body.severity
                let fix = try c.amend(AmendmentBody(action: .correction, target: first.transaction.id, reason: "fix", replacement: body), by: "samr", nonce: nonce)
                amendments.append(fix)
                corrected.append(fix.transaction.id)
            }
        }
        try store.appendBlock(amendments, timestampMillis: asOfMillis, proposer: "samr", signers: signers)
        var again: [Submission] = []
        for id in corrected.prefix(5) {
            guard let tx = try store.committedTransaction(id: id), case .amendment(var a) = tx.body, var r = a.replacement else { continue }
            r.industry = "F52"
            a = AmendmentBody(action: .correction, target: id, reason: "again", replacement: r)
            nonce += 1
            again.append(try c.amend(a, by: "samr", nonce: nonce))
        }
        try store.appendBlock(again, timestampMillis: asOfMillis, proposer: "samr", signers: signers)
        XCTAssertGreaterThan(amendments.count + again.count, 30)

        let size = store.head.logSize
        let asOf = ScoreAsOf(logSize: size, date: try LedgerDate(iso: "2026-11-21"))
        let engine = ScoreEngine(genesis: c.genesis)
        let models = try ["individual-business", "enterprise"].map { try engine.model(try XCTUnwrap(store.latestModel(name: $0))) }
        func fromTransactions(_ subject: USCC) throws -> (records: [ScoreRecord], updates: [ScoreUpdateBody]) {
            let txs = try store.subjectRecords(subject, before: size, limit: 2000).map(\.transaction)
            let updates = try models.filter { $0.applies(to: subject.subjectKind!) }.map { try engine.makeScoreUpdate(subject: subject, inputs: txs, model: $0, asOf: asOf) }
            return (try txs.map(ScoreRecord.init), updates)
        }
        var expected: [USCC: [ScoreUpdateBody]] = [:]
        for s in demo.subjects {
            let subject = try USCC(s.uscc)
            let (records, updates) = try fromTransactions(subject)
            XCTAssertEqual(try store.scoreRecords(subject, before: size, limit: 2000), records, "\(subject)")
            expected[subject] = updates
        }
        var rescored: [USCC: [ScoreUpdateBody]] = [:]
        for model in models {
            let summary = try Rescorer(store: store, engine: engine, model: model).run(asOfLogSize: size) { batch, _ in
                for u in batch { rescored[u.subject, default: []].append(u) }
            }
            XCTAssertEqual(summary.progress.failed, 0, "\(summary.failures)")
        }
        XCTAssertEqual(rescored, expected)

        // A store whose entries hold only the kind byte (written before the index kept metadata).
        let subject = try USCC(demo.subjects[0].uscc)
        let batch = WriteBatch(for: store.database)
        for (index, kind) in try store.subjectHistory(subject, limit: 2000) {
            try batch.put("subjects", Array(subject.code.utf8) + Self.u64(index), [kind])
        }
        try store.database.write(batch)
        XCTAssertEqual(try store.scoreRecords(subject, before: size, limit: 2000), try fromTransactions(subject).records)
        var old: [ScoreUpdateBody] = []
        _ = try Rescorer(store: store, engine: engine, model: models[subject.subjectKind == .enterprise ? 1 : 0]).run(asOfLogSize: size) { batch, _ in
            old += batch.filter { $0.subject == subject }
        }
        XCTAssertEqual(old, expected[subject])
    }

    /// The dev ledger engine (one scorer, no endorsements) re-scores every subject in the
    /// background after a model install, while attestations keep committing; the v1 scores stay;
    /// a restart finds the job done (`rescore-done`), and without that file resumes and skips
    /// every subject whose update already committed.
    func testDevLedgerRescoresEverySubjectAfterAModelInstall() async throws {
        let (keys, member, genesis, store) = try devScorerChain(chainID: "creditledger.test/upgrade")
        let demo = DemoSubjects(count: 300, seed: 4, asOf: try LedgerDate(iso: "2026-11-21"))
        var nonce: UInt64 = 0
        let engine = ScoreEngine(genesis: genesis)
        let v1 = try engine.model(genesis.models[0])
        var block: [Submission] = []
        for (s, records) in zip(demo.subjects, demo.records) {
            for r in records {
                nonce += 1
                block.append(Submission(transaction: Transaction.sign(header: TransactionHeader(chainID: genesis.chainID, signer: "dev", keyID: member.keyID, nonce: nonce, issuedAtMillis: asOfMillis),
                                                                      body: .attestation(try r.body()), key: keys.signing), envelope: nil))
            }
            _ = s
        }
        try store.appendBlock(block, timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])
        // v1 scores of the individual businesses, committed before the upgrade.
        let asOf = ScoreAsOf(logSize: store.head.logSize, date: try LedgerDate(iso: "2026-11-21"))
        var v1Updates: [Submission] = []
        for s in demo.subjects where s.subject_kind == "individual_business" {
            let subject = try USCC(s.uscc)
            let u = try engine.makeScoreUpdate(subject: subject, records: try store.scoreRecords(subject, before: asOf.logSize, limit: 2000), model: v1, asOf: asOf)
            nonce += 1
            v1Updates.append(Submission(transaction: Transaction.sign(header: TransactionHeader(chainID: genesis.chainID, signer: "dev", keyID: member.keyID, nonce: nonce, issuedAtMillis: asOfMillis),
                                                                      body: .scoreUpdate(u), key: keys.signing), envelope: nil))
        }
        try store.appendBlock(v1Updates, timestampMillis: asOfMillis, proposer: "dev", signers: [(member, keys.signing)])

        let stateDir = "\(directory)/state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        var ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        var producer = Task { [ledger] in await ledger.runBlockProducer() }
        // Install individual-business v2, then keep attesting new subjects.
        let g = Self.individualBusinessV2(genesis: genesis, keys: keys)
        nonce += 1
        let install = Transaction.sign(header: TransactionHeader(chainID: genesis.chainID, signer: "dev", keyID: member.keyID, nonce: nonce, issuedAtMillis: asOfMillis),
                                       body: .governance(g), key: keys.signing)
        _ = try await ledger.submit([Submission(transaction: install, envelope: nil)])
        let more = DemoSubjects(count: 100, seed: 5, asOf: try LedgerDate(iso: "2026-11-21"))
        var committedDuring = 0
        for records in more.records {
            let subs = try records.map { r -> Submission in nonce += 1; return try r.request.build(genesis: genesis, keys: keys, nonce: nonce, issuedAtMillis: asOfMillis) }
            committedDuring += try await ledger.submit(subs).count
        }
        try await Self.waitUntilRescoreFinished(ledger, modelHash: g.documentHash.hexString)
        let status = try XCTUnwrap(ledger.rescoreStatus)
        XCTAssertEqual(status["state"] as? String, "finished", "\(status)")
        let individuals = demo.subjects.filter { $0.subject_kind == "individual_business" }.count
        XCTAssertEqual(status["done"] as? Int, individuals, "\(status)")
        XCTAssertEqual(status["total"] as? Int, individuals)
        XCTAssertGreaterThan(committedDuring, 0)

        let v2Hash = g.documentHash
        func updates(_ subject: USCC) throws -> [ScoreUpdateBody] {
            try store.scoreUpdates(of: subject, limit: 100).compactMap { if case .scoreUpdate(let u) = $0.transaction.body { return u } else { return nil } }
        }
        var v2Count = 0
        for s in demo.subjects {
            let subject = try USCC(s.uscc)
            let list = try updates(subject)
            if s.subject_kind == "individual_business" {
                XCTAssertTrue(list.contains { $0.modelHash == v1.hash }, "\(subject) lost its v1 score")
                let v2 = list.filter { $0.modelHash == v2Hash }
                XCTAssertEqual(v2.count, 1, "\(subject): \(v2.count) v2 updates")
                XCTAssertEqual(v2.first?.asOfLogSize, try store.location(of: install.id)!.logIndex + 1, "as of the block holding the install (alone in it)")
                v2Count += v2.count
            } else {
                XCTAssertTrue(list.isEmpty, "an enterprise was scored under the individual-business model")
            }
        }
        XCTAssertEqual(v2Count, individuals)

        // Restart: the finished job is not run again.
        producer.cancel()
        await producer.value
        ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        producer = Task { [ledger] in await ledger.runBlockProducer() }
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertNil(ledger.rescoreStatus)
        producer.cancel()
        await producer.value
        // Without the record of it, a restart resumes the job and finds every subject done.
        try FileManager.default.removeItem(atPath: stateDir + "/rescore-done")
        let sizeBefore = store.head.logSize
        ledger = try Ledger(store: store, validatorKeys: keys, clock: { asOfMillis }, blockInterval: .milliseconds(20), rescoreStateDirectory: stateDir)
        producer = Task { [ledger] in await ledger.runBlockProducer() }
        try await Self.waitUntilRescoreFinished(ledger, modelHash: g.documentHash.hexString)
        XCTAssertEqual(ledger.rescoreStatus?["done"] as? Int, individuals)
        XCTAssertEqual(store.head.logSize, sizeBefore, "subjects already re-scored were scored again")
        XCTAssertTrue(FileManager.default.fileExists(atPath: stateDir + "/rescore-done"))

        // v4, then v3: the lower version installed after the higher one re-scores nothing (its
        // updates, as of a later log size, would count as fresher than v4's and be served).
        for version: UInt32 in [4, 3] {
            nonce += 1
            let g = Self.individualBusinessV2(genesis: genesis, keys: keys, version: version)
            _ = try await ledger.submit([Submission(transaction: Transaction.sign(
                header: TransactionHeader(chainID: genesis.chainID, signer: "dev", keyID: member.keyID, nonce: nonce, issuedAtMillis: asOfMillis),
                body: .governance(g), key: keys.signing), envelope: nil)])
            if version == 4 { try await Self.waitUntilRescoreFinished(ledger, modelHash: g.documentHash.hexString) } else { try await Task.sleep(for: .milliseconds(500)) }
        }
        let v3Hash = Self.individualBusinessV2(genesis: genesis, keys: keys, version: 3).documentHash
        let v4Hash = Self.individualBusinessV2(genesis: genesis, keys: keys, version: 4).documentHash
        XCTAssertEqual(ledger.rescoreStatus?["model_hash"] as? String, v4Hash.hexString, "\(String(describing: ledger.rescoreStatus))")
        for s in demo.subjects where s.subject_kind == "individual_business" {
            let list = try updates(try USCC(s.uscc))
            XCTAssertFalse(list.contains { $0.modelHash == v3Hash }, "re-scored under the lower version v3")
            XCTAssertTrue(list.contains { $0.modelHash == v4Hash })
        }
        producer.cancel()
        await producer.value
    }

    /// A one-member dev chain whose member validates, holds the payloads, attests, lends and
    /// scores, with the individual-business and enterprise scorecards (v1) in genesis.
    func devScorerChain(chainID: String) throws -> (keys: MemberSecretKeys, member: Member, genesis: Genesis, store: ChainStore) {
        let keys = MemberSecretKeys(memberID: "dev")
        let member = Member(id: "dev", name: "dev", roles: [.validator, .custodian, .governmentIssuer, .bank, .scorer],
                            signingKey: keys.signing.publicKey, encryptionKey: keys.encryption.publicKey)
        let genesis = try Genesis(bytes: Genesis.render(chainID: chainID, genesisTime: "2026-11-21T00:00:00Z",
                                                        members: [member], models: try ["individual-business.json", "enterprise.json"].map(Models.installed)))
        return (keys, member, genesis, try ChainStore.create(path: "\(directory)/ledger", genesis: genesis))
    }

    /// Installing individual-business v2 (v1's document, version raised), approved by the dev member.
    static func individualBusinessV2(genesis: Genesis, keys: MemberSecretKeys, version: UInt32 = 2) -> GovernanceBody {
        let v1 = genesis.models.first { $0.name == "individual-business" }!
        let text = String(decoding: v1.document, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": \(version)")
        var g = GovernanceBody(action: .installModel, name: "individual-business", version: version, document: Array(text.utf8))
        let member = genesis.member(keys.memberID)!
        g.approvals = [MemberSignature(member: member.id, keyID: member.keyID, signature: keys.signing.signature(for: g.approvalMessage(chainID: genesis.chainID)))]
        return g
    }

    /// Waits up to 30 s for the background re-score to report "finished".
    /// Waits until the re-score job for `modelHash` has finished. The model is named because the
    /// status of an earlier, finished job stays in view until the ledger starts the next one.
    static func waitUntilRescoreFinished(_ ledger: Ledger, modelHash: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let s = ledger.rescoreStatus, s["model_hash"] as? String == modelHash, s["state"] as? String == "finished" { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTFail("the re-score under \(modelHash) did not finish within 60 s: \(String(describing: ledger.rescoreStatus))", file: file, line: line)
    }

    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }
}
