import Foundation
import LedgerCore
import LedgerCrypto
import Policy
import Scoring

/// One custodian's approval of one governance proposal, made on the custodian's own machine
/// with its own key (`credit-node approve`) and handed to the submitting custodian as a small
/// JSON file. Only the signature leaves the custodian; its secret key never does.
///
/// The signature is the `MemberSignature` a governance body carries in `approvals`: it signs
/// `GovernanceBody.approvalMessage(chainID:)`, which covers the chain id, the action, the name,
/// the version and the document, not the transaction header. The other fields say what was
/// approved, so a submitter is told which one differs before anything is submitted.
public struct GovernanceApproval: Hashable, Sendable {
    public static let format = "creditledger-governance-approval/v1"

    public let chainID: String
    public let action: GovernanceBody.Action
    public let name: String
    public let version: UInt32
    /// SHA-256 of the governance document (the policy file, or the erased record ids).
    public let documentHash: Hash
    /// erase_records: the ids the document lists, in its order (informative: the document
    /// hash covers them). Empty for other actions.
    public let records: [Hash]
    public let member: String
    public let keyID: UInt32
    public let signature: [UInt8]

    public init(chainID: String, action: GovernanceBody.Action, name: String, version: UInt32, documentHash: Hash,
                records: [Hash] = [], member: String, keyID: UInt32, signature: [UInt8]) {
        self.chainID = chainID; self.action = action; self.name = name; self.version = version
        self.documentHash = documentHash; self.records = records
        self.member = member; self.keyID = keyID; self.signature = signature
    }

    /// The approval as it goes into `GovernanceBody.approvals`.
    public var memberSignature: MemberSignature { MemberSignature(member: member, keyID: keyID, signature: signature) }

    /// `name@version` for a policy, the record count for an erasure.
    public var subject: String { Self.describe(action: action, name: name, version: version, records: records) }

    static func describe(action: GovernanceBody.Action, name: String, version: UInt32, records: [Hash]) -> String {
        switch action {
        case .eraseRecords: return "erasing \(records.count) record\(records.count == 1 ? "" : "s")"
        case .installPolicy: return "policy \(name)@\(version)"
        case .installModel: return "model \(name)@\(version)"
        case .setParameter: return "parameter \(name)@\(version)"
        }
    }

    // MARK: - Approving

    /// Signs `proposal` as the custodian whose keys these are. Refuses a key whose member is
    /// not in `genesis`, is not a custodian, or whose signing key is not the one `genesis` lists.
    public static func approve(_ proposal: GovernanceBody, genesis: Genesis, keys: MemberSecretKeys) throws -> GovernanceApproval {
        let m = try genesis.member(holding: keys)
        guard m.has(.custodian) else {
            let roles = Role.allCases.filter(m.roles.contains).map(\.rawValue).joined(separator: ", ")
            throw LedgerError(.notAuthorized,
                "\(m.id) is not a custodian of chain \(genesis.chainID) (its roles: \(roles)); only custodians approve governance")
        }
        let signature = keys.signing.signature(for: proposal.approvalMessage(chainID: genesis.chainID))
        return GovernanceApproval(chainID: genesis.chainID, action: proposal.action, name: proposal.name, version: proposal.version,
                                  documentHash: proposal.documentHash, records: proposal.erasedRecords,
                                  member: m.id, keyID: m.keyID, signature: signature)
    }

    // MARK: - Checking

