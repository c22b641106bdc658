import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import XCTest

/// The auditor's tamper table: every alteration fails `ChainVerifier`, naming what and where.
final class VerifierTamperTests: XCTestCase {
    var directory = ""
    let validators = ["samr", "data-bureau", "bank-a", "bank-b"]

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tamper-\(UUID())").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + ".export")
    }

    /// Four validators; blocks certified by three of them. Block 1: attestations; 2-4: consents.
    func honestChain() throws -> ChainBuilder {
        let c = try TestConsortium()
        let b = try ChainBuilder(consortium: c, path: directory, signers: Array(validators.prefix(3)))
        try b.append((0..<4).map { try c.attestation(nonce: UInt64($0)) })
        for block in 0..<3 { try b.append((0..<5).map { try b.consent(nonce: UInt64(100 + block * 5 + $0)) }) }
        return b
    }

    /// The indexes a node answers from are checked against its log: a row deleted, changed or
    /// added is reported, naming it, while the chain itself still verifies (a subject-index row
    /// deleted went unreported, and the node answered as if the record were not there; found by
    /// black-box testing, 2026-12-07).
    func testTheIndexAuditFindsRowsTheLogDoesNotGive() throws {
        let subject = try USCC("91350100M000100Y43")
        var query: Transaction!
        do {
            let b = try honestChain()
            let c = b.consortium
            let record = QueryRecordBody(requester: "bank-a", subject: subject, policy: Hashes.zero, purpose: .loanApplication,
                                         requestHash: SHA256.hash(Array("request".utf8)), requestNonce: 77, requestedAtMillis: 1_000,
                                         asOfHeight: 1, outcome: .refused, reason: "no_consent", resultHash: Hashes.zero, consent: Hashes.zero)
            query = Transaction.sign(header: c.header("samr", nonce: 500), body: .queryRecord(record), key: c.keys["samr"]!.signing)
            try b.append([Submission(transaction: query, envelope: nil)])
            // A correction (its subject comes from its target), then the erasure of both.
            let original = Submission(transaction: try XCTUnwrap(try b.store.transaction(at: 1)), envelope: nil)
            let correction = try c.correction(of: original, nonce: 501, payload: "licence no. 330106-2026-0002")
            try b.append([correction])
            try b.append([c.erasure(of: [original.transaction.id, correction.transaction.id], nonce: 502)])
        }
        func audit() throws -> String? { try ChainStore(path: directory, mode: .readOnly, verifyDepth: 0).auditIndexes() }
        XCTAssertNoThrow(try verify(directory))
        XCTAssertNil(try audit())
        // A subject row written before the scoring metadata joined it (2026-11-22) holds the kind alone: taken.
        try Database.editing(directory) { db in
            try db.rewrite("subjects", Array(subject.code.utf8) + Database.key(2)) { $0 = [TransactionKind.attestation.rawValue] }
        }
        XCTAssertNil(try audit())
        let subjectRow = Array(subject.code.utf8) + Database.key(0)
        var consentRow = ByteWriter()
        consentRow.raw(Array("consent/".utf8)); consentRow.raw(Array(subject.code.utf8)); consentRow.string8("bank-a"); consentRow.u64(4)
        var nonceRow = ByteWriter()
        nonceRow.raw(Array("query-nonce/".utf8)); nonceRow.string8("bank-a"); nonceRow.u64(77)
        let queryLogRow = Array("query-log-confirmed/".utf8) + Array(subject.code.utf8) + Database.key(19)
        let cases: [(String, String, [UInt8], ((inout [UInt8]?) -> Void), String)] = [
            ("subject row deleted", "subjects", subjectRow, { $0 = nil }, "subjects lacks 91350100M000100Y43's row for transaction"),
            ("subject row changed", "subjects", subjectRow, { $0?[0] ^= 1 }, "or holds another value there"),
            ("subject row added", "subjects", Array(subject.code.utf8) + Database.key(999), { $0 = [2] }, "subjects holds 21 rows; the log gives 20"),
            ("consent row deleted", "meta", consentRow.bytes, { $0 = nil }, "the consent index lacks transaction"),
            ("transaction placed elsewhere", "transaction_index", query.id, { $0 = Database.key(3) + Database.key(1) }, "transaction_index does not place transaction"),
            ("request nonce deleted", "meta", nonceRow.bytes, { $0 = nil }, "the request-nonce index does not give nonce 77 of bank-a"),
            ("confirmed query log row deleted", "meta", queryLogRow, { $0 = nil }, "91350100M000100Y43's confirmed query log lacks transaction"),
            ("nonce row added", "nonces", Array("stray".utf8), { $0 = [1] }, "nonces holds 23 rows; the log gives 22"),
            ("request nonce changed", "meta", nonceRow.bytes, { $0?[0] ^= 1 }, "the request-nonce index does not give nonce 77 of bank-a"),
            ("query log row deleted", "meta", Array("query-log/".utf8) + Array(subject.code.utf8) + Database.key(19), { $0 = nil },
             "91350100M000100Y43's query log lacks transaction"),
            // Rows under the meta prefixes that no transaction gives are counted too.
            ("consent row added", "meta", Array("consent/".utf8) + Array("stray".utf8), { $0 = [1] }, "rows under consent/; the log gives"),
            ("query log row added", "meta", Array("query-log/".utf8) + Array("stray".utf8), { $0 = [1] }, "rows under query-log/; the log gives"),
            ("confirmed query log row added", "meta", Array("query-log-confirmed/".utf8) + Array("stray".utf8), { $0 = [1] },
             "rows under query-log-confirmed/; the log gives"),
            ("request nonce row added", "meta", Array("query-nonce/".utf8) + Array("stray".utf8), { $0 = [1] }, "rows under query-nonce/; the log gives"),
        ]
        for (name, family, key, change, words) in cases {
            var original: [UInt8]?
            try Database.editing(directory) { db in
                original = try db.get(family, key)
                var value = original
                change(&value)
                let batch = WriteBatch(for: db)
                if let value { try batch.put(family, key, value) } else { try batch.delete(family, key) }
                try db.write(batch)
            }
            XCTAssertNoThrow(try verify(directory), "\(name): the log itself is untouched")
            let problem = try audit()
            XCTAssertTrue(problem?.contains(words) == true, "\(name): \(problem ?? "not found")")
            try Database.editing(directory) { db in
                let batch = WriteBatch(for: db)
                if let original { try batch.put(family, key, original) } else { try batch.delete(family, key) }
                try db.write(batch)
            }
            XCTAssertNil(try audit(), "\(name): restored")
        }
    }

    func verify(_ path: String) throws -> ChainSummary {
        let store = try ChainStore(path: path, mode: .readOnly, verifyDepth: 0)
        var source = StoreBlockSource(store: store)
        return try ChainVerifier(genesis: store.genesis).verify(&source)
    }

    /// Expects verification of the store at `path` to fail at `height` (and `tx`) with `words` in the reason.
    func assertChainFails(_ path: String, _ name: String, height: UInt64, tx: Int? = nil, logIndex: UInt64? = nil, words: String,
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try verify(path), name, file: file, line: line) { error in
            guard let f = error as? ChainFailure else { return XCTFail("\(name): \(error)", file: file, line: line) }
            XCTAssertEqual(f.height, height, "\(name): \(f)", file: file, line: line)
            XCTAssertEqual(f.transactionIndex, tx, "\(name): \(f)", file: file, line: line)
            if let logIndex { XCTAssertEqual(f.logIndex, logIndex, "\(name): \(f)", file: file, line: line) }
            XCTAssertTrue(f.reason.contains(words), "\(name): \(f)", file: file, line: line)
        }
    }

    /// Applies `change` to the raw store of an honest chain, then expects verification to fail.
    func expectFailure(_ name: String, height: UInt64, tx: Int? = nil, words: String,
                       file: StaticString = #filePath, line: UInt = #line, _ change: (Database) throws -> Void) throws {
        try? FileManager.default.removeItem(atPath: directory)
        _ = try honestChain()
        XCTAssertNoThrow(try verify(directory), "honest chain must pass before \(name)")
        try Database.editing(directory, change)
        assertChainFails(directory, name, height: height, tx: tx, words: words, file: file, line: line)
    }

    static func key(_ v: UInt64) -> [UInt8] { Database.key(v) }

    static func flip(_ db: Database, _ family: String, _ key: [UInt8], at offset: (Int) -> Int) throws {
        try db.rewrite(family, key) { $0[offset($0.count)] ^= 0x01 }
    }

    static func swap(_ db: Database, _ family: String, _ a: [UInt8], _ b: [UInt8]) throws {
        let va = try db.get(family, a)!, vb = try db.get(family, b)!
        let batch = WriteBatch(for: db)
        try batch.put(family, a, vb)
        try batch.put(family, b, va)
        try db.write(batch)
    }

    func testTamperTable() throws {
        try expectFailure("byte flipped in a block header (log root)", height: 2, words: "does not name block 2") { db in
            // Block 2's hash changes: its own commit certificate no longer names it.
            try Self.flip(db, "blocks", Self.key(2), at: { $0 - 20 })
        }
        try expectFailure("byte flipped in a transaction body", height: 3, tx: 2, words: "signature") { db in
            try Self.flip(db, "transactions", Self.key(4 + 5 + 2), at: { $0 - 110 }) // inside the consent's evidence hash
        }
        try expectFailure("byte flipped in a transaction signature", height: 1, tx: 3, words: "signature does not verify") { db in
            try Self.flip(db, "transactions", Self.key(3), at: { $0 - 1 })
        }
        try expectFailure("byte flipped in a commit certificate signature", height: 4, words: "does not verify") { db in
            try Self.flip(db, "certificates", Self.key(4), at: { $0 - 3 })
        }
        try expectFailure("checkpoint root altered", height: 2, words: "checkpoint") { db in
            try db.rewrite("checkpoints", Self.key(2)) { bytes in
                let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                var root = [UInt8](base64: String(lines[2]))!
                root[0] ^= 1
                bytes = Array(([lines[0], lines[1], Substring(root.base64String)] + lines[3...]).joined(separator: "\n").utf8)
            }
        }
        try expectFailure("checkpoint with too few signers", height: 3, words: "needs 3") { db in
            try db.rewrite("checkpoints", Self.key(3)) { bytes in
                let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                bytes = Array((lines.dropLast(3).joined(separator: "\n") + "\n").utf8)
            }
        }
        try expectFailure("two blocks reordered", height: 2, words: "height 3") { db in
            try Self.swap(db, "blocks", Self.key(2), Self.key(3))
            try Self.swap(db, "certificates", Self.key(2), Self.key(3))
        }
        try expectFailure("a transaction moved between blocks", height: 2, words: "transactions root") { db in
            try Self.swap(db, "transactions", Self.key(4), Self.key(9))
        }
        try expectFailure("header claiming four billion transactions", height: 2,
                          words: "is missing (the block's header counts 4000000000 transactions from log index 4; either the header or the log is damaged)") { db in
            // Read before any certificate check: the source must not size buffers from it.
            try db.rewrite("blocks", Self.key(2)) { bytes in
                let h = try BlockHeader.decode(bytes)
                bytes = BlockHeader(chainID: h.chainID, height: h.height, timestampMillis: h.timestampMillis, previousHash: h.previousHash,
                                    transactionCount: 4_000_000_000, transactionsRoot: h.transactionsRoot, logSize: 5_000_000_000,
                                    logRoot: h.logRoot, proposer: h.proposer).encoded
            }
        }
        try expectFailure("chain truncated (head block removed)", height: 4, words: "missing") { db in
            try db.remove("blocks", Self.key(4))
        }
        // A node refuses to serve a store whose head has no checkpoint; it passed as intact.
        try expectFailure("the head's checkpoint removed", height: 4, words: "block 4, the head, has no checkpoint") { db in
            try db.remove("checkpoints", Self.key(4))
        }
    }

    /// A trusted checkpoint naming a block is not held to the round of this copy's certificate:
    /// honest nodes decide a block in the round each first sees a quorum of precommits, so one
    /// node's checkpoint of a block can name another round than another node's certificate.
    func testATrustedCheckpointOfAnotherRoundStillVerifiesTheChain() throws {
        do { _ = try honestChain() }
        let store = try ChainStore(path: directory, mode: .readOnly, verifyDepth: 0)
        let header = try XCTUnwrap(try store.blockHeader(height: 2))
        for round in [UInt32(0), 7] {
            var source = StoreBlockSource(store: store)
            let summary = try ChainVerifier(genesis: store.genesis).verify(&source, mustReach: [Checkpoint(header: header, round: round)])
            XCTAssertEqual(summary.checkpointsReached, 1, "round \(round)")
        }
    }

    /// Blocks that are correctly certified but hold transactions no honest node would accept.
    func testCertifiedButInvalidTransactionsAreNamed() throws {
        let c = try TestConsortium()
        // Signed by a key that is not in genesis (claims to be bank-a).
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var path = directory + "/stranger"
        var b = try ChainBuilder(consortium: c, path: path, signers: validators)
        let stranger = Ed25519PrivateKey()
        let body = ConsentBody(action: .grant, subject: try USCC("91350100M000100Y43"), grantee: "bank-a", purpose: .loanApplication,
                               expiresAt: 1, evidence: Hashes.zero)
        try b.append([try b.consent(nonce: 1), Submission(transaction: Transaction.sign(header: c.header("bank-a", nonce: 2), body: .consent(body), key: stranger), envelope: nil)])
        assertChainFails(path, "key not in genesis", height: 1, tx: 1, words: "bank-a")
        // A valid signature by a member without the role: a bank attesting a penalty.
        path = directory + "/role"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([try b.consent(nonce: 1)])
        try b.append([try c.attestation(by: "samr", nonce: 1), try c.attestation(by: "bank-a", category: .penalty, severity: .general, nonce: 5)])
        assertChainFails(path, "member without the role", height: 2, tx: 1, logIndex: 2, words: "may not attest penalty")
        // A replayed nonce in a later block.
        path = directory + "/replay"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([try b.consent(nonce: 1)])
        try b.append([try b.consent(nonce: 2), try c.attestation(nonce: 3), Submission(transaction: Transaction.sign(
            header: c.header("bank-a", nonce: 1), body: .consent(body), key: c.keys["bank-a"]!.signing), envelope: nil)])
        assertChainFails(path, "replayed nonce", height: 2, tx: 2, logIndex: 3, words: "nonce 1")
        // A bank's record carrying a bureau record's sealed payload (commitment and envelope),
        // in a later block and in the same one.
        let sealed = try c.attestation(by: "samr", nonce: 1)
        guard case .attestation(var copied) = sealed.transaction.body else { return XCTFail() }
        copied.category = .loanRepayment
        let copy = Submission(transaction: Transaction.sign(header: c.header("bank-a", nonce: 7), body: .attestation(copied),
                                                            key: c.keys["bank-a"]!.signing), envelope: sealed.envelope)
        path = directory + "/copied-payload"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([sealed])
        try b.append([copy])
        assertChainFails(path, "copied payload", height: 2, tx: 0, logIndex: 1, words: "is already that of record \(sealed.transaction.id.hexString)")
        path = directory + "/copied-payload-one-block"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([sealed, copy])
        assertChainFails(path, "copied payload in one block", height: 1, tx: 1, words: "payload commitment")
        // An erasure that leaves a correction of its record (which holds a sealed copy of the
        // payload of its own), in a later block and in the same one.
        let correction = try c.correction(of: sealed, nonce: 2, payload: "licence no. 330106-2026-0001, corrected")
        path = directory + "/erasure-leaves-a-correction"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([sealed])
        try b.append([correction])
        try b.append([c.erasure(of: [sealed.transaction.id], nonce: 3)])
        assertChainFails(path, "erasure leaving a correction", height: 3, tx: 0, logIndex: 2, words: "leaves 1 correction of the records it names: \(correction.transaction.id.hexString);")
        path = directory + "/erasure-and-correction-one-block"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([sealed])
        try b.append([correction, c.erasure(of: [sealed.transaction.id], nonce: 3)])
        assertChainFails(path, "erasure and correction in one block", height: 2, tx: 1, words: "versions of record \(sealed.transaction.id.hexString)")
        // Naming every version passes, and the verifier counts both envelopes shredded.
        path = directory + "/erasure-of-every-version"
        b = try ChainBuilder(consortium: c, path: path, signers: validators)
        try b.append([sealed])
        try b.append([correction])
        try b.append([c.erasure(of: [sealed.transaction.id, correction.transaction.id], nonce: 3)])
        XCTAssertEqual(try verify(path).envelopesShredded, 2)
        // Certified by too few validators.
        path = directory + "/few"
        b = try ChainBuilder(consortium: c, path: path, signers: ["samr", "bank-b"])
        try b.append([try b.consent(nonce: 1)])
        assertChainFails(path, "too few certifiers", height: 1, words: "needs 3")
    }

    /// Within one certified block: a repeated transaction, a repeated nonce, and a reference to a
    /// transaction of the same block are refused, from a data directory and from an export alike.
    func testBlockInternalRepeatsAndReferencesFailInBothModes() throws {
        let c = try TestConsortium()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let subject = try USCC("91350100M000100Y43")
        func signed(_ body: ConsentBody, nonce: UInt64) -> Submission {
            Submission(transaction: Transaction.sign(header: c.header("bank-a", nonce: nonce), body: .consent(body),
                                                     key: c.keys["bank-a"]!.signing), envelope: nil)
        }
        func check(_ name: String, tx: Int, words: String, _ block: (ChainBuilder) throws -> [Submission]) throws {
            let path = directory + "/" + name
            let b = try ChainBuilder(consortium: c, path: path, signers: validators)
            try b.append([try b.consent(nonce: 1_000)])
            try b.append(try block(b))
            assertChainFails(path, name + " (data dir)", height: 2, tx: tx, words: words)
            let exportPath = path + ".export"
            _ = try ChainExport.write(store: b.store, to: exportPath)
            var source = try ExportBlockSource(path: exportPath)
            XCTAssertThrowsError(try ChainVerifier(genesis: c.genesis).verify(&source), name + " (export)") { error in
                guard let f = error as? ChainFailure else { return XCTFail("\(name): \(error)") }
                XCTAssertEqual(f.height, 2, "\(name) (export): \(f)")
                XCTAssertEqual(f.transactionIndex, tx, "\(name) (export): \(f)")
                XCTAssertTrue(f.reason.contains(words), "\(name) (export): \(f)")
            }
        }
        try check("same-transaction", tx: 2, words: "appears twice in the block") { b in
            let t = try b.consent(nonce: 1)
            return [t, try b.consent(nonce: 2), t]
        }
        try check("same-nonce", tx: 1, words: "nonce 1 of bank-a is used twice in the block") { b in
            let other = ConsentBody(action: .grant, subject: subject, grantee: "bank-a", purpose: .postLoanMonitoring,
                                    expiresAt: 1_800_000_000, evidence: SHA256.hash(Array("another form".utf8)))
            return [try b.consent(nonce: 1), signed(other, nonce: 1)]
        }
        try check("same-block-reference", tx: 1, words: "revocation target") { b in
            let grant = try b.consent(nonce: 1)
            let revoke = ConsentBody(action: .revoke, subject: subject, grantee: "bank-a", purpose: .loanApplication,
                                     expiresAt: 0, evidence: Hashes.zero, target: grant.transaction.id)
            return [grant, signed(revoke, nonce: 2)]
        }
        // The same revocation one block later is accepted.
        let path = directory + "/later-reference"
        let b = try ChainBuilder(consortium: c, path: path, signers: validators)
        let grant = try b.consent(nonce: 1)
        try b.append([grant])
        try b.append([signed(ConsentBody(action: .revoke, subject: subject, grantee: "bank-a", purpose: .loanApplication,
                                         expiresAt: 0, evidence: Hashes.zero, target: grant.transaction.id), nonce: 2)])
        XCTAssertNoThrow(try verify(path))
    }

    /// A request is answered or refused once on the whole ledger: the verifier refuses a second
    /// record of the same (requester, nonce), in a later block or in the same one, as validators
    /// do; a replay refusal, which uses no nonce, may follow.
    func testARequestRecordedTwiceFailsTheChain() throws {
        let c = try TestConsortium()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let subject = try USCC("91350100M000100Y43")
        var nonce: UInt64 = 0
        func record(_ requestNonce: UInt64, reason: String = "no_consent") -> Submission {
            nonce += 1
            let body = QueryRecordBody(requester: "bank-a", subject: subject, policy: Hashes.zero, purpose: .loanApplication,
                                       requestHash: SHA256.hash(Array("request \(requestNonce)".utf8)), requestNonce: requestNonce,
                                       requestedAtMillis: 1_000, asOfHeight: 1, outcome: .refused, reason: reason,
                                       resultHash: Hashes.zero, consent: Hashes.zero)
            return Submission(transaction: Transaction.sign(header: c.header("samr", nonce: nonce), body: .queryRecord(body),
                                                            key: c.keys["samr"]!.signing), envelope: nil)
        }
        func chain(_ name: String, _ blocks: [[Submission]]) throws -> String {
            let path = directory + "/" + name
            let b = try ChainBuilder(consortium: c, path: path, signers: validators)
            for block in blocks { try b.append(block) }
            return path
        }
        // Replays of an answered request, and forgeries naming its nonce, may be recorded again.
        XCTAssertNoThrow(try verify(try chain("honest", [[record(7)], [record(7, reason: "replayed_request"), record(8)],
                                                          [record(7, reason: "bad_signature"), record(7, reason: "replayed_request")]])))
        assertChainFails(try chain("later-block", [[record(7)], [record(8), record(7)]]), "recorded again in a later block",
                         height: 2, tx: 1, words: "already answered or refused on the ledger")
        assertChainFails(try chain("same-block", [[record(8), record(7), record(7, reason: "wrong_role")]]), "recorded twice in one block",
                         height: 1, tx: 2, words: "claimed twice in the block")
    }

    /// A certified block holding more transactions than genesis allows is refused in both modes
    /// (the store does not enforce the limit; consensus and the verifier do).
    func testBlockOverTheGenesisTransactionLimitFails() throws {
        var limits = Limits()
        limits.maxBlockTransactions = 4
        limits.maxBatchTransactions = 4
        let c = try TestConsortium(limits: limits)
        let b = try ChainBuilder(consortium: c, path: directory, signers: validators)
        try b.append((0..<4).map { try b.consent(nonce: UInt64(1 + $0)) })
        XCTAssertNoThrow(try verify(directory), "a block of exactly the limit passes")
        try b.append((0..<5).map { try b.consent(nonce: UInt64(10 + $0)) })
        assertChainFails(directory, "five transactions in a block", height: 2, words: "genesis allows at most 4")
        let exportPath = directory + ".export"
        _ = try ChainExport.write(store: b.store, to: exportPath)
        var source = try ExportBlockSource(path: exportPath)
        XCTAssertThrowsError(try ChainVerifier(genesis: c.genesis).verify(&source)) { error in
            guard let f = error as? ChainFailure else { return XCTFail("\(error)") }
            XCTAssertEqual(f.height, 2, "\(f)")
            XCTAssertTrue(f.reason.contains("genesis allows at most 4"), "\(f)")
        }
    }

    /// A header claiming 2^32 - 1 transactions is refused by the limit: the store source reads no
    /// more than the limit and one (it used to read the rest of the log and its envelopes into
    /// one block before any check; found in review).
    func testAHeaderClaimingHugelyManyTransactionsIsRefusedWithoutReadingThemAll() throws {
        var limits = Limits()
        limits.maxBlockTransactions = 4
        limits.maxBatchTransactions = 4
        do {
            let b = try ChainBuilder(consortium: try TestConsortium(limits: limits), path: directory, signers: validators)
            for block in 0..<3 { try b.append((0..<4).map { try b.consent(nonce: UInt64(10 * block + $0 + 1)) }) }
        }
        XCTAssertNoThrow(try verify(directory))
        try Database.editing(directory) { db in
            try db.rewrite("blocks", Database.key(1)) { value in
                let h = try BlockHeader.decode(value)
                value = BlockHeader(chainID: h.chainID, height: h.height, timestampMillis: h.timestampMillis, previousHash: h.previousHash,
                                    transactionCount: .max, transactionsRoot: h.transactionsRoot, logSize: UInt64(UInt32.max),
                                    logRoot: h.logRoot, proposer: h.proposer).encoded
            }
        }
        assertChainFails(directory, "a header claiming 2^32 - 1 transactions", height: 1, words: "genesis allows at most 4")
    }

    /// A block's checkpoint names the block and the round of its certificate: one validly
    /// cosigned by a quorum in another round (or naming another block) fails the chain.
    func testACheckpointOfAnotherRoundFailsTheChain() throws {
        let c = try TestConsortium()
        do { _ = try honestChain() }
        XCTAssertNoThrow(try verify(directory))
        for (height, round) in [(UInt64(2), UInt32(5)), (3, 0)] {
            try Database.editing(directory) { db in
                try db.rewrite("checkpoints", Database.key(2)) { value in
                    let original = try Checkpoint(text: try SignedNote(parsing: String(decoding: value, as: UTF8.self)).text)
                    let other = Checkpoint(origin: original.origin, size: original.size, rootHash: original.rootHash,
                                           commit: .init(height: height, round: round))
                    var note = SignedNote(text: other.text)
                    for id in validators.prefix(3) { note.sign(name: id, key: c.keys[id]!.signing) }
                    value = Array(note.serialized.utf8)
                }
            }
            assertChainFails(directory, "checkpoint of block \(height) round \(round)", height: 2,
                             words: "checkpoint names block \(height) round \(round), the certificate block 2 round 0")
        }
    }

    /// Blocks a quorum signed although no validator would vote for them: a proposer that is not a
    /// validator, or no transactions at all. Only a quorum that broke the protocol can write them.
    func testACertifiedBlockByANonValidatorOrHoldingNothingFails() throws {
        let c = try TestConsortium()
        let quorum = validators.prefix(3).map { (member: c.member($0), key: c.keys[$0]!.signing) }
        for (name, submissions, proposer, words) in [
            ("auditor as proposer", [try c.attestation(nonce: 1)], "auditor", "proposer auditor is not a validator in the genesis"),
            ("unknown proposer", [try c.attestation(nonce: 1)], "nobody", "proposer nobody is not a validator in the genesis"),
            ("empty block", [], "samr", "block holds no transactions"),
        ] as [(String, [Submission], String, String)] {
            try? FileManager.default.removeItem(atPath: directory)
            let store = try ChainStore.create(path: directory, genesis: c.genesis)
            try store.appendBlock([try c.attestation(nonce: 0)], timestampMillis: 1_000, proposer: "samr", signers: quorum)
            try store.appendBlock(submissions, timestampMillis: 1_001, proposer: proposer, signers: quorum)
            assertChainFails(directory, name, height: 2, words: words)
        }
    }

    /// A source that loses a transaction the verifier has already checked (a store edited while it
    /// is read, an export index gone wrong) fails where a later transaction refers to it, naming it.
    func testReferenceToAVerifiedTransactionTheSourceLostFails() throws {
        struct Forgetful: BlockSource {
            var inner: StoreBlockSource
            let lost: UInt64
            var genesisBytes: [UInt8] { inner.genesisBytes }
            mutating func nextBlock() throws -> RawBlock? { try inner.nextBlock() }
            func verifiedTransaction(at logIndex: UInt64) throws -> [UInt8]? {
                logIndex == lost ? nil : try inner.verifiedTransaction(at: logIndex)
            }
            mutating func didVerify(_ block: RawBlock, ids: [Hash], firstLogIndex: UInt64) throws {
                try inner.didVerify(block, ids: ids, firstLogIndex: firstLogIndex)
            }
            func holdsEnvelope(of id: Hash) throws -> Bool { try inner.holdsEnvelope(of: id) }
        }
        let c = try TestConsortium()
        let b = try ChainBuilder(consortium: c, path: directory, signers: validators)
        let grant = try b.consent(nonce: 1)
        try b.append([grant])
        let revoke = ConsentBody(action: .revoke, subject: try USCC("91350100M000100Y43"), grantee: "bank-a", purpose: .loanApplication,
                                 expiresAt: 0, evidence: Hashes.zero, target: grant.transaction.id)
        try b.append([Submission(transaction: Transaction.sign(header: c.header("bank-a", nonce: 2), body: .consent(revoke),
                                                               key: c.keys["bank-a"]!.signing), envelope: nil)])
        XCTAssertNoThrow(try verify(directory), "the honest chain passes")
        let store = try ChainStore(path: directory, mode: .readOnly, verifyDepth: 0)
        var source = Forgetful(inner: StoreBlockSource(store: store), lost: 0)
        XCTAssertThrowsError(try ChainVerifier(genesis: store.genesis).verify(&source)) { error in
            guard let f = error as? ChainFailure else { return XCTFail("\(error)") }
            XCTAssertEqual(f.height, 2, "\(f)")
            XCTAssertEqual(f.transactionIndex, 0, "\(f)")
            XCTAssertTrue(f.reason.contains("log index 0 is missing from the source"), "\(f)")
        }
    }

    func testExportRoundTripAndTruncatedExport() throws {
        let b = try honestChain()
        let exportPath = directory + ".export"
        XCTAssertEqual(try ChainExport.write(store: b.store, to: exportPath), 4)
        var source = try ExportBlockSource(path: exportPath)
        let summary = try ChainVerifier(genesis: b.store.genesis).verify(&source)
        XCTAssertEqual(summary.transactions, 19)
        XCTAssertEqual(summary.logRoot, b.store.head.logRoot)
        XCTAssertEqual(summary.headHash, b.store.head.blockHash)
        // `credit-verify chain --data-dir` holds the store's head record to the last block verified.
        XCTAssertNoThrow(try summary.check(againstHead: b.store.head))
        var other = summary
        other.headHash = Hashes.zero
        XCTAssertThrowsError(try other.check(againstHead: b.store.head)) { XCTAssertTrue("\($0)".contains("does not match its last block"), "\($0)") }
        other = summary
        other.transactions -= 1
        XCTAssertThrowsError(try other.check(againstHead: b.store.head))
        // Read against the trusted genesis's limits: a block over them is refused as it is read.
        let limited = try ExportBlockSource(path: exportPath)
        var small = b.store.genesis.limits
        small.maxBlockTransactions = 2
        limited.limits = small
        var limitedSource = limited
        XCTAssertThrowsError(try ChainVerifier(genesis: b.store.genesis).verify(&limitedSource)) { error in
            XCTAssertTrue("\(error)".contains("holds") && "\(error)".contains("genesis allows at most 2"), "\(error)")
        }

        let data = try Data(contentsOf: URL(fileURLWithPath: exportPath))
        for cut in [data.count - 3, data.count / 2] {
            try data.prefix(cut).write(to: URL(fileURLWithPath: exportPath))
            var truncated = try ExportBlockSource(path: exportPath)
            XCTAssertThrowsError(try ChainVerifier(genesis: b.store.genesis).verify(&truncated)) { error in
                XCTAssertTrue("\(error)".contains("truncated") || "\(error)".contains("ends inside"), "\(error)")
            }
        }
    }

    /// An export that stops part way (here the progress callback throws; a full disk fails the
    /// same write path) leaves the file it was to replace as it was, and no temporary file.
    func testAnExportThatFailsLeavesThePreviousFileWhole() throws {
        let b = try honestChain()
        let folder = directory + "-exports"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let exportPath = folder + "/chain.export"
        struct Stop: Error {}
        XCTAssertEqual(try ChainExport.write(store: b.store, to: exportPath), 4)
        let previous = try Data(contentsOf: URL(fileURLWithPath: exportPath))
        XCTAssertThrowsError(try ChainExport.write(store: b.store, to: exportPath) { written, _ in
            if written == 2 { throw Stop() }
        }) { XCTAssertTrue($0 is Stop, "\($0)") }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: exportPath)), previous)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["chain.export"])
        // Into a directory that does not exist: a named error, nothing left behind.
        XCTAssertThrowsError(try ChainExport.write(store: b.store, to: folder + "/missing/chain.export")) {
            XCTAssertTrue("\($0)".contains("cannot create"), "\($0)")
        }
        var source = try ExportBlockSource(path: exportPath)
        XCTAssertEqual(try ChainVerifier(genesis: b.store.genesis).verify(&source).transactions, 19)
    }

    func testReceiptsVerifyAndTamperedReceiptsFail() throws {
        let b = try honestChain()
        let id = try XCTUnwrap(try b.store.transaction(at: 6)).id
        let receipt = try b.store.receipt(for: id)
        XCTAssertEqual(try receipt.verify(genesis: b.store.genesis).transaction.id, id)
        var badProof = receipt
        var h = [UInt8](base64: badProof.inclusion_proof[0])!
        h[3] ^= 1
        badProof.inclusion_proof[0] = h.base64String
        XCTAssertThrowsError(try badProof.verify(genesis: b.store.genesis)) { XCTAssertTrue("\($0)".contains("inclusion proof"), "\($0)") }
        var notBase64 = receipt
        notBase64.inclusion_proof[1] = "not base64!"
        XCTAssertThrowsError(try notBase64.verify(genesis: b.store.genesis)) {
            XCTAssertTrue("\($0)".contains("inclusion proof entry 1 \"not base64!\" is not a base64 SHA-256 hash"), "\($0)")
        }
        var badIndex = receipt
        badIndex.log_index += 1
        XCTAssertThrowsError(try badIndex.verify(genesis: b.store.genesis))
        var otherGenesis = receipt
        otherGenesis.genesis_sha256 = String(repeating: "0", count: 64)
        XCTAssertThrowsError(try otherGenesis.verify(genesis: b.store.genesis))
        var fewSigners = receipt
        fewSigners.checkpoint = fewSigners.checkpoint.split(separator: "\n", omittingEmptySubsequences: false).dropLast(2).joined(separator: "\n") + "\n"
        XCTAssertThrowsError(try fewSigners.verify(genesis: b.store.genesis)) { XCTAssertTrue("\($0)".contains("needs 3"), "\($0)") }
        var otherHeight = receipt
        otherHeight.block.height += 76
        XCTAssertThrowsError(try otherHeight.verify(genesis: b.store.genesis)) {
            XCTAssertTrue("\($0)".contains("block.height says \(receipt.block.height + 76), but the block header it carries is of height \(receipt.block.height)"), "\($0)")
        }
    }

    /// A consistency proof cannot make a rewritten history look like an extension.
    func testConsistencyProofForRewrittenHistoryFails() throws {
        let c = try TestConsortium()
        let honest = try ChainBuilder(consortium: c, path: directory, signers: validators)
        let forkPath = directory + "-fork"
        defer { try? FileManager.default.removeItem(atPath: forkPath) }
        let fork = try ChainBuilder(consortium: c, path: forkPath, signers: validators)
        try honest.append((0..<6).map { try honest.consent(nonce: UInt64($0)) })
        try fork.append((0..<3).map { try fork.consent(nonce: UInt64($0)) } + (3..<6).map { try fork.consent(nonce: UInt64(1000 + $0)) })
        try honest.append((6..<11).map { try honest.consent(nonce: UInt64($0)) })
        try fork.append((6..<11).map { try fork.consent(nonce: UInt64($0)) })
        let oldRoot = try Merkle.root(honest.store, size: 6)
        let newForkRoot = fork.store.head.logRoot
        let proof = try fork.store.consistencyProof(oldSize: 6, newSize: 11)
        XCTAssertFalse(Merkle.verifyConsistency(oldSize: 6, newSize: 11, oldRoot: oldRoot, newRoot: newForkRoot, proof: proof))
        // The empty tree is a prefix of every tree, but only under the empty tree's root.
        XCTAssertTrue(Merkle.verifyConsistency(oldSize: 0, newSize: 11, oldRoot: Merkle.emptyRoot, newRoot: newForkRoot, proof: []))
        XCTAssertFalse(Merkle.verifyConsistency(oldSize: 0, newSize: 11, oldRoot: oldRoot, newRoot: newForkRoot, proof: []))
        XCTAssertTrue(Merkle.verifyConsistency(oldSize: 6, newSize: 11, oldRoot: oldRoot, newRoot: honest.store.head.logRoot,
                                               proof: try honest.store.consistencyProof(oldSize: 6, newSize: 11)))
    }

    func testHonestChainOfOneHundredThousandTransactionsPasses() throws {
        let c = try TestConsortium()
        let b = try ChainBuilder(consortium: c, path: directory, signers: Array(validators.prefix(3)))
        var nonce: UInt64 = 0
        for _ in 0..<50 {
            var block: [Submission] = []
            for _ in 0..<2000 { nonce += 1; block.append(try b.consent(nonce: nonce, by: nonce % 2 == 0 ? "bank-a" : "bank-b")) }
            try b.append(block)
        }
        let summary = try verify(directory)
        XCTAssertEqual(summary.transactions, 100_000)
        XCTAssertEqual(summary.blocks, 50)
        XCTAssertEqual(summary.logRoot, b.store.head.logRoot)
    }
}
