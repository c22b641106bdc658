import Foundation
import LedgerCrypto

/// A consent's `evidence` (FORMAT.md §4.4): a salted commitment to the signed consent form,
/// SHA-256("CreditLedger/v1/consent-evidence\n" ‖ salt ‖ SHA-256(form)) with 32 random bytes of
/// salt that the recorder keeps with the form, in an evidence record file
/// (`creditledger-consent-evidence/v1`). The form's plain SHA-256 was recorded until 2026-12-07:
/// anyone holding a replica could test a guessed form, one filled in from a public template with
/// a known name, against it (docs/PRIVACY.md §3). Validators check only that `evidence` is not all
/// zeros; the form and its salt prove the link when an auditor asks (`credit-verify
/// consent-evidence`).
public enum ConsentEvidence {
    public static let format = "creditledger-consent-evidence/v1"
    static let domain = Array("CreditLedger/v1/consent-evidence\n".utf8)
    public static let saltBytes = 32
    /// An evidence record is a few hundred bytes; more is not one.
    public static let maxRecordBytes = 4_096

    public static func commitment(formSHA256: Hash, salt: [UInt8]) -> Hash {
        SHA256.hash(domain + salt + formSHA256)
    }

    /// The SHA-256 of a consent form, read in pieces (a scan may be large; it is hashed, not sent),
    /// within 1 GiB so that an endless file ends. `option` names the file in errors.
    public static func hashForm(atPath path: String, option: String) throws -> Hash {
        func problem(_ message: String) -> LedgerError { LedgerError(.invalidValue, message) }
        // A directory opens, and its read failed with Foundation's error dump (found by black-box testing).
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw problem("\(option) \(path) is a directory; name the consent form's file")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw problem(unreadable(path)) }
        defer { try? handle.close() }
        var hasher = SHA256()
        var total = 0
        var blank = true
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 1 << 20) ?? Data() } catch { throw problem("cannot read \(path): \(error)") }
            if chunk.isEmpty {
                // An empty file is no consent form; its hash, the same for every empty file, proved
                // nothing (found by black-box testing). Nor is one of spaces and line ends alone.
                guard total > 0 else { throw problem("\(option) \(path) is empty; name the signed consent form's file") }
                guard !blank else { throw problem("\(option) \(path) holds only spaces and line ends; name the signed consent form's file") }
                return hasher.finalize()
            }
            if blank { blank = chunk.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D } }
            total += chunk.count
            guard total <= 1 << 30 else { throw problem("\(path) is larger than any consent evidence file can be (over 1 GiB); check that it is the right file") }
            hasher.update(Array(chunk))
        }
    }

    /// Whether the file begins as an evidence commitment's input does: such a file is no form.
    public static func isCommitmentInput(atPath path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: domain.count)).map { Array($0) == domain } ?? false
    }

    /// What the recorder keeps beside the form.
    public struct Record: Codable, Equatable, Sendable {
        public let format: String
        /// The member whose key recorded consents with this salt.
        public let recorder: String
        public let form_sha256: String
        public let salt: String
        public let evidence: String

        public init(recorder: String, formSHA256: Hash, salt: [UInt8]) {
            format = ConsentEvidence.format
            self.recorder = recorder
            form_sha256 = formSHA256.hexString
            self.salt = salt.hexString
            evidence = ConsentEvidence.commitment(formSHA256: formSHA256, salt: salt).hexString
        }

        /// The record read from its file's bytes, checked whole: its format, hex fields of the right
        /// lengths, and an evidence that is the commitment of its form hash and salt.
        public static func read(_ bytes: [UInt8], path: String) throws -> Record {
            guard bytes.count <= ConsentEvidence.maxRecordBytes else {
                throw LedgerError(.invalidValue, "\(path) is \(bytes.count) bytes, more than a consent evidence record (\(ConsentEvidence.format)) can be")
            }
            if let duplicate = JSONDuplicateKeys.first(in: bytes) {
                throw LedgerError(.invalidValue, "\(path) is not a consent evidence record every tool reads alike: \(duplicate)")
            }
            let record: Record
            do { record = try JSONDecoder().decode(Record.self, from: Data(bytes)) } catch {
                throw LedgerError(.invalidValue, "\(path) is not a consent evidence record (\(ConsentEvidence.format)): \(DecodingProblem.describe(error))")
            }
            guard record.format == ConsentEvidence.format else {
                throw LedgerError(.unsupportedVersion, "\(path) has format \"\(record.format)\"; this tool reads \(ConsentEvidence.format)")
            }
            guard let form = record.formSHA256, let salt = record.saltBytes, let evidence = record.evidenceHash else {
                throw LedgerError(.invalidValue, "\(path): form_sha256, salt and evidence must each be 64 hex digits")
            }
            guard commitment(formSHA256: form, salt: salt) == evidence else {
                throw LedgerError(.invalidValue, "\(path): its evidence is not the commitment of its form_sha256 and salt; the record was altered")
            }
            return record
        }

        public var formSHA256: Hash? { [UInt8](hex: form_sha256).flatMap { $0.count == 32 ? $0 : nil } }
        public var saltBytes: [UInt8]? { [UInt8](hex: salt).flatMap { $0.count == ConsentEvidence.saltBytes ? $0 : nil } }
        public var evidenceHash: Hash? { [UInt8](hex: evidence).flatMap { $0.count == 32 ? $0 : nil } }

        public var encoded: Data {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(self)) ?? Data()
        }
    }
}
