import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
@testable import Scoring
import XCTest

/// Score updates on a chain: two custodians agree; tampered updates are refused by the
/// validator every node runs and by the chain verifier; amendments lead to new scores.
final class ScoreUpdateTests: XCTestCase {
    var directory = ""

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scoring-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// A chain holding examples A (individual business) and B (enterprise), one block each.
    func chain(_ consortium: ScoringConsortium? = nil, name: String = "chain") throws -> (ScoringChain, a: [Hash], b: [Hash]) {
        let chain = try ScoringChain(try consortium ?? ScoringConsortium(), path: "\(directory)/\(name)")
        let a = try chain.attest(Examples.teaShop())
        let b = try chain.attest(Examples.foodFactory())
        return (chain, a, b)
    }

    /// An update by `engine` for `subject` under the latest `model`, as of the committed log.
    func update(_ chain: ScoringChain, _ subject: USCC, _ model: String, engine: ScoreEngine? = nil,
                asOfLogSize: UInt64? = nil) throws -> (ScoreUpdateBody, [Transaction], ScoreAsOf, ScoringModel) {
        let e = engine ?? ScoreEngine(genesis: chain.store.genesis)
        let (records, date) = try chain.store.scoreInputs(subject: subject, asOfLogSize: asOfLogSize)
        let asOf = ScoreAsOf(logSize: asOfLogSize ?? chain.store.head.logSize, date: date)
        let compiled = try e.model(try XCTUnwrap(chain.store.latestModel(name: model)))
        let inputs = records.map(\.transaction)
        return (try e.makeScoreUpdate(subject: subject, inputs: inputs, model: compiled, asOf: asOf), inputs, asOf, compiled)
    }

    /// The endorsement a scorer signs without recomputing (a colluding endorser).
    func blindEndorsement(_ u: ScoreUpdateBody, _ c: ScoringConsortium, by member: String = "data-bureau") -> MemberSignature {
        MemberSignature(member: member, keyID: c.member(member).keyID,
                        signature: c.keys[member]!.signing.signature(for: u.endorsementMessage(chainID: c.genesis.chainID)))
    }

    func testTwoCustodiansComputeTheSameScoreAndTheUpdateCommits() throws {
        let (chain, a, _) = try chain()
        let c = chain.consortium
        let subject = try USCC("92330106MA2H4K7Q3A")
        // Two custodians, each with its own engine and its own compilation of the model bytes.
        let samr = ScoreEngine(genesis: c.genesis, cache: ModelCache())
        let data = ScoreEngine(genesis: c.genesis, cache: ModelCache())
        let (u1, inputs, asOf, model1) = try update(chain, subject, "individual-business", engine: samr)
        let (u2, _, _, _) = try update(chain, subject, "individual-business", engine: data)
        XCTAssertEqual(u1, u2)
        XCTAssertEqual(u1.points, 685, "worked example A")
        XCTAssertEqual(u1.grade, .a)
        XCTAssertEqual(u1.inputs, a)
        XCTAssertEqual(asOf.date, try LedgerDate(iso: "2026-11-21"))
        XCTAssertEqual(u1.asOfLogSize, 22)
        // The second custodian recomputes from its own store view and endorses.
        let model2 = try data.model(try XCTUnwrap(chain.store.latestModel(name: "individual-business")))
        var endorsed = u1
        endorsed.endorsements = [try data.endorse(update: u1, recomputedFrom: inputs, model: model2, asOf: asOf, keys: c.keys["data-bureau"]!)]
        // Live endorsers recompute from the subject index's scoring entries instead: the same endorsement.
        let records = try chain.store.scoreRecords(subject, before: u1.asOfLogSize, limit: FieldLimits.scoreInputs)
        XCTAssertEqual(try data.endorse(update: u1, recomputedFromRecords: records, model: model2, asOf: asOf, keys: c.keys["data-bureau"]!),
                       endorsed.endorsements[0])
        XCTAssertEqual(try samr.makeScoreUpdate(subject: subject, records: records, model: model1, asOf: asOf), u1)
        XCTAssertEqual(model1.hash, model2.hash)
        try chain.append([c.scoreTransaction(endorsed, nonce: chain.nextNonce())])
        // Every node's validator accepted it; the verifier recomputes it too.
        let summary = try chain.verify()
        XCTAssertEqual(summary.scoreUpdatesChecked, 1)
        XCTAssertEqual(summary.scoreInputsChecked, 10)
        XCTAssertEqual(summary.modelsInstalled, 3)
        XCTAssertEqual(try chain.store.scoreUpdates(of: subject, limit: 10).count, 1)
        // The endorser refuses its own update and a non-scorer cannot endorse.
        XCTAssertThrowsError(try samr.endorse(update: endorsed, recomputedFrom: inputs, model: model1, asOf: asOf, keys: c.keys["data-bureau"]!))
        XCTAssertThrowsError(try samr.endorse(update: u1, recomputedFrom: inputs, model: model1, asOf: asOf, keys: c.keys["bank-a"]!)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
        }
    }

