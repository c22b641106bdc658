import LedgerCrypto

/// Field limits of the v1 canonical encoding (docs/FORMAT.md).
public enum FieldLimits {
    public static let chainID = 64
    public static let memberID = 32
    public static let industry = 8
    public static let attributeName = 32
    public static let attributes = 16
    public static let wrappedKeys = 8
    public static let sealedKeyBytes = 32 + SealedBox.overheadByteCount
    public static let reason = 256
    public static let dimensions = 16
    public static let dimensionCode = 32
    public static let scoreInputs = 1024
    /// Record ids one erase_records transaction names.
    public static let erasedRecords = 1024
    public static let signatures = 16
    public static let governanceName = 64
    public static let governanceDocument = 98_304
    public static let ciphertext = 65_536 + XChaCha20Poly1305.tagByteCount
}

/// Domain separators: every signature and hash names what it is over.
public enum Domain {
    public static let transaction: [UInt8] = Array("CreditLedger/v1/transaction\n".utf8)
    public static let envelope: [UInt8] = Array("CreditLedger/v1/envelope\n".utf8)
    public static let payload: [UInt8] = Array("CreditLedger/v1/payload\n".utf8)
    public static let payloadAD: [UInt8] = Array("CreditLedger/v1/payload-ad\n".utf8)
    public static let scoreEndorsement: [UInt8] = Array("CreditLedger/v1/score-endorsement\n".utf8)
    public static let governanceApproval: [UInt8] = Array("CreditLedger/v1/governance-approval\n".utf8)
    /// An answer's result, salted, as its audit record holds it (AnswerReceipt.resultHash).
    public static let answerResult: [UInt8] = Array("CreditLedger/v1/answer-result\n".utf8)
    public static let block: [UInt8] = Array("CreditLedger/v1/block\n".utf8)
    /// A validator's commit of a block in one round (CommitCertificate).
    public static let commit: [UInt8] = Array("CreditLedger/v2/commit\n".utf8)
    /// The commit statement before it named the round: verified in stored certificates, never signed.
    public static let legacyCommit: [UInt8] = Array("CreditLedger/v1/commit\n".utf8)
}

public enum TransactionKind: UInt8, Sendable, CaseIterable {
    case attestation = 1
    case amendment = 2
    case scoreUpdate = 3
    case consent = 4
    case governance = 5
    case evidence = 6
    case queryRecord = 7

    public var name: String {
        switch self {
        case .attestation: return "attestation"
        case .amendment: return "amendment"
        case .scoreUpdate: return "score_update"
        case .consent: return "consent"
        case .governance: return "governance"
        case .evidence: return "evidence"
        case .queryRecord: return "query_record"
        }
    }

    /// The name after its article, for messages: "an attestation", "a consent".
    public var withArticle: String { ([.attestation, .amendment, .evidence].contains(self) ? "an " : "a ") + name }
}

/// A calendar date as YYYYMMDD, checked to exist.
public struct LedgerDate: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) throws {
        let y = Int(value / 10000), m = Int(value / 100 % 100), d = Int(value % 100)
        guard (1900...2999).contains(y) else {
            throw LedgerError(.invalidValue, "date \(value) is outside the years 1900-2999 a ledger date takes")
        }
        guard (1...12).contains(m) else {
            throw LedgerError(.invalidValue, "date \(value) is not a calendar date YYYYMMDD (month out of range)")
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
        guard (1...days).contains(d) else {
            throw LedgerError(.invalidValue, "date \(value) is not a calendar date YYYYMMDD (day out of range)")
        }
        self.value = value
    }

    /// Parses "YYYY-MM-DD".
    public init(iso: String) throws {
        let parts = iso.split(separator: "-", omittingEmptySubsequences: false)
        // ASCII digits only: UInt32("+1") is 1, so "2026-+1-+1" read as 2026-01-01 (found in review).
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }),
              let y = UInt32(parts[0]), let m = UInt32(parts[1]), let d = UInt32(parts[2]) else {
            throw LedgerError(.invalidValue, "date \"\(iso)\" is not YYYY-MM-DD")
        }
        // Named as given: "0000-01-01" read "date 101 is outside …" (found by black-box testing).
        do { try self.init(y * 10000 + m * 100 + d) } catch let e as LedgerError {
            throw LedgerError(e.code, e.reason.replacingOccurrences(of: "date \(y * 10000 + m * 100 + d) ", with: "date \(iso) ")
                .replacingOccurrences(of: "YYYYMMDD", with: "YYYY-MM-DD"))
        }
    }

    public var description: String {
        let y = value / 10000, m = value / 100 % 100, d = value % 100
        return "\(y)-\(m < 10 ? "0" : "")\(m)-\(d < 10 ? "0" : "")\(d)"
    }

    public static func < (a: LedgerDate, b: LedgerDate) -> Bool { a.value < b.value }
}

