import LedgerCore
import LedgerCrypto
import LedgerStore
import XCTest

final class TransactionTests: XCTestCase {
    func testEveryKindRoundTripsCanonically() throws {
        let c = try TestConsortium()
        let subject = try USCC("91350100M000100Y43")
        let att = try c.attestation(nonce: 1)
        guard case .attestation(let body) = att.transaction.body else { return XCTFail() }
        var score = ScoreUpdateBody(subject: subject, modelHash: SHA256.hash([1]), points: 812, grade: .aPlus,
                                    dimensions: [.init(code: "honesty", points: 120)], inputs: [att.transaction.id], asOfLogSize: 1)
        let endorsement = c.keys["data-bureau"]!.signing.signature(for: score.endorsementMessage(chainID: c.genesis.chainID))
        score.endorsements = [MemberSignature(member: "data-bureau", keyID: c.member("data-bureau").keyID, signature: endorsement)]
        // install_policy documents are checked by the policy engine (PolicyTests), and set_parameter
        // is refused (reserved); the encoding is the same for every action.
        var gov = GovernanceBody(action: .eraseRecords, name: "erase", version: 1, document: SHA256.hash([6]))
        gov.approvals = ["samr", "data-bureau"].map {
            MemberSignature(member: $0, keyID: c.member($0).keyID, signature: c.keys[$0]!.signing.signature(for: gov.approvalMessage(chainID: c.genesis.chainID)))
        }
        let bodies: [(String, TransactionBody)] = [
            ("samr", .attestation(body)),
            ("samr", .amendment(AmendmentBody(action: .correction, target: att.transaction.id, reason: "typo_in_licence_number", replacement: body))),
            ("samr", .amendment(AmendmentBody(action: .revocation, target: att.transaction.id, reason: "issued_in_error", replacement: nil))),
            ("samr", .scoreUpdate(score)),
            ("bank-a", .consent(ConsentBody(action: .grant, subject: subject, grantee: "bank-a", purpose: .loanApplication,
                                            expiresAt: 1_800_000_000, evidence: SHA256.hash([2])))),
            ("samr", .governance(gov)),
            ("samr", .queryRecord(QueryRecordBody(requester: "bank-a", subject: subject, policy: SHA256.hash([3]), purpose: .loanApplication,
                                                  requestHash: SHA256.hash([4]), requestNonce: 9, requestedAtMillis: 1_800_000_000_000,
                                                  asOfHeight: 12, outcome: .answered, reason: "", resultHash: SHA256.hash([5]),
                                                  consent: Hashes.zero))),
            ("bank-a", .queryRecord(QueryRecordBody(requester: "bank-b", subject: nil, policy: Hashes.zero, purpose: .unspecified,
                                                    requestHash: SHA256.hash([6]), requestNonce: 1, requestedAtMillis: 2, asOfHeight: 3,
                                                    outcome: .refused, reason: "bad_signature", resultHash: Hashes.zero, consent: Hashes.zero))),
        ]
        let validator = TransactionValidator(genesis: c.genesis)
        for (i, (signer, b)) in bodies.enumerated() {
            let tx = Transaction.sign(header: c.header(signer, nonce: UInt64(10 + i)), body: b, key: c.keys[signer]!.signing)
            let decoded = try Transaction.decode(tx.encoded)
            XCTAssertEqual(decoded, tx)
            XCTAssertEqual(decoded.id, Merkle.leafHash(tx.encoded))
            XCTAssertNoThrow(try validator.checkStateless(Submission(transaction: tx, envelope: b.envelopedRecord != nil ? att.envelope : nil)), "\(b.kind)")
        }
    }