    func testTamperedScoreUpdatesAreRejectedByTheValidator() throws {
        let (chain, _, b) = try chain()
        let c = chain.consortium
        let subject = try USCC("92330106MA2H4K7Q3A")
        let (honest, inputs, asOf, model) = try update(chain, subject, "individual-business")
        let engine = ScoreEngine(genesis: c.genesis)
        let validator = TransactionValidator.withScoring(genesis: c.genesis)
        let indexRecords = try chain.store.scoreRecords(subject, before: honest.asOfLogSize, limit: FieldLimits.scoreInputs)
        var tampers: [(String, String, (inout ScoreUpdateBody) -> Void)] = [
            ("points raised", "points", { $0.points += 1 }),
            ("grade raised", "grade", { $0.grade = .aPlus }),
            ("grade and points raised together", "points", { $0.points = 760; $0.grade = .aPlus }),
            ("a dimension changed", "dimensions", { $0.dimensions[3] = .init(code: "violations", points: 0) }),
            ("dimensions reordered", "dimensions", { $0.dimensions.swapAt(0, 1) }),
            ("an input dropped (the penalty)", "omit", { $0.inputs.remove(at: 8) }),
            ("an input of another subject added", "not a record about", { $0.inputs.append(b[0]) }),
            ("an unknown input added", "not a committed transaction", { $0.inputs.append(SHA256.hash([7])) }),
            ("inputs reordered", "log order", { $0.inputs.swapAt(0, 1) }),
            ("an input listed twice", "twice", { $0.inputs[1] = $0.inputs[0] }),
            ("as-of beyond the committed log", "as_of_log_size", { $0.asOfLogSize += 1 }),
            ("as-of zero", "as_of_log_size", { $0.asOfLogSize = 0 }),
            ("an uninstalled model", "not installed", { $0.modelHash = SHA256.hash([1]) }),
        ]
        let enterpriseHash = try XCTUnwrap(chain.store.latestModel(name: "enterprise")).hash
        tampers.append(("a model for the other subject kind", "scores enterprise", { $0.modelHash = enterpriseHash }))
        for (name, words, change) in tampers {
            var u = honest
            change(&u)
            u.endorsements = [blindEndorsement(u, c)]
            let s = c.scoreTransaction(u, nonce: chain.nextNonce())
            XCTAssertNoThrow(try validator.checkStateless(s), "\(name): signatures are valid")
            XCTAssertThrowsError(try validator.checkStateful(s.transaction, state: chain.store), name) { error in
                XCTAssertTrue("\(error)".contains(words), "\(name): \(error)")
            }
            // An honest second custodian recomputes and refuses to endorse.
            var bare = u
            bare.endorsements = []
            XCTAssertThrowsError(try engine.endorse(update: bare, recomputedFrom: inputs, model: model, asOf: asOf,
                                                    keys: c.keys["data-bureau"]!), name)
            XCTAssertThrowsError(try engine.endorse(update: bare, recomputedFromRecords: indexRecords, model: model, asOf: asOf,
                                                    keys: c.keys["data-bureau"]!), name)
        }
        // Changed after endorsement: the endorsement no longer verifies (checked without state).
        var u = honest
        u.endorsements = [blindEndorsement(u, c)]
        u.points += 5
        XCTAssertThrowsError(try validator.checkStateless(c.scoreTransaction(u, nonce: chain.nextNonce()))) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .badSignature)
        }
        // Without the required endorsement.
        XCTAssertThrowsError(try validator.checkStateless(c.scoreTransaction(honest, nonce: chain.nextNonce()))) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
        }
        // A validator without the scoring engine refuses score updates rather than passing them.
        var good = honest
        good.endorsements = [blindEndorsement(good, c)]
        let goodTx = c.scoreTransaction(good, nonce: chain.nextNonce())
        XCTAssertNoThrow(try validator.checkStateful(goodTx.transaction, state: chain.store))
        XCTAssertThrowsError(try TransactionValidator(genesis: c.genesis).checkStateful(goodTx.transaction, state: chain.store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .notAuthorized)
        }
    }

    /// A node's memo of passed score checks (`CheckMemo`): the same update is recomputed
    /// once, a tampered variant of a memoized update is still recomputed and refused, the replay
    /// guard still runs for a memoized update, and the memo forgets its oldest beyond capacity.
    func testScoreCheckMemoSkipsOnlyTheRecomputationOfAnUpdateThatPassed() throws {
        let (chain, _, _) = try chain()
        let c = chain.consortium
        let (honest, _, _, _) = try update(chain, try USCC("92330106MA2H4K7Q3A"), "individual-business")
        var validator = TransactionValidator.withScoring(genesis: c.genesis)
        validator.scoreChecks = CheckMemo(capacity: 2)
        var good = honest
        good.endorsements = [blindEndorsement(good, c)]
        let goodTx = c.scoreTransaction(good, nonce: chain.nextNonce()).transaction
        try validator.checkStateful(goodTx, state: chain.store)
        try validator.checkStateful(goodTx, state: chain.store)
        XCTAssertTrue(validator.scoreChecks!.statistics == (checked: 1, reused: 1))
        var raised = honest
        raised.points += 1
        raised.endorsements = [blindEndorsement(raised, c)]
        XCTAssertThrowsError(try validator.checkStateful(c.scoreTransaction(raised, nonce: chain.nextNonce()).transaction, state: chain.store)) {
            XCTAssertTrue("\($0)".contains("points"), "\($0)")
        }
        // The same body under another nonce is another transaction: recomputed, and it passes.
        let again = c.scoreTransaction(good, nonce: chain.nextNonce()).transaction
        try validator.checkStateful(again, state: chain.store)
        XCTAssertTrue(validator.scoreChecks!.statistics == (checked: 2, reused: 1))
        // Committed: the memoized update is now a replay.
        try chain.append([Submission(transaction: goodTx, envelope: nil)])
        XCTAssertThrowsError(try validator.checkStateful(goodTx, state: chain.store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .replay)
        }
        // Capacity 2: a third passed update pushes out the first, which is then recomputed.
        let third = c.scoreTransaction(good, nonce: chain.nextNonce()).transaction
        try validator.checkStateful(third, state: chain.store)
        let before = validator.scoreChecks!.statistics
        XCTAssertNoThrow(try validator.checkStateful(again, state: chain.store))
        XCTAssertEqual(validator.scoreChecks!.statistics.reused, before.reused + 1, "the second is still held")
        let fourth = c.scoreTransaction(good, nonce: chain.nextNonce()).transaction
        try validator.checkStateful(fourth, state: chain.store)
        let held = validator.scoreChecks!.statistics
        try validator.checkStateful(third, state: chain.store)
        XCTAssertEqual(validator.scoreChecks!.statistics.reused, held.reused + 1)
        try validator.checkStateful(again, state: chain.store)
        XCTAssertEqual(validator.scoreChecks!.statistics.checked, held.checked + 1, "the oldest was forgotten and recomputed")
    }

    /// A dishonest proposer certifies blocks holding tampered updates: the verifier names each.
    func testTamperedScoreUpdateInACertifiedBlockFailsTheVerifier() throws {
        let cases: [(String, String, (inout ScoreUpdateBody) -> Void)] = [
            ("points", "claims points 700", { $0.points = 700 }),
            ("grade", "claims grade A+", { $0.grade = .aPlus }),
            ("inputs", "omit", { $0.inputs.removeLast() }),
        ]
        for (i, (name, words, change)) in cases.enumerated() {
            let (chain, _, _) = try chain(name: "tampered-\(i)")
            let c = chain.consortium
            var (u, _, _, _) = try update(chain, try USCC("92330106MA2H4K7Q3A"), "individual-business")
            change(&u)
            u.endorsements = [blindEndorsement(u, c)]
            try chain.append([try c.attest(Examples.teaShop().list[0], by: "samr", nonce: chain.nextNonce()),
                              c.scoreTransaction(u, nonce: chain.nextNonce())], validate: false)
            XCTAssertThrowsError(try chain.verify(), name) { error in
                guard let f = error as? ChainFailure else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(f.height, 3, "\(name): \(f)")
                XCTAssertEqual(f.transactionIndex, 1, "\(name): \(f)")
                XCTAssertTrue(f.reason.contains(words), "\(name): \(f)")
            }
        }
    }

    /// Corrections and revocations change the inputs, so a new score; the old one stays in history
    /// and stays valid as of its own log size.
    func testAmendmentsLeadToNewScoresAndHistoryKeepsTheOld() throws {
        let (chain, a, _) = try chain()
        let c = chain.consortium
        let subject = try USCC("92330106MA2H4K7Q3A")
        let engine = ScoreEngine(genesis: c.genesis)
        func commitScore(asOfLogSize: UInt64? = nil) throws -> ScoreUpdateBody {
            var (u, inputs, asOf, model) = try update(chain, subject, "individual-business", engine: engine, asOfLogSize: asOfLogSize)
            u.endorsements = [try engine.endorse(update: u, recomputedFrom: inputs, model: model, asOf: asOf, keys: c.keys["data-bureau"]!)]
            try chain.append([c.scoreTransaction(u, nonce: chain.nextNonce())])
            return u
        }
        let first = try commitScore()
        XCTAssertEqual(first.points, 685)
        let firstAsOf = first.asOfLogSize
        // The penalty (input 8) is revoked: −10 violations and the 40-point clean-record bonus return.
        try chain.append([try c.amend(AmendmentBody(action: .revocation, target: a[8], reason: "quashed_on_review", replacement: nil),
                                      by: "samr", nonce: chain.nextNonce())])
        let second = try commitScore()
        XCTAssertEqual(second.inputs.count, 11)
        XCTAssertEqual(second.points, 735)
        // The tax grade is corrected from B to A: +30 honesty.
        var corrected = Examples.teaShop().list[2]
        corrected.attributes = [Attribute(name: "tax_grade", value: 1)]
        try chain.append([try c.amend(AmendmentBody(action: .correction, target: a[2], reason: "grade_misread", replacement: corrected),
                                      by: "samr", nonce: chain.nextNonce())])
        let third = try commitScore()
        XCTAssertEqual(third.points, 765)
        XCTAssertEqual(third.grade, .aPlus)
        // History: all three, newest first.
        XCTAssertEqual(try chain.store.scoreUpdates(of: subject, limit: 10).map { tx -> Int32 in
            guard case .scoreUpdate(let s) = tx.transaction.body else { return -1 }
            return s.points
        }, [765, 735, 685])
        // A score as of the old log size is still exactly the old score.
        XCTAssertEqual(try commitScore(asOfLogSize: firstAsOf).points, 685)
        XCTAssertEqual(try chain.verify().scoreUpdatesChecked, 4)
    }

    /// What a scorer's backlog asks of the store: does a committed update under the scorecard
    /// cover the subject's newest record below a log size? Only one as of a log size past that
    /// record does, and it sits in a later block, past the bound the records are taken below.
    func testScoreCoversNewestRecordOnlyWhenAsOfPastIt() throws {
        let (chain, _, _) = try chain()
        let c = chain.consortium
        let subject = try USCC("92330106MA2H4K7Q3A")
        let engine = ScoreEngine(genesis: c.genesis)
        let card = try XCTUnwrap(chain.store.latestModel(name: "individual-business")).hash
        /// Asked as the backlog asks: records below `recordsBefore`, updates up to the head.
        func covered(recordsBefore: UInt64? = nil) throws -> Bool {
            let head = chain.store.head.logSize
            return try chain.store.scoreCoversNewestRecord(subject, modelHash: card, recordsBefore: recordsBefore ?? head, before: head)
        }
        func commitScore(_ model: String = "individual-business", asOfLogSize: UInt64? = nil) throws {
            var (u, inputs, asOf, compiled) = try update(chain, subject, model, engine: engine, asOfLogSize: asOfLogSize)
            u.endorsements = [try engine.endorse(update: u, recomputedFrom: inputs, model: compiled, asOf: asOf, keys: c.keys["data-bureau"]!)]
            try chain.append([c.scoreTransaction(u, nonce: chain.nextNonce())])
        }
        let recordsEnd = chain.store.head.logSize
        XCTAssertFalse(try covered(), "records and no score")
        XCTAssertTrue(try chain.store.scoreCoversNewestRecord(try USCC("91330106MA27C1308F"), modelHash: card, recordsBefore: 0, before: 0),
                      "an empty log")
        try commitScore()
        XCTAssertTrue(try covered())
        XCTAssertTrue(try covered(recordsBefore: recordsEnd), "the update committed after the block of the records covers them")
        // A new record; then an update made from the state before it, committed after it.
        let before = chain.store.head.logSize
        try chain.append([try c.attest(Examples.teaShop().list[3], by: "samr", nonce: chain.nextNonce())])
        let afterRecord = chain.store.head.logSize
        XCTAssertFalse(try covered(), "a record after the score")
        XCTAssertTrue(try covered(recordsBefore: before), "the records before it are still covered")
        try commitScore(asOfLogSize: before)
        XCTAssertFalse(try covered(recordsBefore: afterRecord), "an update from before the record does not cover it")
        // An update under another model does not cover it either; one under the scorecard does.
        try commitScore("risk-warning")
        XCTAssertFalse(try covered(recordsBefore: afterRecord), "an update under the risk model")
        try commitScore()
        XCTAssertTrue(try covered(recordsBefore: afterRecord))
        XCTAssertTrue(try covered())
    }

    func testModelInstallByGovernance() throws {
        let c = try ScoringConsortium(models: ["individual-business.json", "enterprise.json"])
        let (chain, _, _) = try chain(c)
        XCTAssertNil(chain.store.latestModel(name: "risk-warning"))
        let document = try Models.bytes("risk-warning.json")
        let install = c.governance(GovernanceBody(action: .installModel, name: "risk-warning", version: 1, document: document), nonce: chain.nextNonce())
        try chain.append([install])
        XCTAssertEqual(chain.store.latestModel(name: "risk-warning")?.hash, SHA256.hash(document))
        // A score under the installed model validates; the validator and verifier know the model.
        let engine = ScoreEngine(genesis: c.genesis)
        var (u, inputs, asOf, model) = try update(chain, try USCC("91330106MA27C1308F"), "risk-warning", engine: engine)
        XCTAssertEqual(u.grade, .b, "worked example D for B: yellow")
        u.endorsements = [try engine.endorse(update: u, recomputedFrom: inputs, model: model, asOf: asOf, keys: c.keys["data-bureau"]!)]
        try chain.append([c.scoreTransaction(u, nonce: chain.nextNonce())])
        // Refused installs.
        let validator = TransactionValidator.withScoring(genesis: c.genesis)
        func refused(_ g: GovernanceBody, _ words: String, file: StaticString = #filePath, line: UInt = #line) {
            let s = c.governance(g, nonce: chain.nextNonce())
            XCTAssertThrowsError(try validator.checkStateful(s.transaction, state: chain.store), file: file, line: line) {
                XCTAssertTrue("\($0)".contains(words), "\($0)", file: file, line: line)
            }
        }
        refused(GovernanceBody(action: .installModel, name: "risk-warning", version: 1, document: document), "already installed")
        let ib = try Models.bytes("individual-business.json")
        refused(GovernanceBody(action: .installModel, name: "individual-business", version: 1, document: ib), "already installed")
        refused(GovernanceBody(action: .installModel, name: "risk-warning", version: 2, document: document), "declaring risk-warning version 1")
        let v2 = Array(String(decoding: document, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
            .replacingOccurrences(of: "-3500", with: "-3500.5").utf8)
        refused(GovernanceBody(action: .installModel, name: "risk-warning", version: 2, document: v2), "notInteger")
        // A new version keeps its name's kind: a risk warning as `enterprise` v3 (dated rule;
        // a certified block keeps one).
        let renamed = Array(String(decoding: document, as: UTF8.self).replacingOccurrences(of: "\"name\": \"risk-warning\"", with: "\"name\": \"enterprise\"")
            .replacingOccurrences(of: "\"version\": 1", with: "\"version\": 3").utf8)
        refused(GovernanceBody(action: .installModel, name: "enterprise", version: 3, document: renamed),
                "install_model enterprise version 3 is a risk_warning model, but enterprise version 1 is a scorecard")
        let kindChange = c.governance(GovernanceBody(action: .installModel, name: "enterprise", version: 3, document: renamed), nonce: chain.nextNonce())
        XCTAssertNoThrow(try validator.checkStateful(kindChange.transaction, state: chain.store, certified: true))
        // Version 2 of a model installs next to version 1; `latestModel` moves on.
        let good2 = Array(String(decoding: document, as: UTF8.self).replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2").utf8)
        try chain.append([c.governance(GovernanceBody(action: .installModel, name: "risk-warning", version: 2, document: good2), nonce: chain.nextNonce())])
        XCTAssertEqual(chain.store.latestModel(name: "risk-warning")?.version, 2)
        XCTAssertEqual(chain.store.allModels().map(\.version), [1, 1, 1, 2])
        // An update under v1, made now, would be served instead of v2's (fresher as of a later
        // log size): the validator refuses it, naming the version that supersedes it. An update
        // under v2 passes, and a block certified before the rule keeps its v1 updates.
        let subject = try USCC("91330106MA27C1308F")
        let v1Model = try engine.model(try XCTUnwrap(chain.store.allModels().first { $0.name == "risk-warning" && $0.version == 1 }))
        let (records, date) = try chain.store.scoreInputs(subject: subject, asOfLogSize: nil)
        let now = ScoreAsOf(logSize: chain.store.head.logSize, date: date)
        var stale = try engine.makeScoreUpdate(subject: subject, inputs: records.map(\.transaction), model: v1Model, asOf: now)
        stale.endorsements = [try engine.endorse(update: stale, recomputedFrom: records.map(\.transaction), model: v1Model, asOf: now, keys: c.keys["data-bureau"]!)]
        let staleTx = c.scoreTransaction(stale, nonce: chain.nextNonce()).transaction
        XCTAssertThrowsError(try validator.checkStateful(staleTx, state: chain.store)) {
            XCTAssertEqual(($0 as? LedgerError)?.code, .conflict)
            XCTAssertTrue("\($0)".contains("risk-warning v1, which v2 supersedes"), "\($0)")
        }
        XCTAssertNoThrow(try validator.checkStateful(staleTx, state: chain.store, certified: true))
        // The memo of a check passed before the install does not let it through either.
        var memoValidator = TransactionValidator.withScoring(genesis: c.genesis)
        memoValidator.scoreChecks = CheckMemo(capacity: 4)
        XCTAssertNoThrow(try memoValidator.checkStateful(staleTx, state: chain.store, certified: true))
        XCTAssertThrowsError(try memoValidator.checkStateful(staleTx, state: chain.store))
        var (current, currentInputs, currentAsOf, v2Model) = try update(chain, subject, "risk-warning", engine: engine)
        XCTAssertEqual(v2Model.version, 2)
        current.endorsements = [try engine.endorse(update: current, recomputedFrom: currentInputs, model: v2Model, asOf: currentAsOf, keys: c.keys["data-bureau"]!)]
        try chain.append([c.scoreTransaction(current, nonce: chain.nextNonce())])
        let summary = try chain.verify()
        XCTAssertEqual(summary.modelsInstalled, 4)
        XCTAssertEqual(summary.scoreUpdatesChecked, 2)
    }

    /// A store written before the model index existed is scanned once at open.
    func testStoreWithoutModelIndexIsScannedAtOpen() throws {
        let path = "\(directory)/legacy"
        do {
            let c = try ScoringConsortium(models: [])
            let chain = try ScoringChain(c, path: path)
            try chain.append([c.governance(GovernanceBody(action: .installModel, name: "enterprise", version: 1,
                                                          document: try Models.bytes("enterprise.json")), nonce: 1)])
        }
        try Database.editingStore(path) { db in
            let batch = WriteBatch(for: db)
            try batch.delete("meta", Array("model-index/v1".utf8))
            try batch.delete("meta", Array("model/".utf8) + SHA256.hash(try Models.bytes("enterprise.json")))
            try db.write(batch)
        }
        XCTAssertEqual(try ChainStore(path: path, mode: .readOnly).installedModels().map(\.name), ["enterprise"])
        XCTAssertEqual(try ChainStore(path: path).installedModels().map(\.name), ["enterprise"])
        try Database.editingStore(path) { db in XCTAssertNotNil(try db.get("meta", Array("model-index/v1".utf8)), "index written back") }
    }
}

extension Database {
    static func editingStore(_ path: String, _ body: (Database) throws -> Void) throws {
        try body(try Database(path: path, columnFamilies: ChainStore.columnFamilies))
    }
}
