import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore

/// A five-member test consortium with keys derived from names, so runs are reproducible.
struct TestConsortium {
    let genesis: Genesis
    let keys: [String: MemberSecretKeys]

    static let memberRoles: [(String, Set<Role>)] = [
        ("samr", [.validator, .custodian, .governmentIssuer, .scorer]),
        ("data-bureau", [.validator, .custodian, .governmentIssuer, .scorer]),
        ("bank-a", [.validator, .bank]),
        ("bank-b", [.validator, .bank]),
        ("auditor", [.auditor]),
    ]

    init(chainID: String = "creditledger.test/county", validators: Set<String>? = nil, endorsements: Int = 0, limits: Limits = Limits()) throws {
        var keys: [String: MemberSecretKeys] = [:]
        var members: [Member] = []
        for (id, roles) in Self.memberRoles {
            let k = MemberSecretKeys(memberID: id,
                                     signing: try Ed25519PrivateKey(seed: SHA256.hash(Array("sign:\(id)".utf8))),
                                     encryption: try X25519PrivateKey(rawRepresentation: SHA256.hash(Array("enc:\(id)".utf8))))
            keys[id] = k
            var r = roles
            if let validators, !validators.contains(id) { r.remove(.validator) }
            members.append(Member(id: id, name: id, roles: r, signingKey: k.signing.publicKey, encryptionKey: k.encryption.publicKey))
        }
        genesis = try Genesis(bytes: try Genesis.render(chainID: chainID, genesisTime: "2026-11-21T00:00:00Z", members: members,
                                                        limits: limits, scoreEndorsementsRequired: endorsements))
        self.keys = keys
    }

    func member(_ id: String) -> Member { genesis.member(id)! }

    func header(_ signer: String, nonce: UInt64, chainID: String? = nil) -> TransactionHeader {
        TransactionHeader(chainID: chainID ?? genesis.chainID, signer: signer, keyID: member(signer).keyID, nonce: nonce,
                          issuedAtMillis: 1_795_000_000_000)
    }

    func attestation(by signer: String = "samr", subject: USCC = try! USCC("91350100M000100Y43"), category: Category = .license,
                     severity: Severity = .none, nonce: UInt64, payload: String = "licence no. 330106-2026-0001",
                     chainID: String? = nil, industry: String = "C13") throws -> Submission {
        let (commitment, envelope) = try PayloadSeal.seal(Array(payload.utf8), to: genesis.custodians)
        let body = AttestationBody(subject: subject, subjectKind: subject.subjectKind!, category: category, severity: severity,
                                   eventDate: try LedgerDate(20260314), industry: industry,
                                   attributes: [Attribute(name: "amount_yuan", value: 5000)],
                                   payloadCommitment: commitment, envelopeHash: envelope.hash)
        let tx = Transaction.sign(header: header(signer, nonce: nonce, chainID: chainID), body: .attestation(body), key: keys[signer]!.signing)
        return Submission(transaction: tx, envelope: envelope)
    }

    /// A correction of `target` by its issuer, with a payload sealed anew.
    func correction(of target: Submission, nonce: UInt64, payload: String) throws -> Submission {
        let fresh = try attestation(by: target.transaction.header.signer, nonce: nonce, payload: payload)
        guard case .attestation(let replacement) = fresh.transaction.body else { preconditionFailure("not an attestation") }
        let body = AmendmentBody(action: .correction, target: target.transaction.id, reason: "corrected", replacement: replacement)
        let tx = Transaction.sign(header: header(target.transaction.header.signer, nonce: nonce), body: .amendment(body),
                                  key: keys[target.transaction.header.signer]!.signing)
        return Submission(transaction: tx, envelope: fresh.envelope)
    }

    /// An erase_records transaction naming `records`, approved by both custodians.
    func erasure(of records: [Hash], nonce: UInt64) -> Submission {
        var body = GovernanceBody(action: .eraseRecords, name: "erase", version: 1, document: records.flatMap { $0 })
        let message = body.approvalMessage(chainID: genesis.chainID)
        body.approvals = ["samr", "data-bureau"].map { MemberSignature(member: $0, keyID: member($0).keyID, signature: keys[$0]!.signing.signature(for: message)) }
        return Submission(transaction: Transaction.sign(header: header("samr", nonce: nonce), body: .governance(body), key: keys["samr"]!.signing),
                          envelope: nil)
    }
}


/// Writes blocks straight into a store, signed by the given validators: lets tests build
/// honest chains fast, and dishonest ones that only a full verifier can catch.
struct ChainBuilder {
    let consortium: TestConsortium
    let store: ChainStore
    var signers: [String]

    init(consortium: TestConsortium, path: String, signers: [String]) throws {
        self.consortium = consortium
        self.store = try ChainStore.create(path: path, genesis: consortium.genesis)
        self.signers = signers
    }

    func append(_ submissions: [Submission], checkpointSigners: [String]? = nil) throws {
        let keyed = { (ids: [String]) in ids.map { (member: self.consortium.member($0), key: self.consortium.keys[$0]!.signing) } }
        try store.appendBlock(submissions, timestampMillis: 1_000 + store.head.height, proposer: signers[0],
                              signers: keyed(signers), checkpointSigners: checkpointSigners.map(keyed))
    }

    /// A consent grant: a cheap, envelope-free transaction for bulk chains.
    func consent(nonce: UInt64, by bank: String = "bank-a") throws -> Submission {
        let body = ConsentBody(action: .grant, subject: try USCC("91350100M000100Y43"), grantee: bank, purpose: .loanApplication,
                               expiresAt: 1_800_000_000, evidence: SHA256.hash(Array("form \(nonce)".utf8)))
        return Submission(transaction: Transaction.sign(header: consortium.header(bank, nonce: nonce), body: .consent(body),
                                                        key: consortium.keys[bank]!.signing), envelope: nil)
    }
}

/// Edits a closed store behind the ledger's back, as a disk fault or an attacker would.
extension Database {
    static func editing(_ path: String, _ body: (Database) throws -> Void) throws {
        try body(try Database(path: path, columnFamilies: ChainStore.columnFamilies))
    }

    static func key(_ v: UInt64) -> [UInt8] { var w = ByteWriter(); w.u64(v); return w.bytes }

    func rewrite(_ family: String, _ key: [UInt8], _ change: (inout [UInt8]) throws -> Void) throws {
        guard var value = try get(family, key) else { throw LedgerError(.notFound, "no \(family) record to rewrite") }
        try change(&value)
        let batch = WriteBatch(for: self)
        try batch.put(family, key, value)
        try write(batch)
    }

    func remove(_ family: String, _ key: [UInt8]) throws {
        let batch = WriteBatch(for: self)
        try batch.delete(family, key)
        try write(batch)
    }
}