    /// Every prefix of a valid transaction is refused with a defined error; so is any extension.
    /// What one block may hold together: corrections of one record, or erasures of it, but not a
    /// correction beside an erasure of its record; exclusive claims (one payload commitment) once.
    func testBlockClaimsKeepACorrectionAndAnErasureOfOneRecordApart() throws {
        let c = try TestConsortium()
        let record = try c.attestation(nonce: 1)
        let fixes = [try c.correction(of: record, nonce: 2, payload: "one"), try c.correction(of: record, nonce: 3, payload: "two")]
        let erasures = [c.erasure(of: [record.transaction.id], nonce: 4), c.erasure(of: [record.transaction.id], nonce: 5)]
        func admitted(_ txs: [Submission]) -> Int {
            var claims = BlockClaims()
            var n = 0
            for s in txs where claims.conflict(s.transaction) == nil { claims.take(s.transaction); n += 1 }
            return n
        }
        XCTAssertEqual(admitted(fixes), 2)
        XCTAssertEqual(admitted(erasures), 2)
        XCTAssertEqual(admitted([fixes[0], erasures[0], fixes[1]]), 2)
        XCTAssertEqual(admitted([erasures[0], fixes[0]]), 1)
        XCTAssertEqual(admitted([record, record]), 1, "one payload commitment")
        // A claim given back frees its name.
        var claims = BlockClaims()
        claims.take(fixes[0].transaction)
        claims.take(fixes[1].transaction)
        claims.release(fixes[0].transaction)
        XCTAssertNotNil(claims.conflict(erasures[0].transaction), "the other correction still holds the record")
        claims.release(fixes[1].transaction)
        XCTAssertNil(claims.conflict(erasures[0].transaction))
    }

    /// A revocation holds its record alone in a block: not beside a second revocation of it, a
    /// correction or an erasure (the revoked-record rule reads committed state, so both were
    /// committed, the second changing nothing). A certified block of before the rule keeps them.
    func testARevocationTakesItsRecordAloneExceptInEarlierCertifiedBlocks() throws {
        let c = try TestConsortium()
        let record = try c.attestation(nonce: 1)
        func revocation(_ nonce: UInt64) -> Submission {
            Submission(transaction: Transaction.sign(header: c.header("samr", nonce: nonce),
                body: .amendment(AmendmentBody(action: .revocation, target: record.transaction.id, reason: "issued_in_error", replacement: nil)),
                key: c.keys["samr"]!.signing), envelope: nil)
        }
        let fix = try c.correction(of: record, nonce: 4, payload: "one")
        let erasure = c.erasure(of: [record.transaction.id], nonce: 5)
        func admitted(_ txs: [Submission], certified: Bool = false) -> Int {
            var claims = BlockClaims(certified: certified)
            var n = 0
            for s in txs where claims.conflict(s.transaction) == nil { claims.take(s.transaction); n += 1 }
            return n
        }
        for other in [revocation(3), fix, erasure] {
            XCTAssertEqual(admitted([revocation(2), other]), 1, "\(other.transaction.kind)")
            XCTAssertEqual(admitted([other, revocation(2)]), 1, "\(other.transaction.kind)")
            XCTAssertEqual(admitted([revocation(2), other], certified: true), 2, "\(other.transaction.kind)")
        }
        XCTAssertEqual(admitted([fix, erasure], certified: true), 1, "the earlier rules stand for certified blocks")
        // Amendments of different versions of one record (a correction C of it, revoked or
        // corrected beside a revocation of the original) meet at the record they belong to.
        let ofFix = try c.correction(of: fix, nonce: 6, payload: "two")
        var byRecord = BlockClaims()
        byRecord.take(revocation(2).transaction, record: record.transaction.id)
        XCTAssertNotNil(byRecord.conflict(ofFix.transaction, record: record.transaction.id))
        XCTAssertNil(byRecord.conflict(ofFix.transaction), "without its record it names only its own version")
        var corrections = BlockClaims()
        corrections.take(fix.transaction, record: record.transaction.id)
        XCTAssertNil(corrections.conflict(ofFix.transaction, record: record.transaction.id), "two corrections of one record may share a block")
        var earlier = BlockClaims(certified: true)
        earlier.take(revocation(2).transaction, record: record.transaction.id)
        XCTAssertNil(earlier.conflict(ofFix.transaction, record: record.transaction.id))
        var claims = BlockClaims()
        claims.take(revocation(2).transaction)
        claims.release(revocation(2).transaction)
        XCTAssertNil(claims.conflict(fix.transaction))
    }