    /// Checks that this approval approves exactly `proposal` on the chain of `genesis`, by a
    /// custodian, with its genesis key; returns the signature to put in the body. `source`
    /// (the file name) starts every error message.
    public func check(for proposal: GovernanceBody, genesis: Genesis, source: String = "approval") throws -> MemberSignature {
        guard chainID == genesis.chainID else {
            throw LedgerError(.wrongChain, "\(source) is for chain \(chainID), but this transaction is for chain \(genesis.chainID)")
        }
        guard action == proposal.action else {
            throw LedgerError(.invalidValue, "\(source) approves \(action.name), but this transaction is \(proposal.action.name)")
        }
        let wanted = Self.describe(action: proposal.action, name: proposal.name, version: proposal.version, records: proposal.erasedRecords)
        guard name == proposal.name, version == proposal.version else {
            throw LedgerError(.invalidValue, "\(source) approves \(subject), but this transaction is for \(wanted)")
        }
        guard documentHash == proposal.documentHash else {
            if action == .eraseRecords {
                throw LedgerError(.invalidValue,
                    "\(source) approves erasing \(records.map(\.hexString).joined(separator: ", ")), but this transaction erases \(proposal.erasedRecords.map(\.hexString).joined(separator: ", ")) (document sha256 \(documentHash.hexString) ≠ \(proposal.documentHash.hexString))")
            }
            throw LedgerError(.invalidValue,
                "\(source) approves a different document for \(subject): document sha256 \(documentHash.hexString), but this transaction's document has sha256 \(proposal.documentHash.hexString)")
        }
        guard let m = genesis.member(member) else {
            throw LedgerError(.unknownSigner, "\(source) is signed by \(member), which is not a member of chain \(genesis.chainID)")
        }
        guard m.has(.custodian) else {
            throw LedgerError(.notAuthorized, "\(source) is signed by \(member), which is not a custodian; only custodians approve governance")
        }
        guard keyID == m.keyID else {
            throw LedgerError(.unknownKey,
                "\(source) is signed with key id \(Self.keyIDText(keyID)), but genesis lists key id \(Self.keyIDText(m.keyID)) for \(member)")
        }
        guard signature.count == 64, m.signingKey.isValidSignature(signature, for: proposal.approvalMessage(chainID: genesis.chainID)) else {
            throw LedgerError(.badSignature, "\(source): the signature of \(member) does not verify (the file was altered, or made for another proposal)")
        }
        return memberSignature
    }

    /// Loads and checks each approval file against `proposal`; refuses two approvals by one member.
    public static func signatures(files: [String], for proposal: GovernanceBody, genesis: Genesis) throws -> [MemberSignature] {
        var seen = Set<String>()
        return try files.map { path in
            let s = try load(path: path).check(for: proposal, genesis: genesis, source: "approval \(path)")
            guard seen.insert(s.member).inserted else {
                throw LedgerError(.invalidValue, "approval \(path) is a second approval by \(s.member)")
            }
            return s
        }
    }

    // MARK: - File

    /// The file: one JSON object, keys sorted.
    public var json: Data {
        var object: [String: Any] = [
            "format": Self.format, "chain_id": chainID, "action": action.name, "name": name, "version": Int(version),
            "document_sha256": documentHash.hexString, "member": member, "key_id": Self.keyIDText(keyID),
            "signature": signature.base64String,
        ]
        if action == .eraseRecords { object["records"] = records.map(\.hexString) }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return data + Data("\n".utf8)
    }

    public func write(to path: String) throws {
        try json.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func load(path: String) throws -> GovernanceApproval {
        // Within a limit: an approval carries the document it approves, kilobytes (found in review, 2026-12-07).
        let data: Data
        do { data = Data(try readInputFile(path, limit: 16 << 20, what: "approval file")) } catch {
            throw LedgerError(.notFound, "approval file: \(error)")
        }
        return try GovernanceApproval(json: data, source: "approval \(path)")
    }

    public init(json data: Data, source: String = "approval") throws {
        func bad(_ what: String) -> LedgerError { LedgerError(.malformed, "\(source) is not a governance approval file: \(what)") }
        if let twice = JSONDuplicateKeys.first(in: [UInt8](data)) { throw bad(twice) }
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw bad("not a JSON object") }
        guard o["format"] as? String == Self.format else { throw bad("format is not \"\(Self.format)\"") }
        // A key this format does not have (a misspelt "record", say) is named, not passed over (found in review).
        let known: Set = ["format", "chain_id", "action", "name", "version", "document_sha256", "member", "key_id", "signature", "records"]
        if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) { throw bad("unknown key \"\(unknown)\"") }
        func string(_ key: String) throws -> String {
            guard let s = o[key] as? String else { throw bad("\(key) is missing or not a string") }
            return s
        }
        guard let action = GovernanceBody.Action.allCases.first(where: { $0.name == (o["action"] as? String) }) else {
            throw bad("action must be one of \(GovernanceBody.Action.allCases.map(\.name).joined(separator: ", "))")
        }
        guard let v = o["version"] as? Int, let version = UInt32(exactly: v) else { throw bad("version is not a u32") }
        guard let hash = [UInt8](hex: try string("document_sha256")), hash.count == 32 else { throw bad("document_sha256 is not 64 hex digits") }
        guard let keyID = UInt32(try string("key_id"), radix: 16) else { throw bad("key_id is not 8 hex digits") }
        guard let signature = [UInt8](base64: try string("signature")), signature.count == 64 else {
            throw bad("signature is not 64 bytes of base64")
        }
        var records: [Hash] = []
        if action == .eraseRecords {
            guard let list = o["records"] as? [String] else { throw bad("records is missing") }
            records = try list.map { id in
                guard let h = [UInt8](hex: id), h.count == 32 else { throw bad("record id \(id) is not 64 hex digits") }
                return h
            }
            guard SHA256.hash(records.flatMap { $0 }) == hash else { throw bad("records do not match document_sha256") }
        }
        self.init(chainID: try string("chain_id"), action: action, name: try string("name"), version: version, documentHash: hash,
                  records: records, member: try string("member"), keyID: keyID, signature: signature)
    }

    /// A key id as 8 hex digits, as approval files write it.
    public static func keyIDText(_ keyID: UInt32) -> String {
        let digits = String(keyID, radix: 16)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}

