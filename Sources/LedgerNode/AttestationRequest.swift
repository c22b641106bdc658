import Foundation
import LedgerCore
import LedgerCrypto

/// The JSON a person writes to submit an attestation (`credit-node submit --file`).
///
/// ```json
/// {"subject": "91330106MA27XKT2XT", "subject_kind": "enterprise", "category": "penalty",
///  "severity": "general", "event_date": "2026-03-14", "industry": "C13",
///  "attributes": {"amount_yuan": 5000}, "payload": {"decision_no": "杭西市监罚〔2026〕12号"}}
/// ```
public struct AttestationRequest: Decodable, Sendable {
    public var subject: String
    public var subject_kind: String?
    public var category: String
    public var severity: String?
    public var event_date: String
    public var industry: String?
    public var attributes: [String: Int64]?
    public var payload: JSONValue

    public init(subject: String, subject_kind: String?, category: String, severity: String?, event_date: String,
                industry: String?, attributes: [String: Int64]?, payload: JSONValue) {
        self.subject = subject; self.subject_kind = subject_kind; self.category = category; self.severity = severity
        self.event_date = event_date; self.industry = industry; self.attributes = attributes; self.payload = payload
    }

    static let fields: Set<String> = ["subject", "subject_kind", "category", "severity", "event_date", "industry", "attributes", "payload"]