    func testTruncatedAndExtendedBytesAreRefused() throws {
        let tx = try TestConsortium().attestation(nonce: 7).transaction
        for n in 0..<tx.encoded.count {
            XCTAssertThrowsError(try Transaction.decode(Array(tx.encoded.prefix(n)))) { error in
                XCTAssertTrue(error is LedgerError, "prefix \(n): \(error)")
            }
        }
        XCTAssertThrowsError(try Transaction.decode(tx.encoded + [0])) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .trailingBytes)
        }
        XCTAssertThrowsError(try Transaction.decode(tx.encoded, maxBytes: 100)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .transactionTooLarge)
        }
    }

    /// Random single-byte corruption never crashes: it is refused, or it decodes to a
    /// transaction whose signature no longer verifies.
    func testCorruptedBytesNeverVerify() throws {
        let c = try TestConsortium()
        let s = try c.attestation(nonce: 8)
        let validator = TransactionValidator(genesis: c.genesis)
        for offset in 0..<s.transaction.encoded.count {
            var bytes = s.transaction.encoded
            bytes[offset] ^= 0x5A
            if let tx = try? Transaction.decode(bytes) {
                XCTAssertThrowsError(try validator.checkStateless(Submission(transaction: tx, envelope: s.envelope)), "offset \(offset)")
            }
        }
    }

    func testStatelessRulesNameTheProblem() throws {
        let c = try TestConsortium()
        let v = TransactionValidator(genesis: c.genesis)
        func code(_ s: Submission) -> LedgerError.Code? {
            do { try v.checkStateless(s); return nil } catch { return (error as? LedgerError)?.code }
        }
        XCTAssertNil(code(try c.attestation(nonce: 1)))
        XCTAssertEqual(code(try c.attestation(nonce: 1, chainID: "other.chain")), .wrongChain)
        XCTAssertEqual(code(try c.attestation(by: "bank-a", nonce: 1)), .notAuthorized, "banks attest loan repayment only")
        XCTAssertNil(code(try c.attestation(by: "bank-a", category: .loanRepayment, nonce: 1)))
        XCTAssertEqual(code(try c.attestation(by: "auditor", category: .loanRepayment, nonce: 1)), .notAuthorized)
        let good = try c.attestation(nonce: 2)
        XCTAssertEqual(code(Submission(transaction: good.transaction, envelope: nil)), .invalidValue)
        let other = try c.attestation(nonce: 3)
        XCTAssertEqual(code(Submission(transaction: good.transaction, envelope: other.envelope)), .invalidValue)
        // Signed by a key that is not the member's.
        let stranger = Ed25519PrivateKey()
        guard case .attestation(let body) = good.transaction.body else { return XCTFail() }
        let forged = Transaction.sign(header: c.header("samr", nonce: 9), body: .attestation(body), key: stranger)
        XCTAssertEqual(code(Submission(transaction: forged, envelope: good.envelope)), .badSignature)
        var unknown = c.header("samr", nonce: 9)
        unknown.signer = "mallory"
        XCTAssertEqual(code(Submission(transaction: Transaction.sign(header: unknown, body: .attestation(body), key: stranger), envelope: good.envelope)), .unknownSigner)
        // Severity rules and subject kind agreement.
        XCTAssertThrowsError(try AttestationBody(subject: USCC("91350100M000100Y43"), subjectKind: .enterprise, category: .penalty,
                                                 eventDate: LedgerDate(20260101), payloadCommitment: Hashes.zero, envelopeHash: Hashes.zero).check())
        XCTAssertThrowsError(try Transaction.decode(try c.attestation(category: .penalty, nonce: 4).transaction.encoded),
                             "a penalty without severity does not decode")
        XCTAssertThrowsError(try AttestationBody(subject: USCC("91350100M000100Y43"), subjectKind: .individualBusiness, category: .license,
                                                 eventDate: LedgerDate(20260101), payloadCommitment: Hashes.zero, envelopeHash: Hashes.zero).check())
        XCTAssertThrowsError(try LedgerDate(20260230)) { XCTAssertTrue("\($0)".contains("day out of range"), "\($0)") }
        XCTAssertThrowsError(try LedgerDate(iso: "2026-13-01")) { XCTAssertTrue("\($0)".contains("month out of range"), "\($0)") }
        // A real date outside the range is named as such (it was "not a calendar date").
        XCTAssertThrowsError(try LedgerDate(iso: "1800-01-01")) { XCTAssertTrue("\($0)".contains("outside the years 1900-2999"), "\($0)") }
    }

    func testIndustryCodesAreThoseOfGBT4754AndCertifiedBlocksKeepTheirs() throws {
        for good in ["A", "A01", "C13", "C131", "C1311", "F52", "I65", "K70", "S96", "T97"] {
            XCTAssertNil(IndustryCode.problem(good), good)
        }
        let bad = [("", "empty"), ("Z99", "section letter A-T"), ("c13", "written in capitals (\"C\", not \"c\")"), ("C1", "2 digits (division)"),
                   ("C13111", "2 digits (division)"), ("C1A", "digits only"), ("C12", "section C has divisions 13-43, not 12"),
                   ("A06", "section A has divisions 01-05, not 06"), ("K71", "section K has divisions 70, not 71"), ("U99", "A-T")]
        for (code, says) in bad {
            let problem = IndustryCode.problem(code)
            XCTAssertTrue(problem?.contains(says) == true, "\(code): \(problem ?? "accepted")")
        }
        // On the ledger: refused for blocks being decided and for the mempool; a certified block
        // recorded before the rule keeps its code.
        let c = try TestConsortium()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("industry-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try ChainStore.create(path: path, genesis: c.genesis)
        let v = TransactionValidator(genesis: c.genesis)
        let z = try c.attestation(nonce: 1, industry: "Z99")
        XCTAssertNoThrow(try v.checkStateless(z))
        XCTAssertThrowsError(try v.checkStateful(z.transaction, state: store)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .invalidValue)
            XCTAssertTrue("\(error)".contains("industry \"Z99\" is not a GB/T 4754-2017 code"), "\(error)")
        }
        XCTAssertThrowsError(try v.checkStateful(z.transaction, state: store, forMempool: true))
        XCTAssertNoThrow(try v.checkStateful(z.transaction, state: store, certified: true))
        XCTAssertNoThrow(try v.checkStateful(try c.attestation(nonce: 2, industry: "C1311").transaction, state: store))
        XCTAssertNoThrow(try v.checkStateful(try c.attestation(nonce: 3, industry: "").transaction, state: store))
        // A correction's replacement record is held to it too.
        let good = try c.attestation(nonce: 4)
        try store.appendBlock([good], timestampMillis: 1_000, proposer: "samr",
                              signers: ["samr", "data-bureau", "bank-a"].map { (member: c.member($0), key: c.keys[$0]!.signing) })
        let fresh = try c.attestation(nonce: 5, industry: "C12")
        guard case .attestation(let replacement) = fresh.transaction.body else { return XCTFail() }
        let correction = Transaction.sign(header: c.header("samr", nonce: 5),
                                          body: .amendment(AmendmentBody(action: .correction, target: good.transaction.id, reason: "corrected",
                                                                         replacement: replacement)),
                                          key: c.keys["samr"]!.signing)
        XCTAssertThrowsError(try v.checkStateful(correction, state: store)) { XCTAssertTrue("\($0)".contains("section C has divisions 13-43"), "\($0)") }
    }

    func testPayloadOpensOnlyForCustodiansAndMatchesCommitment() throws {
        let c = try TestConsortium()
        let s = try c.attestation(nonce: 1, payload: "处罚决定书 2026-17")
        guard case .attestation(let body) = s.transaction.body, let envelope = s.envelope else { return XCTFail() }
        for custodian in ["samr", "data-bureau"] {
            let opened = try PayloadSeal.open(envelope, commitment: body.payloadCommitment, custodianID: custodian,
                                              key: c.keys[custodian]!.encryption)
            XCTAssertEqual(String(decoding: opened, as: UTF8.self), "处罚决定书 2026-17")
        }
        XCTAssertThrowsError(try PayloadSeal.open(envelope, commitment: body.payloadCommitment, custodianID: "bank-a", key: c.keys["bank-a"]!.encryption))
        XCTAssertThrowsError(try PayloadSeal.open(envelope, commitment: body.payloadCommitment, custodianID: "samr", key: c.keys["bank-a"]!.encryption))
        XCTAssertThrowsError(try PayloadSeal.open(envelope, commitment: SHA256.hash([0]), custodianID: "samr", key: c.keys["samr"]!.encryption))
        XCTAssertEqual(try Envelope.decode(envelope.encoded), envelope)
    }

    func testGenesisRejectsBadDocuments() throws {
        let good = try TestConsortium().genesis
        XCTAssertEqual(good.validators.count, 4)
        XCTAssertEqual(good.quorum, 3)
        XCTAssertEqual(try TestConsortium(validators: ["samr"]).genesis.quorum, 1)
        let text = String(decoding: good.bytes, as: UTF8.self)
        for (from, to) in [("\"validator\"", "\"emperor\""), ("creditledger-genesis/v1", "v0"), ("\"bank-b\"", "\"bank-a\""),
                           ("creditledger.test/county", "Bad Chain")] {
            XCTAssertThrowsError(try Genesis(bytes: Array(text.replacingOccurrences(of: from, with: to).utf8)), from) { error in
                XCTAssertEqual((error as? LedgerError)?.code, .invalidGenesis)
            }
        }
        XCTAssertThrowsError(try Genesis(bytes: Array("{".utf8)))
        // Encryption keys: a low-order point (nothing sealed to it opens) and a key two members share.
        func withKey(_ key: [UInt8], for id: String) throws -> [UInt8] {
            let members = try good.members.map { m in
                Member(id: m.id, name: m.name, roles: m.roles, signingKey: m.signingKey,
                       encryptionKey: m.id == id ? try X25519PublicKey(bytes: key) : m.encryptionKey)
            }
            return try Genesis.render(chainID: good.chainID, genesisTime: "2026-11-21T00:00:00Z", members: members)
        }
        XCTAssertNoThrow(try Genesis(bytes: try withKey(X25519PrivateKey().publicKey.bytes, for: "samr")))
        XCTAssertThrowsError(try Genesis(bytes: try withKey([UInt8](repeating: 0, count: 32), for: "samr"))) {
            XCTAssertTrue("\($0)".contains("samr: x25519_public_key is a low-order point"), "\($0)")
        }
        XCTAssertThrowsError(try Genesis(bytes: try withKey(good.member("samr")!.encryptionKey.bytes, for: "bank-a"))) {
            XCTAssertTrue("\($0)".contains("x25519_public_key is shared with another member"), "\($0)")
        }
        XCTAssertThrowsError(try SealedBox.seal([1, 2, 3], to: try X25519PublicKey(bytes: [UInt8](repeating: 0, count: 32))))
    }

    /// A member may not be called "unknown" (audit records name that requester for a query with
    /// a malformed requester id), and a genesis may name at most as many validators as a
    /// checkpoint note holds cosignatures: with more, no quorum-signed checkpoint could be written.
    func testGenesisReservesTheUnknownRequesterAndBoundsTheValidators() throws {
        let c = try TestConsortium()
        let text = String(decoding: c.genesis.bytes, as: UTF8.self)
        XCTAssertThrowsError(try Genesis(bytes: Array(text.replacingOccurrences(of: "\"bank-b\"", with: "\"unknown\"").utf8))) {
            XCTAssertTrue("\($0)".contains("member id \"unknown\" is reserved"), "\($0)")
        }
        func validators(_ n: Int) throws -> Genesis {
            let members = (0..<n).map { i in
                Member(id: "v\(i)", name: "validator \(i)", roles: i == 0 ? [.validator, .custodian] : [.validator],
                       signingKey: try! Ed25519PrivateKey(seed: SHA256.hash(Array("v\(i)".utf8))).publicKey,
                       encryptionKey: X25519PrivateKey().publicKey)
            }
            return try Genesis(bytes: try Genesis.render(chainID: "creditledger.test/many", genesisTime: "2026-11-21T00:00:00Z", members: members))
        }
        XCTAssertEqual(try validators(SignedNote.maxSignatures).validators.count, SignedNote.maxSignatures)
        XCTAssertThrowsError(try validators(SignedNote.maxSignatures + 1)) {
            XCTAssertTrue("\($0)".contains("names 101 validators; at most 100"), "\($0)")
        }
        // A network carries a block (twice max_request_bytes) in one P2P frame that peers accept:
        // at most 48 MiB there; a dev ledger (one validator, no P2P) may go to the format's 256 MiB.
        func limited(_ bytes: Int, validators n: Int, p2p: Bool = true) throws -> Genesis {
            var limits = Limits()
            limits.maxRequestBytes = bytes
            var members = n == 1 ? [c.genesis.validators[0]] + c.genesis.members.filter { !$0.has(.validator) } : c.genesis.members
            members = members.enumerated().map { i, m in
                Member(id: m.id, name: m.name, roles: m.roles, signingKey: m.signingKey, encryptionKey: m.encryptionKey,
                       p2pAddress: p2p ? "127.0.0.1:\(26656 + i)" : nil)
            }
            return try Genesis(bytes: try Genesis.render(chainID: "creditledger.test/limits", genesisTime: "2026-11-21T00:00:00Z",
                                                          members: members, limits: limits))
        }
        XCTAssertGreaterThan(c.genesis.validators.count, 1)
        XCTAssertNoThrow(try limited(48 << 20, validators: 4))
        XCTAssertThrowsError(try limited((48 << 20) + 1, validators: 4)) {
            XCTAssertTrue("\($0)".contains("may be at most 50331648 (48 MiB)"), "\($0)")
        }
        XCTAssertNoThrow(try limited(256 << 20, validators: 1, p2p: false))
        XCTAssertThrowsError(try limited(256 << 20, validators: 1), "a lone validator with followers on P2P") {
            XCTAssertTrue("\($0)".contains("may be at most"), "\($0)")
        }
    }

    /// Every member dials the addresses in genesis, which never changes: one that does not parse is refused when it is made.
    func testGenesisRefusesMemberAddressesThatAreNotHostPort() throws {
        let c = try TestConsortium()
        func render(p2p: String?, http: String? = nil) throws -> Genesis {
            let members = c.genesis.members.map { m in
                Member(id: m.id, name: m.name, roles: m.roles, signingKey: m.signingKey, encryptionKey: m.encryptionKey,
                       p2pAddress: m.id == "bank-b" ? p2p : m.p2pAddress, httpAddress: m.id == "bank-b" ? http : m.httpAddress)
            }
            return try Genesis(bytes: try Genesis.render(chainID: c.genesis.chainID, genesisTime: "2026-11-21T00:00:00Z", members: members))
        }
        XCTAssertNoThrow(try render(p2p: "10.0.0.7:26656", http: "bank-b.example:8480"))
        XCTAssertNoThrow(try render(p2p: "[::1]:26656"))
        for bad in ["bank-b", "bank-b:", ":26656", "bank-b:0", "bank-b:65536", "bank b:26656", "http://bank-b:26656",
                    "bank-b:+26656", "bank-b:026656", "::1:26656"] {
            XCTAssertThrowsError(try render(p2p: bad), bad) { error in
                XCTAssertEqual((error as? LedgerError)?.code, .invalidGenesis, "\(error)")
                XCTAssertTrue("\(error)".contains("p2p_address must be host:port"), "\(error)")
            }
        }
        XCTAssertThrowsError(try render(p2p: nil, http: "8480"))
        // Another member's address: one of the two could never be dialled (found by black-box testing).
        let twins = c.genesis.members.map { m in
            Member(id: m.id, name: m.name, roles: m.roles, signingKey: m.signingKey, encryptionKey: m.encryptionKey,
                   p2pAddress: ["bank-a", "bank-b"].contains(m.id) ? "10.0.0.7:26656" : nil)
        }
        XCTAssertThrowsError(try Genesis.render(chainID: c.genesis.chainID, genesisTime: "2026-11-21T00:00:00Z", members: twins)) { error in
            XCTAssertTrue("\(error)".contains("members bank-a and bank-b have the same p2p_address 10.0.0.7:26656"), "\(error)")
        }
        // One address in two spellings of its host's case; a member listed twice is named as such.
        let cased = c.genesis.members.map { m in
            Member(id: m.id, name: m.name, roles: m.roles, signingKey: m.signingKey, encryptionKey: m.encryptionKey,
                   p2pAddress: m.id == "bank-a" ? "Node.Example:26656" : m.id == "bank-b" ? "node.example:26656" : nil)
        }
        XCTAssertThrowsError(try Genesis.render(chainID: c.genesis.chainID, genesisTime: "2026-11-21T00:00:00Z", members: cased)) { error in
            XCTAssertTrue("\(error)".contains("members bank-a and bank-b have the same p2p_address"), "\(error)")
        }
        XCTAssertThrowsError(try Genesis.render(chainID: c.genesis.chainID, genesisTime: "2026-11-21T00:00:00Z", members: c.genesis.members + [c.genesis.members[0]])) { error in
            XCTAssertTrue("\(error)".contains("member id \"\(c.genesis.members[0].id)\" appears twice"), "\(error)")
        }
    }

    /// A consent's expiry in milliseconds saturates: one set too far ahead to count in
    /// milliseconds never expires (it used to wrap to a time long past; found in review).
    func testConsentExpiryInMillisecondsSaturates() throws {
        func consent(_ expiresAt: UInt64) throws -> ConsentBody {
            ConsentBody(action: .grant, subject: try USCC("91350100M000100Y43"), grantee: "bank-a", purpose: .loanApplication,
                        expiresAt: expiresAt, evidence: SHA256.hash([2]))
        }
        XCTAssertEqual(try consent(1_800_000_000).expiresAtMillis, 1_800_000_000_000)
        XCTAssertEqual(try consent(18_446_744_073_709_551).expiresAtMillis, 18_446_744_073_709_551_000)
        XCTAssertEqual(try consent(18_446_744_073_709_552).expiresAtMillis, .max)
        XCTAssertEqual(try consent(.max).expiresAtMillis, .max)
    }

    /// The least max_transaction_bytes a genesis may set holds the largest score update the
    /// format allows, so a scorer never signs one that no peer would take (found in review).
    func testTheLargestScoreUpdateFitsTheLeastTransactionLimit() throws {
        let id = String(repeating: "m", count: FieldLimits.memberID)
        let body = ScoreUpdateBody(subject: try USCC("91350100M000100Y43"), modelHash: SHA256.hash([1]), points: .max, grade: .d,
                                   dimensions: (0..<FieldLimits.dimensions).map { .init(code: String(repeating: "d", count: FieldLimits.dimensionCode - 2) + String(format: "%02d", $0), points: .min) },
                                   inputs: (0..<FieldLimits.scoreInputs).map { SHA256.hash(Array(String($0).utf8)) }, asOfLogSize: .max,
                                   endorsements: (0..<FieldLimits.signatures).map { _ in MemberSignature(member: id, keyID: .max, signature: [UInt8](repeating: 7, count: 64)) })
        let header = TransactionHeader(chainID: String(repeating: "c", count: FieldLimits.chainID), signer: id, keyID: 1, nonce: .max, issuedAtMillis: .max)
        let tx = Transaction.sign(header: header, body: .scoreUpdate(body), key: Ed25519PrivateKey())
        XCTAssertLessThanOrEqual(tx.encoded.count, Limits.minTransactionBytes, "\(tx.encoded.count) bytes")
        var limits = Limits()
        limits.maxTransactionBytes = Limits.minTransactionBytes - 1
        XCTAssertThrowsError(try limits.check()) { XCTAssertTrue("\($0)".contains("limits.max_transaction_bytes is 40959, allowed 40960-"), "\($0)") }
    }
}