/// A clear-text integer attribute policies and scoring may read (for example `amount_yuan`).
public struct Attribute: Hashable, Sendable {
    public let name: String
    public let value: Int64
    public init(name: String, value: Int64) { self.name = name; self.value = value }
}

/// A signature by a member other than the transaction's signer (endorsement, approval).
public struct MemberSignature: Hashable, Sendable {
    public let member: String
    public let keyID: UInt32
    public let signature: [UInt8]
    public init(member: String, keyID: UInt32, signature: [UInt8]) {
        self.member = member; self.keyID = keyID; self.signature = signature
    }

    func encode(_ w: inout ByteWriter) { w.string8(member); w.u32(keyID); w.raw(signature) }

    static func decode(_ r: inout ByteReader, field: String) throws -> MemberSignature {
        MemberSignature(member: try r.string8("\(field).member", max: FieldLimits.memberID),
                        keyID: try r.u32("\(field).key_id"),
                        signature: try r.raw(64, "\(field).signature"))
    }
}

// MARK: - Bodies

/// A signed credit record about one subject. The raw payload travels beside the transaction
/// in an `Envelope`; the transaction commits to it by hash so it can be shredded later.
public struct AttestationBody: Hashable, Sendable {
    public var subject: USCC
    public var subjectKind: SubjectKind
    public var category: Category
    public var severity: Severity
    public var eventDate: LedgerDate
    /// GB/T 4754 industry code (for example "C13"), or empty.
    public var industry: String
    public var attributes: [Attribute]
    /// SHA-256(domain ‖ salt ‖ payload): binds the record's content without revealing it.
    public var payloadCommitment: Hash
    /// SHA-256(domain ‖ envelope bytes).
    public var envelopeHash: Hash

    public init(subject: USCC, subjectKind: SubjectKind, category: Category, severity: Severity = .none,
                eventDate: LedgerDate, industry: String = "", attributes: [Attribute] = [],
                payloadCommitment: Hash, envelopeHash: Hash) {
        self.subject = subject; self.subjectKind = subjectKind; self.category = category
        self.severity = severity; self.eventDate = eventDate; self.industry = industry
        self.attributes = attributes; self.payloadCommitment = payloadCommitment; self.envelopeHash = envelopeHash
    }

    func encode(_ w: inout ByteWriter) {
        w.raw(Array(subject.code.utf8))
        w.u8(subjectKind.rawValue)
        w.u8(category.rawValue)
        w.u8(severity.rawValue)
        w.u32(eventDate.value)
        w.string8(industry)
        w.u8(UInt8(attributes.count))
        for a in attributes { w.string8(a.name); w.i64(a.value) }
        w.raw(payloadCommitment)
        w.raw(envelopeHash)
    }

    static func decode(_ r: inout ByteReader) throws -> AttestationBody {
        let subjectBytes = try r.raw(18, "subject")
        guard let text = String(validating: subjectBytes, as: UTF8.self) else {
            throw LedgerError(.invalidUSCC, "subject is not 18 ASCII characters")
        }
        let subject = try USCC(text)
        let kindRaw = try r.u8("subject_kind")
        guard let kind = SubjectKind(rawValue: kindRaw) else {
            throw LedgerError(.invalidValue, "subject_kind \(kindRaw) is unknown (1 individual business, 2 enterprise)")
        }
        let categoryRaw = try r.u8("category")
        guard let category = Category(rawValue: categoryRaw) else {
            throw LedgerError(.unknownCategory, "category \(categoryRaw) is unknown (known: 1-\(Category.allCases.count))")
        }
        let severityRaw = try r.u8("severity")
        guard let severity = Severity(rawValue: severityRaw) else {
            throw LedgerError(.invalidValue, "severity \(severityRaw) is unknown (0-3)")
        }
        let date = try LedgerDate(try r.u32("event_date"))
        let industry = try r.string8("industry", max: FieldLimits.industry)
        let count = Int(try r.u8("attributes.count"))
        guard count <= FieldLimits.attributes else {
            throw LedgerError(.fieldTooLarge, "attestation has \(count) attributes, limit \(FieldLimits.attributes)")
        }
        var attributes: [Attribute] = []
        for i in 0..<count {
            attributes.append(Attribute(name: try r.string8("attributes[\(i)].name", max: FieldLimits.attributeName),
                                        value: try r.i64("attributes[\(i)].value")))
        }
        let body = AttestationBody(subject: subject, subjectKind: kind, category: category, severity: severity,
                                   eventDate: date, industry: industry, attributes: attributes,
                                   payloadCommitment: try r.raw(32, "payload_commitment"),
                                   envelopeHash: try r.raw(32, "envelope_hash"))
        try body.check()
        return body
    }