    /// Reads a request file. What it says becomes ledger history, correctable only by an
    /// amendment, so a misspelt or unknown field is refused rather than dropped (an
    /// "atributes" left out would change the subject's score without a word).
    public static func decode(_ bytes: [UInt8], source: String) throws -> AttestationRequest {
        // UTF-8 first: a reader may take other bytes in a string as replacement characters, and
        // a payload in GBK would be sealed garbled (found by black-box testing).
        if let encoding = DecodingProblem.notUTF8(bytes) { throw LedgerError(.malformed, "\(source): \(encoding)") }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw LedgerError(.malformed, "\(source): not a JSON object")
        }
        // A key given twice: the first is read here, the last by most other tools, so a reviewer
        // could see another business than the one attested (found by black-box testing, 2026-12-07).
        if let duplicate = JSONDuplicateKeys.first(in: bytes) {
            throw LedgerError(.malformed, "\(source): not JSON every tool reads alike: \(duplicate)")
        }
        // The decoder calls a fractional or oversized number "not valid JSON" without a field.
        if let attributes = object["attributes"] as? [String: Any],
           let name = attributes.keys.sorted().first(where: { attributes[$0] is NSNumber && attributes[$0] as? Int64 == nil }) {
            throw LedgerError(.invalidValue, "\(source): attribute \(name) is \(attributes[name]!); attribute values are whole numbers from \(Int64.min) to \(Int64.max)")
        }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw LedgerError(.invalidValue, "\(source): unknown field \"\(unknown)\" (known: \(fields.sorted().joined(separator: ", ")))")
        }
        do {
            return try JSONDecoder().decode(AttestationRequest.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, _) {
            throw LedgerError(.malformed, "\(source): field \"\(key.stringValue)\" is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw LedgerError(.malformed, "\(source): field \"\(path)\" has the wrong type (\(context.debugDescription))")
        } catch {
            throw LedgerError(.malformed, "\(source): \(error)")
        }
    }

    /// A nonce that depends only on the member's key and the request file: a file sent twice
    /// gets the same nonce, so its second copy is refused as a replay instead of recorded twice.
    public static func nonce(keys: MemberSecretKeys, file: [UInt8]) -> UInt64 {
        derivedNonce("CreditLedger/v1/submit-nonce\n", keys: keys) { $0.raw(SHA256.hash(file)) }
    }

    /// A nonce derived from a domain and what `content` writes, under the member's secret key:
    /// the first 8 bytes, big-endian, of their BLAKE2b keyed with the signing key's seed. What the
    /// CLI's commands send again after a timeout is then refused as a replay instead of recorded
    /// twice. Keyed, because the nonce is on the ledger for every member to read: derived with
    /// the public key alone it let anyone holding a replica test a guess of what it came from, a
    /// request file's payload (sealed to the custodians) or a consent form (found in review,
    /// 2026-12-07). Nonces so derived before then differ: a command sent before the upgrade and
    /// sent again after it is recorded twice (a sealed payload's commitment is salted afresh each
    /// time, so nothing else refuses the second copy).
    public static func derivedNonce(_ domain: String, keys: MemberSecretKeys, _ content: (inout ByteWriter) -> Void) -> UInt64 {
        var w = ByteWriter()
        w.raw(Array(domain.utf8))
        content(&w)
        let key = SecretBytes(keys.signing.seed)
        // A 32-byte key and output are within BLAKE2b's bounds: this cannot throw.
        let mac = try! BLAKE2b.keyedHash(w.bytes, key: key, outputByteCount: 32)
        return mac.withUnsafeBytes { $0.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }
    }

    /// Checks the request, seals its payload to the custodians and signs it: an attestation, or
    /// with `correcting`, a correction of that record (this request is the corrected record, and
    /// `reason` a reason code: `AmendmentBody.isReasonCode`).
    public func build(genesis: Genesis, keys: MemberSecretKeys, nonce: UInt64 = SecureRandom.uint64(),
                      issuedAtMillis: UInt64, correcting target: Hash? = nil, reason: String = "") throws -> Submission {
        let uscc = try USCC(subject)
        let kind: SubjectKind
        if let name = subject_kind {
            guard let k = SubjectKind(name: name) else {
                throw LedgerError(.invalidValue, "subject_kind \"\(name)\" is unknown (individual_business or enterprise)")
            }
            kind = k
        } else {
            guard let k = uscc.subjectKind else {
                throw LedgerError(.invalidUSCC, "USCC \(subject) is not a market-registered enterprise (91…) or individual business (92…)")
            }
            kind = k
        }
        guard let cat = Category(name: category) else {
            throw LedgerError(.unknownCategory, "category \"\(category)\" is unknown (known: \(Category.allCases.map(\.name).joined(separator: ", ")))")
        }
        let sev: Severity
        if let s = severity {
            guard let v = Severity(name: s) else { throw LedgerError(.invalidValue, "severity \"\(s)\" is unknown (minor, general, serious)") }
            sev = v
        } else { sev = .none }
        if let i = industry, !i.isEmpty { try IndustryCode.check(i) }
        let payloadBytes = Array(try JSONEncoder.canonical.encode(payload))
        let (commitment, envelope) = try PayloadSeal.seal(payloadBytes, to: genesis.custodians)
        let body = AttestationBody(subject: uscc, subjectKind: kind, category: cat, severity: sev,
                                   eventDate: try LedgerDate(iso: event_date), industry: industry ?? "",
                                   attributes: (attributes ?? [:]).sorted { $0.key < $1.key }.map { Attribute(name: $0.key, value: $0.value) },
                                   payloadCommitment: commitment, envelopeHash: envelope.hash)
        try body.check()
        guard let member = genesis.member(keys.memberID) else {
            throw LedgerError(.unknownSigner, "key file member \(keys.memberID) is not in this genesis")
        }
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID,
                                       nonce: nonce, issuedAtMillis: issuedAtMillis)
        var transactionBody = TransactionBody.attestation(body)
        if let target {
            try Self.checkReason(reason)
            transactionBody = .amendment(AmendmentBody(action: .correction, target: target, reason: reason, replacement: body))
        }
        let tx = Transaction.sign(header: header, body: transactionBody, key: keys.signing)
        return Submission(transaction: tx, envelope: envelope)
    }

    /// A revocation of the record `target` (an attestation or correction of this member's): it
    /// ends the record for scores and policies. `reason` is a reason code.
    public static func revocation(of target: Hash, reason: String, genesis: Genesis, keys: MemberSecretKeys,
                                  nonce: UInt64, issuedAtMillis: UInt64) throws -> Submission {
        try checkReason(reason)
        guard let member = genesis.member(keys.memberID) else {
            throw LedgerError(.unknownSigner, "key file member \(keys.memberID) is not in this genesis")
        }
        let header = TransactionHeader(chainID: genesis.chainID, signer: member.id, keyID: member.keyID, nonce: nonce, issuedAtMillis: issuedAtMillis)
        let body = AmendmentBody(action: .revocation, target: target, reason: reason, replacement: nil)
        return Submission(transaction: Transaction.sign(header: header, body: .amendment(body), key: keys.signing), envelope: nil)
    }

    /// A nonce that depends only on the member's key, what is amended and how: the same
    /// amendment sent twice gets the same nonce, and its second copy is refused as a replay.
    public static func amendmentNonce(keys: MemberSecretKeys, target: Hash, file: [UInt8]?) -> UInt64 {
        derivedNonce("CreditLedger/v1/amend-nonce\n", keys: keys) { w in
            w.raw(target)
            w.raw(file.map { SHA256.hash($0) } ?? [])
        }
    }

    static func checkReason(_ reason: String) throws {
        guard AmendmentBody.isReasonCode(reason) else {
            throw LedgerError(.invalidValue, "--reason must be a reason code (\(AmendmentBody.reasonCodeRule)), "
                + "such as data_error, court_overturned or credit_repair, not free text: it is in the clear on every node; got \"\(reason.clipped())\"")
        }
    }
}

/// Any JSON value, kept for encrypting as the raw payload. Whole numbers that fit 64 bits are
/// kept exactly (a case or account number past 2^53 would lose digits as a Double); a whole
/// number beyond 64 bits is refused (a 20-digit account number would have been sealed
/// rounded, for good: it must be written as a string); other numbers are Doubles, as JSON
/// parsers read them.
public enum JSONValue: Codable, Sendable, Equatable {
    case null, bool(Bool), integer(Int64), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Decimal.self), Self.isWholeBeyond64Bits(d) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "the whole number \(d) does not fit 64 bits and would be sealed rounded; write it as a string"))
        }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    static func isWholeBeyond64Bits(_ d: Decimal) -> Bool {
        var value = d, rounded = Decimal()
        NSDecimalRound(&rounded, &value, 0, .plain)
        return rounded == d && (d > Decimal(Int64.max) || d < Decimal(Int64.min))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

extension JSONEncoder {
    public static var canonical: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
