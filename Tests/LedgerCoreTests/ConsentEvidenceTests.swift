import Foundation
import LedgerCore
import LedgerCrypto
import XCTest

/// A consent's evidence is a salted commitment to the form (FORMAT.md §4.4), and the record that
/// keeps the salt is read whole or refused, naming the fault.
final class ConsentEvidenceTests: XCTestCase {
    let form = SHA256.hash(Array("consent form of 91350100M000100Y43 for bank-a\n".utf8))

    func testTheCommitmentHidesTheFormAndBindsTheSalt() {
        let salt = [UInt8](repeating: 7, count: 32)
        let evidence = ConsentEvidence.commitment(formSHA256: form, salt: salt)
        XCTAssertNotEqual(evidence, form, "the form's plain hash is what a guesser could test")
        XCTAssertEqual(evidence, SHA256.hash(Array("CreditLedger/v1/consent-evidence\n".utf8) + salt + form))
        XCTAssertNotEqual(evidence, ConsentEvidence.commitment(formSHA256: form, salt: [UInt8](repeating: 8, count: 32)))
    }

    func testARecordIsReadWholeOrRefused() throws {
        let record = ConsentEvidence.Record(recorder: "bank-a", formSHA256: form, salt: SecureRandom.bytes(32))
        XCTAssertEqual(try ConsentEvidence.Record.read(Array(record.encoded), path: "r.json"), record)
        func refused(_ edit: (inout [String: Any]) -> Void, _ words: String, line: UInt = #line) throws {
            var object = try JSONSerialization.jsonObject(with: record.encoded) as! [String: Any]
            edit(&object)
            let bytes = Array(try JSONSerialization.data(withJSONObject: object))
            XCTAssertThrowsError(try ConsentEvidence.Record.read(bytes, path: "r.json"), line: line) { error in
                XCTAssertTrue("\(error)".contains(words), "\(error)", line: line)
            }
        }
        // Another salt under the same evidence: altered.
        try refused({ $0["salt"] = String(repeating: "ab", count: 32) }, "the record was altered")
        try refused({ $0["form_sha256"] = Hashes.zero.hexString }, "the record was altered")
        try refused({ $0["salt"] = "abcd" }, "must each be 64 hex digits")
        try refused({ $0["format"] = "creditledger-consent-evidence/v9" }, "this tool reads creditledger-consent-evidence/v1")
        try refused({ $0["evidence"] = nil }, "is not a consent evidence record")
        let text = String(decoding: record.encoded, as: UTF8.self)
        let twice = Array((text[..<text.lastIndex(of: "}")!] + #", "salt": "00"}"#).utf8)
        XCTAssertThrowsError(try ConsentEvidence.Record.read(twice, path: "twice.json")) {
            XCTAssertTrue("\($0)".contains("every tool reads alike: \"salt\" appears twice"), "\($0)")
        }
        XCTAssertThrowsError(try ConsentEvidence.Record.read([UInt8](repeating: 0x20, count: 5_000), path: "big.json")) {
            XCTAssertTrue("\($0)".contains("more than a consent evidence record"), "\($0)")
        }
    }
}