    /// Rules that need no ledger state.
    public func check() throws {
        guard subject.subjectKind == subjectKind else {
            let expected = subjectKind == .enterprise ? "91" : "92"
            throw LedgerError(.invalidValue,
                "subject \(subject) does not denote \(subjectKind.name.first.map { "aeiou".contains($0) } == true ? "an" : "a") \(subjectKind.name): its code must begin \"\(expected)\"")
        }
        if !category.hasSeverity && severity != .none {
            throw LedgerError(.invalidValue, "category \(category.name) carries no severity, got \(severity.name)")
        }
        if category.hasSeverity && severity == .none {
            throw LedgerError(.invalidValue, "category \(category.name) needs a severity (minor, general or serious)")
        }
        guard industry.utf8.count <= FieldLimits.industry,
              industry.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) }) else {
            throw LedgerError(.invalidValue, "industry \"\(industry)\" must be a GB/T 4754 code (A-Z, 0-9, at most 8)")
        }
        guard attributes.count <= FieldLimits.attributes else {
            throw LedgerError(.fieldTooLarge, "attestation has \(attributes.count) attributes, limit \(FieldLimits.attributes)")
        }
        var names = Set<String>()
        for a in attributes {
            guard Genesis.isValidName(a.name, max: FieldLimits.attributeName) else {
                throw LedgerError(.invalidValue, "attribute name \"\(a.name)\" must be 1-32 characters of a-z 0-9 _ . -")
            }
            guard names.insert(a.name).inserted else {
                throw LedgerError(.invalidValue, "attribute \"\(a.name)\" appears twice")
            }
        }
    }
}

/// A correction or revocation of an earlier attestation. History is never rewritten.
public struct AmendmentBody: Hashable, Sendable {
    public enum Action: UInt8, Sendable { case correction = 1, revocation = 2 }
    public var action: Action
    public var target: Hash
    public var reason: String
    /// The corrected record (corrections only).
    public var replacement: AttestationBody?

    public init(action: Action, target: Hash, reason: String, replacement: AttestationBody?) {
        self.action = action; self.target = target; self.reason = reason; self.replacement = replacement
    }

    /// The longest reason code validators take.
    public static let reasonCodeBytes = 64

    /// Whether `reason` is a code validators take for a new amendment (`data_error`,
    /// `court_overturned`, `credit_repair`): a name, never free text, since it is in the clear;
    /// and no digits, so it cannot carry an ID, licence or phone number (they were taken until
    /// 2026-12-07; found by black-box testing).
    public static func isReasonCode(_ reason: String) -> Bool {
        Genesis.isValidName(reason, max: reasonCodeBytes) && !reason.utf8.contains { (0x30...0x39).contains($0) }
    }

    /// What `isReasonCode` takes, in words, for messages.
    public static let reasonCodeRule = "1-\(reasonCodeBytes) of a-z and, after the first, '_', '-', '.'; no digits, so no ID, licence or phone number"

    func encode(_ w: inout ByteWriter) {
        w.u8(action.rawValue)
        w.raw(target)
        w.string16(reason)
        if let replacement { w.u8(1); replacement.encode(&w) } else { w.u8(0) }
    }

    static func decode(_ r: inout ByteReader) throws -> AmendmentBody {
        let raw = try r.u8("action")
        guard let action = Action(rawValue: raw) else {
            throw LedgerError(.invalidValue, "amendment action \(raw) is unknown (1 correction, 2 revocation)")
        }
        let target = try r.raw(32, "target")
        let reason = try r.string16("reason", max: FieldLimits.reason)
        let flag = try r.u8("has_replacement")
        guard flag <= 1 else { throw LedgerError(.malformed, "has_replacement must be 0 or 1") }
        let replacement = flag == 1 ? try AttestationBody.decode(&r) : nil
        switch (action, replacement) {
        case (.correction, nil): throw LedgerError(.invalidValue, "a correction must carry the corrected record")
        case (.revocation, .some): throw LedgerError(.invalidValue, "a revocation carries no replacement record")
        default: break
        }
        return AmendmentBody(action: action, target: target, reason: reason, replacement: replacement)
    }
}

