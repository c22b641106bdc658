import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
@testable import Scoring

/// The repository's Genesis/models directory, found from this file's path.
enum Models {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Genesis/models").path

    static func bytes(_ file: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(file)") else {
            throw LedgerError(.notFound, "cannot read \(directory)/\(file)")
        }
        return Array(data)
    }

    static func individualBusiness() throws -> ScoringModel { try ScoringModel(document: bytes("individual-business.json")) }
    static func enterprise() throws -> ScoringModel { try ScoringModel(document: bytes("enterprise.json")) }
    static func riskWarning() throws -> ScoringModel { try ScoringModel(document: bytes("risk-warning.json")) }

    static func installed(_ file: String) throws -> InstalledModel {
        let m = try ScoringModel(document: bytes(file))
        return InstalledModel(name: m.name, version: m.version, document: m.document, logIndex: nil)
    }

    static let files = ["individual-business.json", "enterprise.json", "risk-warning.json"]
}

/// Records for examples: clear metadata only, as the models read it.
struct Records {
    let subject: USCC
    var list: [AttestationBody] = []

    init(_ code: String) { subject = try! USCC(code) }

    mutating func add(_ category: Category, _ date: String, _ severity: Severity = .none, industry: String = "",
                      _ attributes: [String: Int64] = [:]) {
        list.append(AttestationBody(subject: subject, subjectKind: subject.subjectKind!, category: category, severity: severity,
                                    eventDate: try! LedgerDate(iso: date), industry: industry,
                                    attributes: attributes.sorted { $0.key < $1.key }.map { Attribute(name: $0.key, value: $0.value) },
                                    payloadCommitment: SHA256.hash(Array("\(list.count)".utf8)), envelopeHash: Hashes.zero))
    }

    mutating func add(_ category: Category, _ date: String, _ attributes: [String: Int64]) {
        add(category, date, .none, industry: "", attributes)
    }

    func facts(asOf: String = "2026-11-21") throws -> SubjectFacts {
        try SubjectFacts(subject: subject, records: list.enumerated().map { ($1, SHA256.hash([UInt8(truncatingIfNeeded: $0)])) },
                         asOfDate: try LedgerDate(iso: asOf))
    }

    func score(_ model: ScoringModel, asOf: String = "2026-11-21") throws -> ScoreResult {
        try Evaluator.evaluate(model, try facts(asOf: asOf), explain: true)
    }
}

/// The worked examples of docs/SCORING.md §9.
enum Examples {
    /// Example A: 西湖茶叶店, an individual business (retail, F52).
    static func teaShop() -> Records {
        var r = Records("92330106MA2H4K7Q3A")
        r.add(.registration, "2019-04-10", industry: "F52", ["registered_capital_yuan": 200_000])
        r.add(.license, "2022-05-01", industry: "F52")
        r.add(.taxGrade, "2026-04-30", industry: "F52", ["tax_grade": 2])
        r.add(.utilitiesPayment, "2026-06-30", industry: "F52", ["months_on_time": 6, "months_overdue": 0])
        r.add(.utilitiesPayment, "2026-10-31", industry: "F52", ["months_on_time": 4, "months_overdue": 1])
        r.add(.annualReport, "2025-06-15", industry: "F52", ["report_year": 2024, "on_time": 1])
        r.add(.annualReport, "2026-06-20", industry: "F52", ["report_year": 2025, "on_time": 1])
        r.add(.socialInsurance, "2026-09-30", industry: "F52", ["employees_insured": 3, "months_arrears": 0])
        r.add(.penalty, "2025-08-12", .minor, industry: "F52", ["amount_yuan": 500])
        r.add(.honor, "2024-12-01", industry: "F52", ["level": 2])
        return r
    }