extension Genesis {
    /// The member whose key file `keys` is: one of this genesis, holding the signing key it
    /// lists. Tools check it before they sign or send (another ledger's key file was sent, and
    /// a query left a `bad_signature` record for good; found by black-box testing).
    public func member(holding keys: MemberSecretKeys) throws -> Member {
        guard let m = member(keys.memberID) else {
            throw LedgerError(.unknownSigner, "the key file's member \(keys.memberID) is not a member of chain \(chainID)")
        }
        guard m.signingKey == keys.signing.publicKey else {
            throw LedgerError(.unknownKey, "the key file of \(m.id) does not hold the signing key that chain \(chainID)'s genesis lists for \(m.id) (a key file of another ledger?)")
        }
        return m
    }
}

extension QueryClient {
    /// The install_policy proposal for a policy document: name and version as the document
    /// declares them, checked against the consortium in `genesis`. `credit-node install-policy`
    /// and `credit-node approve policy` both build it here, so they approve the same body.
    public static func policyProposal(genesis: Genesis, document: [UInt8]) throws -> (proposal: GovernanceBody, policy: PolicyDocument) {
        let parsed = try PolicyDocument(bytes: document, genesis: genesis)
        // Refused here too, before any custodian approves, as validators refuse it.
        if let problem = parsed.installProblem { throw LedgerError(.invalidValue, "policy rejected: \(problem)") }
        return (GovernanceBody(action: .installPolicy, name: parsed.name, version: parsed.version, document: document), parsed)
    }

    /// The install_model proposal for a scoring model document: name and version as the
    /// document declares them, checked by the scoring engine (the check every validator makes).
    /// `credit-node install-model` and `credit-node approve model` both build it here.
    /// `installed`: the models the chain holds (name, version, kind), as far as the caller
    /// knows them: a new version of another kind than its name's latest is refused here, before
    /// approval, as validators refuse it.
    public static func modelProposal(document: [UInt8], installed: [(name: String, version: UInt32, kind: String?)] = []) throws
        -> (proposal: GovernanceBody, model: ScoringModel) {
        let parsed = try ScoringModel(document: document)
        if let problem = TransactionValidator.modelKindChange(name: parsed.name, version: parsed.version, kind: parsed.kind.rawValue,
                                                               installed: installed) {
            throw LedgerError(.invalidValue, problem)
        }
        return (GovernanceBody(action: .installModel, name: parsed.name, version: parsed.version, document: document), parsed)
    }

    /// The erase_records proposal for `records`: the ids sorted and without repeats, so the
    /// approvers and the submitter need not list them in the same order.
    public static func erasureProposal(records: [Hash]) -> GovernanceBody {
        let ids = Set(records).sorted { $0.lexicographicallyPrecedes($1) }
        return GovernanceBody(action: .eraseRecords, name: "erase", version: 1, document: ids.flatMap { $0 })
    }
}