/// Letter grades, best first.
public enum Grade: UInt8, Sendable, CaseIterable, Comparable {
    case s = 0, aPlus = 1, a = 2, b = 3, c = 4, d = 5
    public var name: String { ["S", "A+", "A", "B", "C", "D"][Int(rawValue)] }
    public init?(name: String) {
        guard let g = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = g
    }
    public static func < (a: Grade, b: Grade) -> Bool { a.rawValue < b.rawValue }
}

/// A subject's score under a model, with its lineage and endorsements.
public struct ScoreUpdateBody: Hashable, Sendable {
    public struct Dimension: Hashable, Sendable {
        public let code: String
        public let points: Int32
        public init(code: String, points: Int32) { self.code = code; self.points = points }
    }
    public var subject: USCC
    public var modelHash: Hash
    public var points: Int32
    public var grade: Grade
    public var dimensions: [Dimension]
    /// Ids of the attestations the score was computed from.
    public var inputs: [Hash]
    /// The log size at which the inputs were read.
    public var asOfLogSize: UInt64
    public var endorsements: [MemberSignature]

    public init(subject: USCC, modelHash: Hash, points: Int32, grade: Grade, dimensions: [Dimension],
                inputs: [Hash], asOfLogSize: UInt64, endorsements: [MemberSignature] = []) {
        self.subject = subject; self.modelHash = modelHash; self.points = points; self.grade = grade
        self.dimensions = dimensions; self.inputs = inputs; self.asOfLogSize = asOfLogSize; self.endorsements = endorsements
    }

    func encodeCore(_ w: inout ByteWriter) {
        w.raw(Array(subject.code.utf8))
        w.raw(modelHash)
        w.i32(points)
        w.u8(grade.rawValue)
        w.u8(UInt8(dimensions.count))
        for d in dimensions { w.string8(d.code); w.i32(d.points) }
        w.u16(UInt16(inputs.count))
        for i in inputs { w.raw(i) }
        w.u64(asOfLogSize)
    }

    func encode(_ w: inout ByteWriter) {
        encodeCore(&w)
        w.u8(UInt8(endorsements.count))
        for e in endorsements { e.encode(&w) }
    }

    /// What an endorsing scorer signs.
    public func endorsementMessage(chainID: String) -> [UInt8] {
        var w = ByteWriter()
        w.raw(Domain.scoreEndorsement)
        w.string8(chainID)
        encodeCore(&w)
        return w.bytes
    }

    static func decode(_ r: inout ByteReader) throws -> ScoreUpdateBody {
        let subjectBytes = try r.raw(18, "subject")
        guard let text = String(validating: subjectBytes, as: UTF8.self) else {
            throw LedgerError(.invalidUSCC, "subject is not 18 ASCII characters")
        }
        let subject = try USCC(text)
        let model = try r.raw(32, "model_hash")
        let points = try r.i32("points")
        let g = try r.u8("grade")
        guard let grade = Grade(rawValue: g) else { throw LedgerError(.invalidValue, "grade \(g) is unknown (0 S … 5 D)") }
        let dc = Int(try r.u8("dimensions.count"))
        guard dc <= FieldLimits.dimensions else {
            throw LedgerError(.fieldTooLarge, "score update has \(dc) dimensions, limit \(FieldLimits.dimensions)")
        }
        var dimensions: [Dimension] = []
        for i in 0..<dc {
            dimensions.append(Dimension(code: try r.string8("dimensions[\(i)].code", max: FieldLimits.dimensionCode),
                                        points: try r.i32("dimensions[\(i)].points")))
        }
        let ic = Int(try r.u16("inputs.count"))
        guard ic <= FieldLimits.scoreInputs else {
            throw LedgerError(.fieldTooLarge, "score update has \(ic) inputs, limit \(FieldLimits.scoreInputs)")
        }
        var inputs: [Hash] = []
        for i in 0..<ic { inputs.append(try r.raw(32, "inputs[\(i)]")) }
        let asOf = try r.u64("as_of_log_size")
        let ec = Int(try r.u8("endorsements.count"))
        guard ec <= FieldLimits.signatures else {
            throw LedgerError(.fieldTooLarge, "score update has \(ec) endorsements, limit \(FieldLimits.signatures)")
        }
        var endorsements: [MemberSignature] = []
        for i in 0..<ec { endorsements.append(try MemberSignature.decode(&r, field: "endorsements[\(i)]")) }
        return ScoreUpdateBody(subject: subject, modelHash: model, points: points, grade: grade, dimensions: dimensions,
                               inputs: inputs, asOfLogSize: asOf, endorsements: endorsements)
    }
}

