import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore
@testable import Scoring
import XCTest

/// Provenance of score updates: offline receipts, custodian recomputation from decrypted
/// inputs, and the command-line tools auditors run.
final class ProvenanceTests: XCTestCase {
    var directory = ""

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("scoring-prov-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// Example A with JSON payloads agreeing with the clear attributes (one disagreeing when asked),
    /// and an endorsed score update; returns the chain and the update's id.
    func scoredChain(path: String, lyingPayload: Bool = false, models: [String] = Models.files,
                     model: String = "individual-business") throws -> (ScoringChain, Hash) {
        let c = try ScoringConsortium(models: models)
        let chain = try ScoringChain(c, path: path)
        var subs: [Submission] = []
        for body in Examples.teaShop().list {
            var payload = Dictionary(uniqueKeysWithValues: body.attributes.map { ($0.name, "\($0.value)") })
            if lyingPayload && body.category == .penalty { payload["amount_yuan"] = "50000" }
            payload["name"] = "\"西湖茶叶店\""
            let json = "{" + payload.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
            subs.append(try c.attest(body, by: "samr", nonce: chain.nextNonce(), payload: json))
        }
        try chain.append(subs)
        if !models.contains("risk-warning.json") && model == "risk-warning" {
            try chain.append([c.governance(GovernanceBody(action: .installModel, name: "risk-warning", version: 1,
                                                          document: try Models.bytes("risk-warning.json")), nonce: chain.nextNonce())])
        }
        let engine = ScoreEngine(genesis: c.genesis)
        let subject = try USCC("92330106MA2H4K7Q3A")
        let (records, date) = try chain.store.scoreInputs(subject: subject)
        let asOf = ScoreAsOf(logSize: chain.store.head.logSize, date: date)
        let compiled = try engine.model(try XCTUnwrap(chain.store.latestModel(name: model)))
        var u = try engine.makeScoreUpdate(subject: subject, inputs: records.map(\.transaction), model: compiled, asOf: asOf)
        u.endorsements = [try engine.endorse(update: u, recomputedFrom: records.map(\.transaction), model: compiled, asOf: asOf, keys: c.keys["data-bureau"]!)]
        let s = c.scoreTransaction(u, nonce: chain.nextNonce())
        try chain.append([s])
        return (chain, s.transaction.id)
    }

    /// A custodian compares a record's clear attributes with its decrypted payload as integers:
    /// values past 2^53 that a double would round together, a fraction, or a boolean disagree.
    func testPayloadAgreementComparesIntegersExactly() {
        var records = Records("91330106MA27XKT2XT")
        records.add(.loanRepayment, "2026-01-05", ["amount_yuan": 9_007_199_254_740_993, "overdue_days": 0])
        let record = records.list[0]
        func mismatched(_ payload: String) -> [String] {
            PayloadAgreement.mismatches(record: record, payload: Array(payload.utf8)).map(\.name)
        }
        XCTAssertEqual(mismatched(#"{"amount_yuan":9007199254740993,"overdue_days":0}"#), [])
        XCTAssertEqual(mismatched(#"{"amount_yuan":"9007199254740993","overdue_days":0,"note":"x"}"#), [])
        XCTAssertEqual(mismatched(#"{"amount_yuan":9007199254740992,"overdue_days":0}"#), ["amount_yuan"])
        XCTAssertEqual(mismatched(#"{"amount_yuan":9007199254740993,"overdue_days":0.5}"#), ["overdue_days"])
        XCTAssertEqual(mismatched(#"{"amount_yuan":9007199254740993,"overdue_days":false}"#), ["overdue_days"])
    }

    func testProvenanceVerifiesOfflineAndTamperingIsCaught() throws {
        let (chain, id) = try scoredChain(path: "\(directory)/a")
        let genesis = chain.store.genesis
        let p = try chain.store.scoreProvenance(for: id)
        let v = try p.verify(genesis: genesis)
        XCTAssertEqual(v.result.points, 685)
        XCTAssertEqual(v.inputs.count, 10)
        XCTAssertEqual(v.asOf.date, try LedgerDate(iso: "2026-11-21"))
        // Survives a JSON round trip, as served over HTTP.
        let decoded = try JSONDecoder().decode(ScoreProvenance.self, from: try JSONEncoder().encode(p))
        XCTAssertEqual(try decoded.verify(genesis: genesis).result.points, 685)

        var swapped = p
        swapped.inputs.swapAt(0, 1)
        XCTAssertThrowsError(try swapped.verify(genesis: genesis)) { XCTAssertTrue("\($0)".contains("the update names"), "\($0)") }
        var missing = p
        missing.inputs.removeLast()
        XCTAssertThrowsError(try missing.verify(genesis: genesis))
        var foreign = p
        foreign.inputs[0] = foreign.score_update
        XCTAssertThrowsError(try foreign.verify(genesis: genesis))
        var badProof = p
        var h = [UInt8](base64: badProof.inputs[3].inclusion_proof[0])!
        h[0] ^= 1
        badProof.inputs[3].inclusion_proof[0] = h.base64String
        XCTAssertThrowsError(try badProof.verify(genesis: genesis)) { XCTAssertTrue("\($0)".contains("input 3"), "\($0)") }
        var badBlock = p
        badBlock.as_of_block = ScoreProvenance.Block(header: try chain.store.blockHeader(height: 2)!, certificate: try chain.store.certificate(height: 2)!)
        XCTAssertThrowsError(try badBlock.verify(genesis: genesis)) { XCTAssertTrue("\($0)".contains("does not hold log entry"), "\($0)") }
        XCTAssertThrowsError(try p.verify(genesis: try ScoringConsortium(models: []).genesis))
        // The file's own block height is the header's, and a genesis model carries no install
        // receipt: both passed unchecked (found by black-box testing, 2026-12-06).
        var wrongHeight = p
        wrongHeight.as_of_block.height += 1
        XCTAssertThrowsError(try wrongHeight.verify(genesis: genesis)) {
            XCTAssertTrue("\($0)".contains("as_of_block.height is \(p.as_of_block.height + 1), but its header is of block \(p.as_of_block.height)"), "\($0)")
        }
        var extraInstall = p
        extraInstall.model_install = p.inputs[0]
        XCTAssertThrowsError(try extraInstall.verify(genesis: genesis)) { XCTAssertTrue("\($0)".contains("a genesis model has none"), "\($0)") }
    }

    func testProvenanceOfAGovernanceModelCarriesItsInstallReceipt() throws {
        let (chain, id) = try scoredChain(path: "\(directory)/gov", models: ["individual-business.json"], model: "risk-warning")
        let p = try chain.store.scoreProvenance(for: id)
        XCTAssertNotNil(p.model_install)
        let v = try p.verify(genesis: chain.store.genesis)
        XCTAssertEqual(v.model.name, "risk-warning")
        XCTAssertEqual(v.result.points, 461, "worked example D for A")
        var without = p
        without.model_install = nil
        XCTAssertThrowsError(try without.verify(genesis: chain.store.genesis)) { XCTAssertTrue("\($0)".contains("not in genesis"), "\($0)") }
    }

    // MARK: Command-line tools

    func run(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) { try Self.run(name, arguments) }

    static func run(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let binary = try XCTUnwrap(BuiltTools.path(name), "build the executables first (swift build --build-tests)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile() + err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    func testCreditVerifyRecomputeChainAndProvenance() throws {
        let path = "\(directory)/cli"
        let (chain, id) = try scoredChain(path: path)
        let genesisPath = "\(directory)/genesis.json"
        try Data(chain.store.genesis.bytes).write(to: URL(fileURLWithPath: genesisPath))
        let keyPath = "\(directory)/data-bureau.key"
        try chain.consortium.keys["data-bureau"]!.write(to: keyPath)
        try Data(try JSONEncoder().encode(try chain.store.scoreProvenance(for: id))).write(to: URL(fileURLWithPath: "\(directory)/prov.json"))
        let exportPath = "\(directory)/chain.export"
        _ = try ChainExport.write(store: chain.store, to: exportPath)

        let recompute = try run("credit-verify", ["recompute", id.hexString, "--data-dir", path, "--genesis", genesisPath, "--key", keyPath, "--json"])
        XCTAssertEqual(recompute.status, 0, recompute.output)
        let r = json(recompute.output)
        XCTAssertEqual(r["ok"] as? Bool, true)
        XCTAssertEqual(r["points"] as? Int, 685)
        XCTAssertEqual((r["inputs"] as? [[String: Any]])?.count, 10)
        XCTAssertEqual((r["inputs"] as? [[String: Any]])?.first?["payload_check"] as? String, "decrypted, matches commitment and clear attributes")
        let fromExport = try run("credit-verify", ["recompute", id.hexString, "--export", exportPath, "--genesis", genesisPath, "--key", keyPath])
        XCTAssertEqual(fromExport.status, 0, fromExport.output)
        XCTAssertTrue(fromExport.output.contains("recomputes exactly"), fromExport.output)
        // An export is any file: one of another chain is refused, even where the custodian's key is the same.
        let otherGenesis = "\(directory)/other-genesis.json"
        try Data(try ScoringConsortium(endorsements: 0).genesis.bytes).write(to: URL(fileURLWithPath: otherGenesis))
        let foreign = try run("credit-verify", ["recompute", id.hexString, "--export", exportPath, "--genesis", otherGenesis, "--key", keyPath])
        XCTAssertEqual(foreign.status, 1, foreign.output)
        XCTAssertTrue(foreign.output.contains("the export's genesis is not the trusted genesis"), foreign.output)
        // A key that is not a custodian's cannot recompute.
        let bankKey = "\(directory)/bank-a.key"
        try chain.consortium.keys["bank-a"]!.write(to: bankKey)
        XCTAssertEqual(try run("credit-verify", ["recompute", id.hexString, "--data-dir", path, "--genesis", genesisPath, "--key", bankKey]).status, 1)

        let chainCheck = try run("credit-verify", ["chain", "--data-dir", path, "--genesis", genesisPath, "--json"])
        XCTAssertEqual(chainCheck.status, 0, chainCheck.output)
        XCTAssertEqual(json(chainCheck.output)["score_updates_checked"] as? Int, 1)
        XCTAssertEqual(json(chainCheck.output)["score_inputs_checked"] as? Int, 10)

        let prov = try run("credit-verify", ["provenance", "\(directory)/prov.json", "--genesis", genesisPath])
        XCTAssertEqual(prov.status, 0, prov.output)
        XCTAssertTrue(prov.output.contains("685 points, grade A"), prov.output)

        // An input's envelope left out of a copy, no erase_records naming it: withheld, and the
        // recomputation fails (it used to pass, the input shown as shredded).
        let input = try XCTUnwrap((r["inputs"] as? [[String: Any]])?.first?["id"] as? String).flatMap { [UInt8](hex: $0) }
        let inputID = try XCTUnwrap(input)
        let copy = "\(directory)/withheld"
        try chain.store.database.checkpoint(to: copy)
        do {
            let db = try Database(path: copy, columnFamilies: ChainStore.columnFamilies)
            let batch = WriteBatch(for: db)
            try batch.delete("envelopes", inputID)
            try db.write(batch)
        }
        _ = try ChainExport.write(store: try ChainStore(path: copy, mode: .readOnly), to: "\(directory)/withheld.export")
        let withheld = try run("credit-verify", ["recompute", id.hexString, "--export", "\(directory)/withheld.export", "--genesis", genesisPath, "--key", keyPath])
        XCTAssertEqual(withheld.status, 1, withheld.output)
        XCTAssertTrue(withheld.output.contains("payload envelope missing, and no erase_records names the record (withheld or lost, not erased)"), withheld.output)
        // Erased on the chain itself (after the update): the same absence is rightful.
        try chain.append([chain.consortium.governance(GovernanceBody(action: .eraseRecords, name: "erase", version: 1, document: inputID),
                                                      nonce: chain.nextNonce())])
        _ = try ChainExport.write(store: chain.store, to: "\(directory)/erased.export")
        let erased = try run("credit-verify", ["recompute", id.hexString, "--export", "\(directory)/erased.export", "--genesis", genesisPath, "--key", keyPath])
        XCTAssertEqual(erased.status, 0, erased.output)
        XCTAssertTrue(erased.output.contains("erased by erase_records"), erased.output)
        let erasedDir = try run("credit-verify", ["recompute", id.hexString, "--data-dir", path, "--genesis", genesisPath, "--key", keyPath])
        XCTAssertEqual(erasedDir.status, 0, erasedDir.output)
        XCTAssertTrue(erasedDir.output.contains("erased by erase_records"), erasedDir.output)
    }

    /// An issuer whose clear attributes disagree with its own encrypted record is caught by a custodian.
    func testRecomputeCatchesClearMetadataThatDisagreesWithThePayload() throws {
        let path = "\(directory)/lying"
        let (chain, id) = try scoredChain(path: path, lyingPayload: true)
        let genesisPath = "\(directory)/genesis.json"
        try Data(chain.store.genesis.bytes).write(to: URL(fileURLWithPath: genesisPath))
        let keyPath = "\(directory)/samr.key"
        try chain.consortium.keys["samr"]!.write(to: keyPath)
        let result = try run("credit-verify", ["recompute", id.hexString, "--data-dir", path, "--genesis", genesisPath, "--key", keyPath, "--json"])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("amount_yuan: clear 500, payload 50000"), result.output)
    }

    /// A certified chain holding a tampered score update fails `credit-verify chain`, naming it.
    func testCreditVerifyChainRejectsATamperedScoreUpdate() throws {
        let c = try ScoringConsortium()
        let path = "\(directory)/tampered"
        let chain = try ScoringChain(c, path: path)
        try chain.attest(Examples.teaShop())
        let engine = ScoreEngine(genesis: c.genesis)
        let subject = try USCC("92330106MA2H4K7Q3A")
        let (records, date) = try chain.store.scoreInputs(subject: subject)
        let model = try engine.model(try XCTUnwrap(chain.store.latestModel(name: "individual-business")))
        var u = try engine.makeScoreUpdate(subject: subject, inputs: records.map(\.transaction), model: model,
                                           asOf: ScoreAsOf(logSize: chain.store.head.logSize, date: date))
        u.grade = .s
        u.endorsements = [MemberSignature(member: "data-bureau", keyID: c.member("data-bureau").keyID,
                                          signature: c.keys["data-bureau"]!.signing.signature(for: u.endorsementMessage(chainID: c.genesis.chainID)))]
        try chain.append([c.scoreTransaction(u, nonce: chain.nextNonce())], validate: false)
        let genesisPath = "\(directory)/genesis.json"
        try Data(c.genesis.bytes).write(to: URL(fileURLWithPath: genesisPath))
        let result = try run("credit-verify", ["chain", "--data-dir", path, "--genesis", genesisPath, "--json"])
        XCTAssertEqual(result.status, 1, result.output)
        let o = json(result.output)
        XCTAssertEqual(o["height"] as? Int, 2)
        XCTAssertEqual(o["transaction_index"] as? Int, 0)
        XCTAssertTrue((o["reason"] as? String ?? "").contains("claims grade S, recomputation under individual-business v1 gives A"), result.output)
    }

    /// The example files of docs/SCORING.md §9 give the documented results through `credit-node score`.
    func testDocumentedExampleFilesScoreAsDocumented() throws {
        let examples = URL(fileURLWithPath: Models.directory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/scoring-examples").path
        let cases: [(String, String, Int, String)] = [
            ("example-a", "individual-business", 685, "A"), ("example-b", "enterprise", 864, "S"), ("example-c", "enterprise", 664, "C"),
            ("example-a", "risk-warning", 461, "A"), ("example-b", "risk-warning", 759, "B"), ("example-c", "risk-warning", 5000, "D"),
        ]
        for (file, model, points, grade) in cases {
            let r = try run("credit-node", ["score", "--model", "\(Models.directory)/\(model).json", "--records", "\(examples)/\(file).jsonl",
                                            "--as-of", "2026-11-21", "--json"])
            XCTAssertEqual(r.status, 0, r.output)
            let result = (json(r.output)["results"] as? [[String: Any]])?.first
            XCTAssertEqual(result?["points"] as? Int, points, "\(file) under \(model)")
            XCTAssertEqual(result?["grade"] as? String, grade, "\(file) under \(model)")
        }
    }

    func testCreditNodeDemoDataAndOfflineScore() throws {
        let out = "\(directory)/demo"
        let gen = try run("credit-node", ["demo-data", "--subjects", "50", "--seed", "3", "--as-of", "2026-11-21", "--out", out])
        XCTAssertEqual(gen.status, 0, gen.output)
        let score = try run("credit-node", ["score", "--model", "\(Models.directory)/risk-warning.json", "--records", "\(out)/records.jsonl",
                                            "--as-of", "2026-11-21", "--json"])
        XCTAssertEqual(score.status, 0, score.output)
        XCTAssertEqual((json(score.output)["results"] as? [Any])?.count, 50, "the risk model scores both kinds")
        // The offline scorer gives what the library gives.
        let demo = DemoSubjects(count: 50, seed: 3, asOf: try LedgerDate(iso: "2026-11-21"))
        let first = (json(score.output)["results"] as? [[String: Any]])?.first
        let facts = try SubjectFacts(subject: try USCC(demo.subjects[0].uscc),
                                     records: try demo.records[0].map { (try $0.body(), Hashes.zero) }, asOfDate: try LedgerDate(iso: "2026-11-21"))
        XCTAssertEqual(first?["points"] as? Int, Int(try Evaluator.evaluate(try Models.riskWarning(), facts).points))
        let bad = try run("credit-node", ["score", "--model", "\(out)/subjects.jsonl", "--records", "\(out)/records.jsonl"])
        XCTAssertEqual(bad.status, 1)
        // One subject: an invalid code, or one the records do not hold, is an error, not "0 subjects".
        let one = demo.subjects[0].uscc
        let only = try run("credit-node", ["score", "--model", "\(Models.directory)/risk-warning.json", "--records", "\(out)/records.jsonl",
                                           "--as-of", "2026-11-21", "--json", "--subject", one])
        XCTAssertEqual((json(only.output)["results"] as? [Any])?.count, 1, only.output)
        let wrongCheck = String(one.dropLast()) + (one.last == "0" ? "1" : "0")
        // Two files in a models directory holding one model version are named (genesis refuses the
        // pair as "models[1] … listed twice", which a directory's user cannot place).
        let twice = "\(directory)/models-twice"
        try FileManager.default.createDirectory(atPath: twice, withIntermediateDirectories: true)
        // (A byte-identical copy is the same model and is taken; this one differs in a space.)
        try FileManager.default.copyItem(atPath: "\(Models.directory)/enterprise.json", toPath: "\(twice)/enterprise.json")
        try (try Data(contentsOf: URL(fileURLWithPath: "\(Models.directory)/enterprise.json")) + Data(" ".utf8))
            .write(to: URL(fileURLWithPath: "\(twice)/enterprise-copy.json"))
        let dev = try run("credit-node", ["dev", "--data-dir", "\(directory)/dev-twice", "--http", "127.0.0.1:0", "--models", twice])
        XCTAssertEqual(dev.status, 1, dev.output)
        XCTAssertTrue(dev.output.contains("\(twice)/enterprise-copy.json and \(twice)/enterprise.json are both enterprise version 1, with different documents; keep one"), dev.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/dev-twice"), "nothing is left behind")
        // A record the scorer refuses is named by its place in the file, and a date as it is written.
        let badRecords = "\(directory)/bad.jsonl"
        try (String(contentsOfFile: "\(out)/records.jsonl", encoding: .utf8).split(separator: "\n").prefix(2).joined(separator: "\n")
             + "\n{\"subject\":\"\(one)\",\"category\":\"license\",\"event_date\":\"0000-01-01\"}\n").write(toFile: badRecords, atomically: true, encoding: .utf8)
        let badRecord = try run("credit-node", ["score", "--model", "\(Models.directory)/risk-warning.json", "--records", badRecords, "--as-of", "2026-11-21"])
        XCTAssertEqual(badRecord.status, 1, badRecord.output)
        XCTAssertTrue(badRecord.output.contains("\(badRecords) record 3 (\(one), license, 0000-01-01): date 0000-01-01 is outside the years 1900-2999"), badRecord.output)
        for (subject, words) in [(wrongCheck, "--subject: "), ("91350100M000100Y43", "holds no record about 91350100M000100Y43")] {
            let r = try run("credit-node", ["score", "--model", "\(Models.directory)/risk-warning.json", "--records", "\(out)/records.jsonl",
                                            "--as-of", "2026-11-21", "--subject", subject])
            XCTAssertEqual(r.status, 1, r.output)
            XCTAssertTrue(r.output.contains(words), r.output)
        }
        // Records are read as validators read them: a key given twice, or an industry code
        // outside GB/T 4754-2017, is refused (they were scored).
        let record = #"{"subject": "91350100M000100Y43", "category": "penalty", "severity": "general", "event_date": "2026-03-14", "industry": "C13", "attributes": {"amount_yuan": 5000}}"#
        for (name, text, words) in [("twice", record.replacingOccurrences(of: #""subject": "91350100M000100Y43","#, with: #""subject": "91350100M000100Y43", "subject": "91330106MA27C1308F","#), "\"subject\" appears twice"),
                                    ("industry", record.replacingOccurrences(of: #""C13""#, with: #""Q99X""#), "Q99X"),
                                    ("array", "[" + record.replacingOccurrences(of: #""amount_yuan": 5000"#, with: #""amount_yuan": 5000, "amount_yuan": 5"#) + "]", "\"amount_yuan\" appears twice")] {
            let path = "\(directory)/\(name).jsonl"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let r = try run("credit-node", ["score", "--model", "\(Models.directory)/enterprise.json", "--records", path, "--as-of", "2026-11-21"])
            XCTAssertEqual(r.status, 1, "\(name): \(r.output)")
            XCTAssertTrue(r.output.contains(words), "\(name): \(r.output)")
        }
        let plain = "\(directory)/plain.jsonl"
        try Data(record.utf8).write(to: URL(fileURLWithPath: plain))
        XCTAssertEqual(try run("credit-node", ["score", "--model", "\(Models.directory)/enterprise.json", "--records", plain, "--as-of", "2026-11-21"]).status, 0)
        // demo-data with --node but no --key (or a key without a node) writes nothing.
        for extra in [["--node", "http://127.0.0.1:1"], ["--key", "\(out)/subjects.jsonl"]] {
            let r = try run("credit-node", ["demo-data", "--subjects", "5", "--out", "\(directory)/half.jsonl"] + extra)
            XCTAssertEqual(r.status, 1, r.output)
            XCTAssertTrue(r.output.contains("nothing was written"), r.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/half.jsonl"))
        }
        let missing = try run("credit-node", ["score", "--model", "\(directory)/nothing-here.json", "--records", "\(out)/records.jsonl"])
        XCTAssertTrue(missing.output.contains("cannot read \(directory)/nothing-here.json: No such file or directory"), missing.output)
    }
}

/// The dev node end to end: a genesis with the shipped models, demo records submitted over
/// HTTP, every subject re-scored and the updates submitted, provenance served and checked.
final class DevNodeScoringTests: XCTestCase {
    func testDevNodeScoresServesProvenanceAndVerifies() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoring-dev-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: dir + ".log") }
        let node = try XCTUnwrap(BuiltTools.path("credit-node"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: node)
        process.arguments = ["dev", "--data-dir", dir, "--http", "127.0.0.1:0", "--block-interval-ms", "20", "--models", Models.directory]
        _ = FileManager.default.createFile(atPath: dir + ".log", contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + ".log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        var address = ""
        for _ in 0..<600 where address.isEmpty {
            if let a = try? String(contentsOfFile: dir + "/http.addr", encoding: .utf8), a.hasSuffix("\n") { address = a.trimmingCharacters(in: .whitespacesAndNewlines) }
            else { Thread.sleep(forTimeInterval: 0.05) }
        }
        XCTAssertFalse(address.isEmpty, (try? String(contentsOfFile: dir + ".log", encoding: .utf8)) ?? "")
        let key = dir + "/keys/dev.key"
        let gen = try ProvenanceTests.run("credit-node", ["demo-data", "--subjects", "40", "--seed", "9", "--as-of", "2026-11-21", "--out", dir + "-demo.jsonl", "--node", address, "--key", key])
        defer { try? FileManager.default.removeItem(atPath: dir + "-demo.jsonl") }
        XCTAssertEqual(gen.status, 0, gen.output)
        // The same seed sent again records nothing twice: every record's nonce is derived from it
        // (a re-run recorded every record a second time; found by black-box testing).
        let size = (try LedgerClient(baseURL: address).getJSON("/v1/health")["log_size"] as? NSNumber)?.intValue
        let again = try ProvenanceTests.run("credit-node", ["demo-data", "--subjects", "40", "--seed", "9", "--as-of", "2026-11-21", "--out", dir + "-demo.jsonl", "--node", address, "--key", key])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("all committed (") && again.output.contains("of them sent before, by an earlier run: recorded once"), again.output)
        XCTAssertEqual((try LedgerClient(baseURL: address).getJSON("/v1/health")["log_size"] as? NSNumber)?.intValue, size, "records were sent twice")
        let tooBig = try ProvenanceTests.run("credit-node", ["rescore", "--data-dir", dir, "--model", "risk-warning", "--batch", "20000", "--submit", address, "--key", key])
        XCTAssertEqual(tooBig.status, 1, tooBig.output)
        XCTAssertTrue(tooBig.output.contains("--batch must be 1-10000 subjects"), tooBig.output)
        let selfEndorsed = try ProvenanceTests.run("credit-node", ["rescore", "--data-dir", dir, "--model", "risk-warning", "--submit", address, "--key", key, "--endorser-key", key])
        XCTAssertEqual(selfEndorsed.status, 1, selfEndorsed.output)
        XCTAssertTrue(selfEndorsed.output.contains("--endorser-key is dev's, the submitting scorer's own"), selfEndorsed.output)
        let watch = try ProvenanceTests.run("credit-node", ["rescore", "--data-dir", dir, "--model", "individual-business", "--watch-list"])
        XCTAssertEqual(watch.status, 1, watch.output)
        XCTAssertTrue(watch.output.contains("--watch-list lists the red subjects of a risk model; individual-business is a scorecard"), watch.output)
        let rescore = try ProvenanceTests.run("credit-node", ["rescore", "--data-dir", dir, "--model", "risk-warning", "--batch", "7", "--submit", address, "--key", key])
        XCTAssertEqual(rescore.status, 0, rescore.output)
        XCTAssertTrue(rescore.output.contains("submitted 40 score updates (endorsed by nobody: none required)"), rescore.output)

        let client = LedgerClient(baseURL: address)
        let genesis = try client.genesis()
        XCTAssertEqual(genesis.models.map(\.name), ["enterprise", "individual-business", "risk-warning"])
        XCTAssertEqual((try client.getJSON("/v1/models")["models"] as? [Any])?.count, 3)
        let subject = try XCTUnwrap(DemoSubjects(count: 40, seed: 9, asOf: try LedgerDate(iso: "2026-11-21")).subjects.first?.uscc)
        let history = try client.getJSON("/v1/subjects/\(subject)/history")["records"] as? [[String: Any]] ?? []
        let scoreID = try XCTUnwrap(history.first { $0["kind"] as? String == "score_update" }?["id"] as? String)
        let provenance = try JSONDecoder().decode(ScoreProvenance.self, from: try client.get("/v1/transactions/\(scoreID)/provenance"))
        let verified = try provenance.verify(genesis: genesis)
        XCTAssertEqual(verified.inputs.count, history.filter { $0["kind"] as? String == "attestation" }.count)
        XCTAssertEqual(verified.model.name, "risk-warning")
        XCTAssertThrowsError(try client.get("/v1/transactions/\(history[0]["id"] as! String)/provenance"), "an attestation has no score provenance")
    }
}