    /// Example B: 之江食品有限公司, a manufacturing enterprise (C13).
    static func foodFactory() -> Records {
        var r = Records("91330106MA27C1308F")
        r.add(.registration, "2015-03-02", industry: "C13", ["registered_capital_yuan": 5_000_000])
        r.add(.license, "2023-01-10", industry: "C13")
        r.add(.license, "2024-07-01", industry: "C13")
        r.add(.taxGrade, "2026-04-30", industry: "C13", ["tax_grade": 1])
        r.add(.annualReport, "2025-06-10", industry: "C13", ["report_year": 2024, "on_time": 1, "anomaly": 0, "capital_paid_pct": 100])
        r.add(.annualReport, "2026-06-12", industry: "C13", ["report_year": 2025, "on_time": 1, "anomaly": 0, "capital_paid_pct": 100])
        r.add(.utilitiesPayment, "2026-10-31", industry: "C13", ["months_on_time": 12, "months_overdue": 0])
        r.add(.loanRepayment, "2026-09-30", industry: "C13", ["months_on_time": 24, "months_overdue": 0, "property_mortgaged": 1])
        r.add(.intellectualProperty, "2024-05-20", industry: "C13", ["patents": 4, "trademarks": 2])
        r.add(.socialInsurance, "2026-10-15", industry: "C13", ["employees_insured": 60, "months_arrears": 0])
        r.add(.honor, "2025-11-30", industry: "C13", ["level": 3])
        r.add(.registration, "2026-02-01", industry: "C13", ["registered_capital_yuan": 5_000_000, "key_change": 1])
        return r
    }

    /// Example C: example B listed as a dishonest judgment debtor on 2026-08-01.
    static func foodFactoryListed() -> Records {
        var r = foodFactory()
        r.add(.dishonestJudgmentDebtor, "2026-08-01", industry: "C13")
        return r
    }
}

/// Milliseconds of 2026-11-21 12:00 China Standard Time: the block time of the test chains.
let asOfMillis: UInt64 = UInt64(CivilCalendar.days(year: 2026, month: 11, day: 21)) * 86_400_000 + 4 * 3_600_000

/// A consortium whose genesis installs the shipped models; keys derived from names.
struct ScoringConsortium {
    let genesis: Genesis
    let keys: [String: MemberSecretKeys]

    static let roles: [(String, Set<Role>)] = [
        ("samr", [.validator, .custodian, .governmentIssuer, .scorer]),
        ("data-bureau", [.validator, .custodian, .governmentIssuer, .scorer]),
        ("bank-a", [.validator, .bank]),
        ("auditor", [.auditor]),
    ]

    /// `validators`: who of samr, data-bureau, bank-a validate (the dev ledger needs exactly one).
    init(endorsements: Int = 1, models: [String] = Models.files, validators: Set<String> = ["samr", "data-bureau", "bank-a"]) throws {
        var keys: [String: MemberSecretKeys] = [:]
        var members: [Member] = []
        for (id, roles) in Self.roles {
            let k = MemberSecretKeys(memberID: id, signing: try Ed25519PrivateKey(seed: SHA256.hash(Array("sign:\(id)".utf8))),
                                     encryption: try X25519PrivateKey(rawRepresentation: SHA256.hash(Array("enc:\(id)".utf8))))
            keys[id] = k
            var r = roles
            if !validators.contains(id) { r.remove(.validator) }
            members.append(Member(id: id, name: id, roles: r, signingKey: k.signing.publicKey, encryptionKey: k.encryption.publicKey))
        }
        genesis = try Genesis(bytes: Genesis.render(chainID: "creditledger.test/scoring", genesisTime: "2026-11-21T00:00:00Z",
                                                    members: members, scoreEndorsementsRequired: endorsements,
                                                    models: try models.map(Models.installed)))
        self.keys = keys
    }

    func member(_ id: String) -> Member { genesis.member(id)! }

    func header(_ signer: String, nonce: UInt64) -> TransactionHeader {
        TransactionHeader(chainID: genesis.chainID, signer: signer, keyID: member(signer).keyID, nonce: nonce, issuedAtMillis: asOfMillis)
    }