/// A subject's authorisation of a bank for a purpose until an expiry, or its revocation.
public struct ConsentBody: Hashable, Sendable {
    public enum Action: UInt8, Sendable { case grant = 1, revoke = 2 }
    public enum Purpose: UInt8, Sendable, CaseIterable {
        case loanApplication = 1, postLoanMonitoring = 2
        public var name: String { self == .loanApplication ? "loan_application" : "post_loan_monitoring" }
        public init?(name: String) {
            guard let p = Self.allCases.first(where: { $0.name == name }) else { return nil }
            self = p
        }
    }
    public var action: Action
    public var subject: USCC
    public var grantee: String
    public var purpose: Purpose
    /// Unix time in seconds after which the consent no longer holds.
    public var expiresAt: UInt64
    /// `expiresAt` in milliseconds, saturating: a time too far to count in milliseconds is never
    /// reached (it used to wrap around, and such a consent counted as long expired).
    public var expiresAtMillis: UInt64 {
        let (millis, overflow) = expiresAt.multipliedReportingOverflow(by: 1000)
        return overflow ? .max : millis
    }
    /// The longest a grant may run: ten years (3,660 days, so a `credit-node consent --days
    /// 3650` signed on a clock a few days off still fits) after its transaction's `issued_at`.
    public static let maxTermSeconds: UInt64 = 3_660 * 86_400

    /// A commitment to the signed consent form the submitter keeps (`ConsentEvidence`; the
    /// form's plain SHA-256 before 2026-12-07).
    public var evidence: Hash
    /// For a revocation, the id of the grant it ends; zero for a grant.
    public var target: Hash

    public init(action: Action, subject: USCC, grantee: String, purpose: Purpose, expiresAt: UInt64,
                evidence: Hash, target: Hash = Hashes.zero) {
        self.action = action; self.subject = subject; self.grantee = grantee; self.purpose = purpose
        self.expiresAt = expiresAt; self.evidence = evidence; self.target = target
    }

    func encode(_ w: inout ByteWriter) {
        w.u8(action.rawValue)
        w.raw(Array(subject.code.utf8))
        w.string8(grantee)
        w.u8(purpose.rawValue)
        w.u64(expiresAt)
        w.raw(evidence)
        w.raw(target)
    }

    static func decode(_ r: inout ByteReader) throws -> ConsentBody {
        let a = try r.u8("action")
        guard let action = Action(rawValue: a) else { throw LedgerError(.invalidValue, "consent action \(a) is unknown (1 grant, 2 revoke)") }
        let subjectBytes = try r.raw(18, "subject")
        guard let text = String(validating: subjectBytes, as: UTF8.self) else {
            throw LedgerError(.invalidUSCC, "subject is not 18 ASCII characters")
        }
        let subject = try USCC(text)
        let grantee = try r.string8("grantee", max: FieldLimits.memberID)
        let p = try r.u8("purpose")
        guard let purpose = Purpose(rawValue: p) else {
            throw LedgerError(.invalidValue, "consent purpose \(p) is unknown (1 loan application, 2 post-loan monitoring)")
        }
        let body = ConsentBody(action: action, subject: subject, grantee: grantee, purpose: purpose,
                               expiresAt: try r.u64("expires_at"), evidence: try r.raw(32, "evidence"),
                               target: try r.raw(32, "target"))
        if action == .grant && body.target != Hashes.zero {
            throw LedgerError(.invalidValue, "a consent grant must have a zero target")
        }
        if action == .revoke && body.target == Hashes.zero {
            throw LedgerError(.invalidValue, "a consent revocation names the grant it ends")
        }
        return body
    }
}

/// A change to policies, scoring models or parameters, approved by every custodian.
public struct GovernanceBody: Hashable, Sendable {
    public enum Action: UInt8, Sendable, CaseIterable {
        case installPolicy = 1, installModel = 2, setParameter = 3
        /// Crypto-shredding: every node deletes the payload envelopes (and with them the wrapped
        /// keys) of the records whose ids the document lists, 32 bytes each.
        case eraseRecords = 4
        public var name: String { ["install_policy", "install_model", "set_parameter", "erase_records"][Int(rawValue) - 1] }
    }

    /// The record ids an erase_records action names.
    public var erasedRecords: [Hash] {
        guard action == .eraseRecords else { return [] }
        return stride(from: 0, to: document.count - document.count % 32, by: 32).map { Array(document[$0..<($0 + 32)]) }
    }
    public var action: Action
    public var name: String
    public var version: UInt32
    public var document: [UInt8]
    public var approvals: [MemberSignature]

    public init(action: Action, name: String, version: UInt32, document: [UInt8], approvals: [MemberSignature] = []) {
        self.action = action; self.name = name; self.version = version; self.document = document; self.approvals = approvals
    }

    func encodeProposal(_ w: inout ByteWriter) {
        w.u8(action.rawValue)
        w.string8(name)
        w.u32(version)
        w.bytes32(document)
    }

