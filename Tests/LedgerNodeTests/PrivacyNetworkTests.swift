import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import XCTest

/// Custodian encryption and queries on a real four-validator network (docs/PRIVACY.md).
final class PrivacyNetworkTests: XCTestCase {
    /// Runs a built executable; returns its exit status and standard output.
    func run(_ tool: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltTools.path(tool) ?? tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Every file under `root` that contains any of `needles` (as UTF-8 bytes).
    func filesContaining(_ needles: [String], under root: String) -> [String] {
        var hits: [String] = []
        let patterns = needles.map { Array($0.utf8) }
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        for case let rel as String in walker {
            let path = root + "/" + rel
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                  let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            for p in patterns where Self.contains(bytes, p) { hits.append("\(rel): \(String(decoding: p, as: UTF8.self))") }
        }
        return hits
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count, let first = needle.first else { return false }
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }

    func testBankNodesHoldNoRawPayloadWhileBureausReadThemAndBanksGetDesensitizedAnswers() throws {
        let net = try LocalConsortium(name: "privacy", withModels: true, withPolicies: true)
        try net.startAll()
        let samr = try net.client("samr-330106")
        let keys = try MemberSecretKeys.load(from: net.keyPath("samr-330106"))
        let marker = UUID().uuidString.prefix(8)
        let name = "隐私测试食品有限公司\(marker)"
        let secrets = [name, "PENALTY-DECISION-\(marker)", "身份证号330106199001011234-\(marker)"]
        let subject = USCCGenerator.make(kind: .enterprise, division: "330106") { n in Int(marker.utf8.reduce(0) { $0 &+ Int($1) }) % n }
        let records = [
            AttestationRequest(subject: subject.code, subject_kind: nil, category: "registration", severity: nil, event_date: "2020-04-01",
                               industry: "C13", attributes: nil,
                               payload: .object(["name": .string(name), "legal_rep_id": .string(secrets[2])])),
            AttestationRequest(subject: subject.code, subject_kind: nil, category: "penalty", severity: "minor", event_date: "2026-03-14",
                               industry: "C13", attributes: ["amount_yuan": 2000], payload: .object(["decision": .string(secrets[1])])),
        ]
        // The bureau seals each payload to the custodians before it leaves its hands.
        let batch = try records.enumerated().map { try $1.build(genesis: net.genesis, keys: keys, nonce: UInt64(10 + $0), issuedAtMillis: 1) }
        _ = try samr.submit(batch: batch)

        // Live scoring gives the subject a grade; the bank records the subject's consent on its own node.
        let bank = try net.client("bank-a")
        let deadline = Date().addingTimeInterval(30)
        var scored = false
        while !scored && Date() < deadline {
            let kinds = ((try bank.getJSON("/v1/subjects/\(subject.code)/history"))["records"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
            scored = kinds.contains("score_update")
            if !scored { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(scored, "the subject was not scored within 30 s")
        try "consent form of \(subject.code) for bank-a\n".write(toFile: net.root + "/consent-form.txt", atomically: true, encoding: .utf8)
        let (consentStatus, consentOut) = try run("credit-node", ["consent", "--node", try net.address("bank-a"), "--key", net.keyPath("bank-a"),
                                                                  "--evidence", net.root + "/consent-form.txt",
                                                                  "--subject", subject.code, "--grantee", "bank-a", "--purpose", "loan_application",
                                                                  "--days", "30"])
        XCTAssertEqual(consentStatus, 0, consentOut)
        // The ledger gets a salted commitment to the form, whose salt stays beside the form; the
        // form's plain hash, which anyone could test a guessed form against, is not recorded.
        let form = net.root + "/consent-form.txt"
        let evidenceRecord = try ConsentEvidence.Record.read(Array(try Data(contentsOf: URL(fileURLWithPath: form + ".evidence.json"))), path: form + ".evidence.json")
        XCTAssertTrue(consentOut.contains("the consent form's salt is in \(form).evidence.json"), consentOut)
        XCTAssertEqual(evidenceRecord.recorder, "bank-a")
        let formHash = SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: form))))
        XCTAssertEqual(evidenceRecord.formSHA256, formHash)
        XCTAssertNotEqual(evidenceRecord.evidenceHash, formHash)
        let grantID = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data((consentOut.split(separator: "\n").first { $0.hasPrefix("{") } ?? "").utf8))
                                     as? [String: Any])?["id"] as? String, consentOut)
        let grant = try Transaction.decode(try XCTUnwrap([UInt8](base64: try XCTUnwrap(try bank.getJSON("/v1/transactions/\(grantID)")["encoded"] as? String))))
        guard case .consent(let body) = grant.body else { return XCTFail("\(grantID) is not a consent") }
        XCTAssertEqual(body.evidence, evidenceRecord.evidenceHash, "the ledger's evidence is the record's commitment")
        // Run again: the same salt (the record is read, not replaced), so it is recorded once.
        let (rerun, rerunOut) = try run("credit-node", ["consent", "--node", try net.address("bank-a"), "--key", net.keyPath("bank-a"), "--evidence", form,
                                                        "--subject", subject.code, "--grantee", "bank-a", "--purpose", "loan_application", "--days", "30"])
        XCTAssertEqual(rerun, 0, rerunOut)
        XCTAssertTrue(rerunOut.contains("sent_before"), rerunOut)
        XCTAssertEqual(try ConsentEvidence.Record.read(Array(try Data(contentsOf: URL(fileURLWithPath: form + ".evidence.json"))), path: "again"), evidenceRecord)
        // A record made for another form is refused, and nothing is sent.
        try "another form\n".write(toFile: net.root + "/other-form.txt", atomically: true, encoding: .utf8)
        let (other, otherOut) = try run("credit-node", ["consent", "--node", try net.address("bank-a"), "--key", net.keyPath("bank-a"),
                                                        "--evidence", net.root + "/other-form.txt", "--evidence-record", form + ".evidence.json",
                                                        "--subject", subject.code, "--grantee", "bank-a", "--purpose", "post_loan_monitoring"])
        XCTAssertEqual(other, 1, otherOut)
        XCTAssertTrue(otherOut.contains("is the evidence record of another form") && otherOut.contains("nothing was sent"), otherOut)

        // The bank asks the supervision bureau's node, with the CLI, and checks the receipt offline.
        let answerFile = net.root + "/answer.json"
        let (status, out) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-a"),
                                                    "--policy", "credit-grade", "--subject", subject.code, "--purpose", "loan_application",
                                                    "--out", answerFile, "--genesis", net.root + "/genesis.json"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("隐*"), "masked name in \(out)")
        XCTAssertFalse(out.contains(name), "the full name reached the bank")
        let (vStatus, vOut) = try run("credit-verify", ["receipt", answerFile, "--genesis", net.root + "/genesis.json"])
        XCTAssertEqual(vStatus, 0, vOut)
        XCTAssertTrue(vOut.contains("answered query"), vOut)
        // The bank shows which form the answer's consent records: the form, its evidence record and the receipt.
        let evidenceCheck = ["consent-evidence", "--receipt", answerFile, "--genesis", net.root + "/genesis.json"]
        let (eStatus, eOut) = try run("credit-verify", evidenceCheck + ["--form", form])
        XCTAssertEqual(eStatus, 0, eOut)
        XCTAssertTrue(eOut.contains("OK: the consent's evidence is \(form) under the salt in \(form).evidence.json (grant \(grantID) by bank-a"), eOut)
        let (wrongForm, wrongFormOut) = try run("credit-verify", evidenceCheck + ["--form", net.root + "/other-form.txt", "--record", form + ".evidence.json"])
        XCTAssertEqual(wrongForm, 1, wrongFormOut)
        XCTAssertTrue(wrongFormOut.contains("is the evidence record of another form"), wrongFormOut)
        let (noRecord, noRecordOut) = try run("credit-verify", evidenceCheck + ["--form", net.root + "/other-form.txt"])
        XCTAssertEqual(noRecord, 1, noRecordOut)
        XCTAssertTrue(noRecordOut.contains("is not \(net.root)/other-form.txt's SHA-256"), noRecordOut)
        // A consent recorded before salting, whose form has a record now (from a later grant):
        // its plain hash is still checked, the record set aside.
        let (legacy, legacyOut) = try run("credit-verify", ["consent-evidence", "--form", form, "--evidence", formHash.hexString])
        XCTAssertEqual(legacy, 0, legacyOut)
        XCTAssertTrue(legacyOut.contains("plain SHA-256, unsalted") && legacyOut.contains("is for another consent of this form"), legacyOut)
        // A record naming another recorder than the grant's signer is said to.
        var relabelled = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: form + ".evidence.json"))) as? [String: Any])
        relabelled["recorder"] = "bank-b"
        try JSONSerialization.data(withJSONObject: relabelled).write(to: URL(fileURLWithPath: net.root + "/relabelled.evidence.json"))
        let (relabel, relabelOut) = try run("credit-verify", evidenceCheck + ["--form", form, "--record", net.root + "/relabelled.evidence.json"])
        XCTAssertEqual(relabel, 0, relabelOut)
        XCTAssertTrue(relabelOut.contains("note: the record names bank-b as its recorder, but bank-a signed the consent"), relabelOut)
        // The commitment's own input, passed off as a form, would match as an unsalted evidence: refused.
        let preimage = net.root + "/preimage.bin"
        let salt = try XCTUnwrap(evidenceRecord.saltBytes)
        _ = FileManager.default.createFile(atPath: preimage, contents: Data(Array("CreditLedger/v1/consent-evidence\n".utf8) + salt + formHash))
        let (forged, forgedOut) = try run("credit-verify", evidenceCheck + ["--form", preimage])
        XCTAssertEqual(forged, 1, forgedOut)
        XCTAssertTrue(forgedOut.contains("is not a consent form: it is the input of an evidence commitment"), forgedOut)
        // The same --out again is refused before the query is sent: the receipt there is the
        // only copy of its result and salt. And stdout is the result alone, for `| jq` (the
        // summary line went there too; both found by black-box testing).
        let again = ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-a"), "--policy", "credit-grade",
                     "--subject", subject.code, "--purpose", "loan_application", "--genesis", net.root + "/genesis.json"]
        let (kept, keptOut) = try run("credit-node", again + ["--out", answerFile])
        XCTAssertEqual(kept, 1, keptOut)
        XCTAssertTrue(keptOut.contains("holds an answer receipt (\(AnswerReceipt.format))"), keptOut)
        let stdout = net.root + "/stdout.json"
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        let piped = try VerifierCLITests.run("credit-node", again + ["--out", net.root + "/answer-2.json"], standardOutput: stdout)
        XCTAssertEqual(piped.status, 0, piped.output)
        XCTAssertTrue(piped.output.contains("answered by samr-330106"), piped.output)
        let printed = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stdout))) as? [String: Any]
        XCTAssertNotNil(printed?["fields"], "stdout is not the result alone")

        // Where the receipt cannot be written, nothing is sent: the answer would be recorded, and
        // its receipt, the only copy of its result and salt, lost.
        let (unwritable, unwritableOut) = try run("credit-node", again + ["--out", "/proc/self/answer.json"])
        XCTAssertEqual(unwritable, 1, unwritableOut)
        XCTAssertTrue(unwritableOut.contains("cannot create a file in /proc/self") && unwritableOut.contains("nothing was written"), unwritableOut)
        XCTAssertFalse(unwritableOut.contains("answered by"), unwritableOut)
        // A purpose the policy does not answer for, or a policy the member may not call, is named
        // before anything is sent (each was refused on the record, in the subject's query log).
        for (policy, purpose, words) in [("credit-grade", "supervision", "policy credit-grade answers for loan_application"),
                                         ("full-profile", "supervision", "may not call full-profile; it is for role:custodian")] {
            let (status, out) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-a"),
                                                        "--policy", policy, "--subject", subject.code, "--purpose", purpose])
            XCTAssertEqual(status, 1, out)
            XCTAssertTrue(out.contains(words) && out.contains("nothing was sent"), out)
        }

        // Without consent, bank B is refused, on the record (exit status 3).
        let (refused, refusedOut) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-b"),
                                                            "--policy", "credit-grade", "--subject", subject.code, "--purpose", "loan_application",
                                                            "--out", net.root + "/refusal.json"])
        XCTAssertEqual(refused, 3, refusedOut)
        XCTAssertTrue(refusedOut.contains("no_consent"), refusedOut)
        // Its receipt verifies offline and says refused, not answered (it said "answered by").
        let (rStatus, rOut) = try run("credit-verify", ["receipt", net.root + "/refusal.json", "--genesis", net.root + "/genesis.json"])
        XCTAssertEqual(rStatus, 0, rOut)
        XCTAssertTrue(rOut.contains("refused by samr-330106 at height") && !rOut.contains("answered by"), rOut)
        // A subject policy without --subject is not sent (it was, and refused on the ledger).
        let (noSubject, noSubjectOut) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-b"),
                                                                "--policy", "credit-grade", "--purpose", "loan_application"])
        XCTAssertEqual(noSubject, 1, noSubjectOut)
        XCTAssertTrue(noSubjectOut.contains("give --subject USCC; nothing was sent"), noSubjectOut)
        // Parameters as the policy takes them, from its specs in GET /v1/policies: a value out of
        // range, a name it does not take, a required one left out (each was refused on the record,
        // spending the bank's refusal budget).
        for (policy, subject, purpose, params, words) in [
            ("loan-pre-check", subject.code, "loan_application", ["amount_yuan=-5"],
             "parameter amount_yuan must be an integer 0-100000000 in plain decimal digits, got \"-5\""),
            ("credit-grade", subject.code, "loan_application", ["months=3"], "credit-grade takes no parameter \"months\""),
            ("industry-statistics", "", "statistics", [], "industry-statistics needs parameter \"model\""),
        ] {
            let (status, out) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-b"),
                                                        "--policy", policy, "--purpose", purpose] + (subject.isEmpty ? [] : ["--subject", subject])
                                                       + params.flatMap { ["--param", $0] })
            XCTAssertEqual(status, 1, out)
            XCTAssertTrue(out.contains(words) && out.contains("nothing was sent"), out)
        }

        // The bureau pages the subject's query log back with the CLI: the newest page lists the
        // bank's queries; a page ending before every record lists none and says there is no more.
        for (bound, rows) in [(nil as String?, true), ("0", false)] {
            let out = net.root + "/my-queries-\(bound ?? "newest").json"
            _ = FileManager.default.createFile(atPath: out, contents: nil)
            let log = try VerifierCLITests.run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("samr-330106"),
                                                               "--policy", "my-queries", "--subject", subject.code, "--purpose", "subject_access"]
                                                              + (bound.map { ["--param", "before_log_index=\($0)"] } ?? []), standardOutput: out)
            XCTAssertEqual(log.status, 0, log.output)
            let fields = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])?["fields"] as? [String: Any]
            let queries = try XCTUnwrap(fields?["queries"] as? [[String: Any]], log.output)
            XCTAssertEqual(queries.contains { $0["requester"] as? String == "bank-a" }, rows, "\(queries)")
            XCTAssertTrue((fields?["queries/not_listed"] as? [String: Any])?["next_before"] is NSNull, "\(String(describing: fields))")
            XCTAssertFalse(log.output.contains("next page"), log.output)
        }

        // The bank's consent is revoked with the CLI. A revocation naming another purpose than
        // its grant's is refused before anything is sent; the right one ends the consent.
        let revoke = ["consent", "--node", try net.address("bank-a"), "--key", net.keyPath("bank-a"), "--subject", subject.code,
                      "--grantee", "bank-a", "--revoke", grantID]
        let (wrongStatus, wrongOut) = try run("credit-node", revoke + ["--purpose", "post_loan_monitoring"])
        XCTAssertNotEqual(wrongStatus, 0, wrongOut)
        XCTAssertTrue(wrongOut.contains("grants bank-a loan_application"), wrongOut)
        // The business's signed stop is recorded as the revocation's evidence, salted like a grant's.
        let stopForm = net.root + "/revocation-form.txt"
        try "revocation of \(subject.code)'s consent to bank-a\n".write(toFile: stopForm, atomically: true, encoding: .utf8)
        let (revokeStatus, revokeOut) = try run("credit-node", revoke + ["--purpose", "loan_application", "--evidence", stopForm])
        XCTAssertEqual(revokeStatus, 0, revokeOut)
        let revocationID = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data((revokeOut.split(separator: "\n").first { $0.hasPrefix("{") } ?? "").utf8))
                                          as? [String: Any])?["id"] as? String, revokeOut)
        // Its own transaction receipt shows an auditor which form the revocation records.
        let revocationReceipt = net.root + "/revocation-receipt.json"
        let (rrStatus, rrOut) = try run("credit-node", ["receipt", revocationID, "--node", try net.address("bank-a"), "--out", revocationReceipt,
                                                        "--genesis", net.root + "/genesis.json"])
        XCTAssertEqual(rrStatus, 0, rrOut)
        let stopCheck = ["consent-evidence", "--receipt", revocationReceipt, "--genesis", net.root + "/genesis.json"]
        let (stopStatus, stopOut) = try run("credit-verify", stopCheck + ["--form", stopForm])
        XCTAssertEqual(stopStatus, 0, stopOut)
        XCTAssertTrue(stopOut.contains("under the salt in \(stopForm).evidence.json (revocation \(revocationID) by bank-a: \(subject.code) stops bank-a for loan_application, ending grant \(grantID)"), stopOut)
        // The grant's form is not the revocation's.
        let (mixStatus, mixOut) = try run("credit-verify", stopCheck + ["--form", form])
        XCTAssertEqual(mixStatus, 1, mixOut)
        XCTAssertTrue(mixOut.contains("is not \(form) under \(form).evidence.json's salt (that record gives evidence \(evidenceRecord.evidence))"), mixOut)
        let (revoked, revokedOut) = try run("credit-node", ["query", "--node", try net.address("samr-330106"), "--key", net.keyPath("bank-a"),
                                                            "--policy", "credit-grade", "--subject", subject.code, "--purpose", "loan_application"])
        XCTAssertEqual(revoked, 3, revokedOut)
        XCTAssertTrue(revokedOut.contains("consent_revoked"), revokedOut)
        XCTAssertTrue(revokedOut.contains("no --out: the answer receipt (the proof of this answer, and its result's salt) was not saved"), revokedOut)
        // A term given with a revocation did nothing; it is refused.
        let (withDays, withDaysOut) = try run("credit-node", revoke + ["--purpose", "loan_application", "--days", "5"])
        XCTAssertEqual(withDays, 1, withDaysOut)
        XCTAssertTrue(withDaysOut.contains("--days goes with a grant"), withDaysOut)
        // An evidence record that is a link to nowhere is named as such.
        try FileManager.default.createSymbolicLink(atPath: net.root + "/dangling.evidence.json", withDestinationPath: "/nonexistent/record")
        let (dangling, danglingOut) = try run("credit-node", ["consent", "--node", try net.address("bank-a"), "--key", net.keyPath("bank-a"),
                                                              "--evidence", stopForm, "--evidence-record", net.root + "/dangling.evidence.json",
                                                              "--subject", subject.code, "--grantee", "bank-a", "--purpose", "post_loan_monitoring"])
        XCTAssertEqual(dangling, 1, danglingOut)
        XCTAssertTrue(danglingOut.contains("is a symbolic link to /nonexistent/record, which does not exist") && danglingOut.contains("nothing was sent"), danglingOut)

        // A custodian reads the raw records through the full-profile policy.
        let dataKeys = try MemberSecretKeys.load(from: net.keyPath("data-330106"))
        let request = try QueryClient.request(genesis: net.genesis, keys: dataKeys, policy: try samr.policyHash("full-profile"),
                                              subject: subject.code, purpose: "supervision",
                                              issuedAtMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        let (profileStatus, profile) = try samr.query(request)
        XCTAssertEqual(profileStatus, 200, profile.message)
        for s in secrets { XCTAssertTrue(profile.result.contains(s), "full profile lacks \(s)") }

        // Once every node has the audit records, stop them (flushing RocksDB) and scan every file
        // the banks and the auditor hold: ledger, WAL, SST, logs, configs.
        XCTAssertNotNil(net.waitForAgreement(LocalConsortium.members, minHeight: 3, timeout: 30))
        net.stopAll()
        for m in ["bank-a", "bank-b", "auditor"] {
            XCTAssertEqual(filesContaining(secrets, under: "\(net.root)/\(m)"), [], "\(m)'s directory holds raw payload text")
        }
        XCTAssertGreaterThan(filesContaining([subject.code], under: "\(net.root)/bank-a").count, 0,
                             "the scan does see clear metadata, so it would see payload text if it were there")
    }
}