    /// An attestation of `body` with a sealed payload, signed by `signer`.
    func attest(_ body: AttestationBody, by signer: String, nonce: UInt64, payload: String = "{}") throws -> Submission {
        let (commitment, envelope) = try PayloadSeal.seal(Array(payload.utf8), to: genesis.custodians)
        var b = body
        b.payloadCommitment = commitment
        b.envelopeHash = envelope.hash
        return Submission(transaction: Transaction.sign(header: header(signer, nonce: nonce), body: .attestation(b), key: keys[signer]!.signing),
                          envelope: envelope)
    }

    func amend(_ amendment: AmendmentBody, by signer: String, nonce: UInt64, payload: String = "{}") throws -> Submission {
        var a = amendment
        var envelope: Envelope? = nil
        if var r = a.replacement {
            let sealed = try PayloadSeal.seal(Array(payload.utf8), to: genesis.custodians)
            r.payloadCommitment = sealed.commitment
            r.envelopeHash = sealed.envelope.hash
            a.replacement = r
            envelope = sealed.envelope
        }
        return Submission(transaction: Transaction.sign(header: header(signer, nonce: nonce), body: .amendment(a), key: keys[signer]!.signing),
                          envelope: envelope)
    }

    /// Signs a score update (with whatever endorsements it carries) as `signer`.
    func scoreTransaction(_ update: ScoreUpdateBody, by signer: String = "samr", nonce: UInt64) -> Submission {
        Submission(transaction: Transaction.sign(header: header(signer, nonce: nonce), body: .scoreUpdate(update), key: keys[signer]!.signing),
                   envelope: nil)
    }

    /// A governance transaction approved by every custodian.
    func governance(_ body: GovernanceBody, nonce: UInt64) -> Submission {
        var g = body
        g.approvals = genesis.custodians.map {
            MemberSignature(member: $0.id, keyID: $0.keyID, signature: keys[$0.id]!.signing.signature(for: g.approvalMessage(chainID: genesis.chainID)))
        }
        return Submission(transaction: Transaction.sign(header: header("samr", nonce: nonce), body: .governance(g), key: keys["samr"]!.signing),
                          envelope: nil)
    }
}

/// Writes blocks straight into a store (blocks time-stamped `asOfMillis`), validating each
/// transaction first unless told not to, as a dishonest proposer would.
final class ScoringChain {
    let consortium: ScoringConsortium
    let store: ChainStore
    let validator: TransactionValidator
    var nonce: UInt64 = 0

    init(_ consortium: ScoringConsortium, path: String) throws {
        self.consortium = consortium
        store = try ChainStore.create(path: path, genesis: consortium.genesis)
        validator = .withScoring(genesis: consortium.genesis)
    }

    func nextNonce() -> UInt64 { nonce += 1; return nonce }

    func append(_ submissions: [Submission], validate: Bool = true) throws {
        if validate {
            for s in submissions {
                try validator.checkStateless(s)
                try validator.checkStateful(s.transaction, state: store)
            }
        }
        let signers = consortium.genesis.validators.map { (member: $0, key: consortium.keys[$0.id]!.signing) }
        try store.appendBlock(submissions, timestampMillis: asOfMillis, proposer: signers[0].member.id, signers: signers)
    }

    /// Attests every record of `records` (banks attest loan repayment) in one block; returns the ids.
    @discardableResult
    func attest(_ records: Records) throws -> [Hash] {
        let subs = try records.list.map { body in
            try consortium.attest(body, by: body.category == .loanRepayment ? "bank-a" : "samr", nonce: nextNonce())
        }
        try append(subs)
        return subs.map(\.transaction.id)
    }

    func verify() throws -> ChainSummary {
        var source = StoreBlockSource(store: store)
        return try ChainVerifier(genesis: store.genesis).verify(&source)
    }
}