    func encode(_ w: inout ByteWriter) {
        encodeProposal(&w)
        w.u8(UInt8(approvals.count))
        for a in approvals { a.encode(&w) }
    }

    /// What an approving custodian signs.
    public func approvalMessage(chainID: String) -> [UInt8] {
        var w = ByteWriter()
        w.raw(Domain.governanceApproval)
        w.string8(chainID)
        encodeProposal(&w)
        return w.bytes
    }

    public var documentHash: Hash { SHA256.hash(document) }

    static func decode(_ r: inout ByteReader) throws -> GovernanceBody {
        let a = try r.u8("action")
        guard let action = Action(rawValue: a) else { throw LedgerError(.invalidValue, "governance action \(a) is unknown (1-4)") }
        let name = try r.string8("name", max: FieldLimits.governanceName)
        guard Genesis.isValidIdentifier(name, max: FieldLimits.governanceName) else {
            throw LedgerError(.invalidValue, "governance name \"\(name)\" must be 1-64 characters of a-z 0-9 . - / _")
        }
        let version = try r.u32("version")
        let document = try r.bytes32("document", max: FieldLimits.governanceDocument)
        let count = Int(try r.u8("approvals.count"))
        guard count <= FieldLimits.signatures else {
            throw LedgerError(.fieldTooLarge, "governance has \(count) approvals, limit \(FieldLimits.signatures)")
        }
        var approvals: [MemberSignature] = []
        for i in 0..<count { approvals.append(try MemberSignature.decode(&r, field: "approvals[\(i)]")) }
        return GovernanceBody(action: action, name: name, version: version, document: document, approvals: approvals)
    }
}

public enum TransactionBody: Hashable, Sendable {
    case attestation(AttestationBody)
    case amendment(AmendmentBody)
    case scoreUpdate(ScoreUpdateBody)
    case consent(ConsentBody)
    case governance(GovernanceBody)
    case evidence(EvidenceBody)
    case queryRecord(QueryRecordBody)

    public var kind: TransactionKind {
        switch self {
        case .attestation: return .attestation
        case .amendment: return .amendment
        case .scoreUpdate: return .scoreUpdate
        case .consent: return .consent
        case .governance: return .governance
        case .evidence: return .evidence
        case .queryRecord: return .queryRecord
        }
    }

    /// The record whose raw payload travels in an envelope: an attestation, or a correction's
    /// replacement. Every other transaction carries no envelope.
    public var envelopedRecord: AttestationBody? {
        switch self {
        case .attestation(let a): return a
        case .amendment(let a): return a.replacement
        default: return nil
        }
    }

    /// The subject whose credit history this transaction belongs to, if any. A query record is
    /// about a subject but is not part of its history (it has its own index).
    public var subject: USCC? {
        switch self {
        case .attestation(let a): return a.subject
        case .amendment(let a): return a.replacement?.subject
        case .scoreUpdate(let s): return s.subject
        case .consent(let c): return c.subject
        case .governance, .evidence, .queryRecord: return nil
        }
    }

    func encode(_ w: inout ByteWriter) {
        switch self {
        case .attestation(let b): b.encode(&w)
        case .amendment(let b): b.encode(&w)
        case .scoreUpdate(let b): b.encode(&w)
        case .consent(let b): b.encode(&w)
        case .governance(let b): b.encode(&w)
        case .evidence(let b): b.encode(&w)
        case .queryRecord(let b): b.encode(&w)
        }
    }
}

/// The fields every transaction carries besides its body.
public struct TransactionHeader: Hashable, Sendable {
    public var chainID: String
    public var signer: String
    /// C2SP key id of the signer's key (first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)).
    public var keyID: UInt32
    /// Replay guard: a signer never uses a nonce twice.
    public var nonce: UInt64
    /// The signer's clock when it built the transaction (milliseconds since 1970); informative.
    public var issuedAtMillis: UInt64

    public init(chainID: String, signer: String, keyID: UInt32, nonce: UInt64, issuedAtMillis: UInt64) {
        self.chainID = chainID; self.signer = signer; self.keyID = keyID; self.nonce = nonce; self.issuedAtMillis = issuedAtMillis
    }
}

/// A signed transaction in canonical form. `encoded` is the log entry; `id` its RFC 9162 leaf hash.
public struct Transaction: Hashable, Sendable {
    public static let version: UInt8 = 1
    public let header: TransactionHeader
    public let body: TransactionBody
    public let signature: [UInt8]
    /// The canonical bytes: unsigned part ‖ signature.
    public let encoded: [UInt8]
    /// SHA-256(0x00 ‖ encoded): the RFC 9162 leaf hash of this entry, used as the transaction id.
    public let id: Hash

    public var kind: TransactionKind { body.kind }

    static func unsignedBytes(header: TransactionHeader, body: TransactionBody) -> [UInt8] {
        var w = ByteWriter(capacity: 512)
        w.u8(version)
        w.u8(body.kind.rawValue)
        w.string8(header.chainID)
        w.string8(header.signer)
        w.u32(header.keyID)
        w.u64(header.nonce)
        w.u64(header.issuedAtMillis)
        var bw = ByteWriter(capacity: 256)
        body.encode(&bw)
        w.bytes32(bw.bytes)
        return w.bytes
    }

    /// The bytes the signer's Ed25519 signature covers: domain ‖ unsigned transaction.
    public var signingBytes: [UInt8] { Domain.transaction + Array(encoded.dropLast(64)) }

    /// Builds and signs a transaction.
    public static func sign(header: TransactionHeader, body: TransactionBody, key: Ed25519PrivateKey) -> Transaction {
        let unsigned = unsignedBytes(header: header, body: body)
        let signature = key.signature(for: Domain.transaction + unsigned)
        return Transaction(header: header, body: body, signature: signature, encoded: unsigned + signature)
    }

    /// A transaction's id from its canonical bytes: the RFC 9162 leaf hash, SHA-256(0x00 ‖ bytes).
    public static func id(ofEncoded encoded: [UInt8]) -> Hash { SHA256.hash(prefix: 0x00, encoded) }

    /// What this transaction claims that no other transaction of the same block may claim,
    /// beyond its id and nonce: a query record's request nonce (one record per request), an
    /// install's name and version and its document (one install of each), and a record's payload
    /// commitment (one record per sealed payload). Each is checked
    /// against committed state by the stateful rules, which cannot see the rest of the block.
    public var blockExclusiveClaims: [String] {
        switch body {
        case .queryRecord(let q):
            return q.spentRequestNonce.map { ["request nonce \($0)"] } ?? []
        case .governance(let g) where g.action == .installModel || g.action == .installPolicy:
            let kind = g.action == .installModel ? "model" : "policy"
            return ["\(kind) \(g.name) version \(g.version)", "\(kind) document \(g.documentHash.hexString.prefix(16))…"]
        case .attestation, .amendment:
            return body.envelopedRecord.map { ["payload commitment \($0.payloadCommitment.hexString)"] } ?? []
        default:
            return []
        }
    }

    /// Every claim this transaction makes on its block: the exclusive ones above, and the
    /// records a correction amends or an erasure erases. Corrections of one record may share a
    /// block, and so may erasures of it, but not a correction and an erasure: an erasure must
    /// name every committed correction of the records it erases (FORMAT.md §4.5), and one in the
    /// same block is not committed when the erasure is checked, so it would keep its own copy of
    /// the erased payload. A revocation takes the record it revokes alone: the revoked-record rule
    /// reads committed state only, so a second revocation of the record, or a correction of it, in
    /// the same block was committed though it changed nothing (found by black-box testing; rule
    /// added 2026-12-08, `BlockClaims(certified:)` leaves it out for earlier certified blocks).
    public var blockClaims: [BlockClaim] {
        var claims = blockExclusiveClaims.map { BlockClaim(name: $0, side: .exclusive) }
        switch body {
        case .amendment(let a) where a.action == .revocation:
            claims.append(BlockClaim(name: Self.correctionClaim(a.target), side: .revokes))
        case .amendment(let a) where a.action == .correction:
            claims.append(BlockClaim(name: Self.correctionClaim(a.target), side: .corrects))
        case .governance(let g) where g.action == .eraseRecords:
            claims += g.erasedRecords.map { BlockClaim(name: Self.correctionClaim($0), side: .erases) }
        default:
            break
        }
        return claims
    }

    private static func correctionClaim(_ record: Hash) -> String { "versions of record \(record.hexString)" }

    private init(header: TransactionHeader, body: TransactionBody, signature: [UInt8], encoded: [UInt8]) {
        self.header = header
        self.body = body
        self.signature = signature
        self.encoded = encoded
        self.id = Self.id(ofEncoded: encoded)
    }

    /// Decodes canonical bytes, rejecting anything that is not exactly canonical or over a limit.
    public static func decode(_ bytes: [UInt8], maxBytes: Int = Limits().maxTransactionBytes) throws -> Transaction {
        guard bytes.count <= maxBytes else {
            throw LedgerError(.transactionTooLarge, "transaction is \(bytes.count) bytes, limit \(maxBytes)")
        }
        var r = ByteReader(bytes, context: "transaction")
        let v = try r.u8("version")
        guard v == version else {
            throw LedgerError(.unsupportedVersion, "transaction encoding version \(v) is not supported (this node reads version \(version))")
        }
        let k = try r.u8("kind")
        guard let kind = TransactionKind(rawValue: k) else {
            throw LedgerError(.unknownKind, "transaction kind \(k) is unknown (known: 1-\(TransactionKind.allCases.count))")
        }
        let header = TransactionHeader(
            chainID: try r.string8("chain_id", max: FieldLimits.chainID),
            signer: try r.string8("signer", max: FieldLimits.memberID),
            keyID: try r.u32("key_id"),
            nonce: try r.u64("nonce"),
            issuedAtMillis: try r.u64("issued_at"))
        let bodyBytes = try r.bytes32("body", max: maxBytes)
        let signature = try r.raw(64, "signature")
        try r.expectEnd()
        var br = ByteReader(bodyBytes, context: "\(kind.name) body")
        let body: TransactionBody
        switch kind {
        case .attestation: body = .attestation(try AttestationBody.decode(&br))
        case .amendment: body = .amendment(try AmendmentBody.decode(&br))
        case .scoreUpdate: body = .scoreUpdate(try ScoreUpdateBody.decode(&br))
        case .consent: body = .consent(try ConsentBody.decode(&br))
        case .governance: body = .governance(try GovernanceBody.decode(&br))
        case .evidence: body = .evidence(try EvidenceBody.decode(&br))
        case .queryRecord: body = .queryRecord(try QueryRecordBody.decode(&br))
        }
        try br.expectEnd()
        let tx = Transaction(header: header, body: body, signature: signature, encoded: bytes)
        // Canonical form: re-encoding must give the same bytes, so one transaction has one id.
        guard unsignedBytes(header: header, body: body) == Array(bytes.dropLast(64)) else {
            throw LedgerError(.malformed, "transaction is not in canonical form")
        }
        return tx
    }
}

/// One claim a transaction makes on its block (`Transaction.blockClaims`).
public struct BlockClaim: Hashable, Sendable {
    public enum Side: Hashable, Sendable {
        /// No other transaction of the block may claim the name.
        case exclusive
        /// Corrections of the named record: they conflict with erasures of it only.
        case corrects
        /// Erasures of the named record: they conflict with corrections of it only.
        case erases
        /// A revocation of the named record: it conflicts with every other claim of it.
        case revokes
    }
    public let name: String
    public let side: Side
}

/// The claims taken by the transactions of one block (or by a node's pending ones): two claims
/// of one name conflict when either is exclusive or a revocation, or they are on different sides.
public struct BlockClaims: Sendable {
    private var taken: [String: [BlockClaim.Side: Int]] = [:]
    /// Judge a certified block by the rules of its time: revocations claimed nothing before 2026-12-08.
    private let certified: Bool

    public init(certified: Bool = false) { self.certified = certified }

    /// `record`: for an amendment, the original record of the version it targets
    /// (`TransactionValidator.amendedRecord`): a revocation of any version ends the whole record,
    /// so it claims the record alone against every other amendment of any of its versions.
    private func claims(of tx: Transaction, record: Hash?) -> [BlockClaim] {
        if certified { return tx.blockClaims.filter { $0.side != .revokes } }
        guard let record, case .amendment(let a) = tx.body else { return tx.blockClaims }
        return tx.blockClaims + [BlockClaim(name: "record \(record.hexString)", side: a.action == .revocation ? .revokes : .corrects)]
    }

    /// A claim of `tx` that one taken already rules out, if any.
    public func conflict(_ tx: Transaction, record: Hash? = nil) -> String? {
        for c in claims(of: tx, record: record) {
            guard let sides = taken[c.name] else { continue }
            if c.side == .exclusive || c.side == .revokes || sides.keys.contains(where: { $0 != c.side || $0 == .revokes }) { return c.name }
        }
        return nil
    }

    /// Takes the claims of `tx`, which `conflict` found none for.
    public mutating func take(_ tx: Transaction, record: Hash? = nil) {
        for c in claims(of: tx, record: record) { taken[c.name, default: [:]][c.side, default: 0] += 1 }
    }

    /// Gives back the claims of `tx`, once taken (with the same `record`).
    public mutating func release(_ tx: Transaction, record: Hash? = nil) {
        for c in claims(of: tx, record: record) {
            guard let n = taken[c.name]?[c.side] else { continue }
            taken[c.name]![c.side] = n > 1 ? n - 1 : nil
            if taken[c.name]!.isEmpty { taken[c.name] = nil }
        }
    }
}
