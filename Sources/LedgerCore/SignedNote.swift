import LedgerCrypto

/// An Ed25519 verifier in the C2SP signed-note scheme.
public struct NoteVerifier: Hashable, Sendable {
    public static let ed25519Type: UInt8 = 0x01
    public let name: String
    public let publicKey: Ed25519PublicKey
    public let keyID: UInt32

    public init(name: String, publicKey: Ed25519PublicKey) {
        self.name = name
        self.publicKey = publicKey
        self.keyID = Self.keyID(name: name, publicKey: publicKey)
    }

    /// First 4 bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
    public static func keyID(name: String, publicKey: Ed25519PublicKey) -> UInt32 {
        let h = SHA256.hash(parts: [Array(name.utf8), [0x0A, ed25519Type], publicKey.bytes])
        return h.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// `name+hexid+base64(0x01‖key)`, the form golang.org/x/mod/sumdb/note reads.
    public var verifierKey: String {
        let hex = String(keyID, radix: 16)
        return "\(name)+\(String(repeating: "0", count: 8 - hex.count))\(hex)+\(([Self.ed25519Type] + publicKey.bytes).base64String)"
    }

    /// Parses a verifier key string and checks its key id.
    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].count == 8, let id = UInt32(parts[1], radix: 16),
              let raw = [UInt8](base64: String(parts[2])), raw.count == 33, raw[0] == Self.ed25519Type,
              let key = try? Ed25519PublicKey(bytes: Array(raw.dropFirst())), SignedNote.isValidKeyName(String(parts[0])) else {
            throw LedgerError(.invalidCheckpoint, "\"\(verifierKey)\" is not an Ed25519 note verifier key (name+hexid+base64)")
        }
        self.init(name: String(parts[0]), publicKey: key)
        guard keyID == id else {
            throw LedgerError(.invalidCheckpoint, "verifier key \(name): key id \(parts[1]) does not match the key")
        }
    }
}

/// A C2SP signed note: text ending in a newline, a blank line, then signature lines
/// `— <name> <base64(key id ‖ signature)>`.
public struct SignedNote: Hashable, Sendable {
    public struct Signature: Hashable, Sendable {
        public let name: String
        public let keyID: UInt32
        public let signature: [UInt8]

        public init(name: String, keyID: UInt32, signature: [UInt8]) {
            self.name = name; self.keyID = keyID; self.signature = signature
        }

        var line: String {
            let id: [UInt8] = [UInt8(keyID >> 24), UInt8(keyID >> 16 & 0xFF), UInt8(keyID >> 8 & 0xFF), UInt8(keyID & 0xFF)]
            return "\u{2014} \(name) \((id + signature).base64String)\n"
        }
    }

    public static let maxSignatures = 100
    public static let maxBytes = 16_384
    public let text: String
    public private(set) var signatures: [Signature]

    public init(text: String, signatures: [Signature] = []) {
        precondition(text.hasSuffix("\n"))
        self.text = text
        self.signatures = signatures
    }

    public static func isValidKeyName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("+") && !name.unicodeScalars.contains { $0.properties.isWhitespace }
    }

    public var serialized: String { text + "\n" + signatures.map(\.line).joined() }

    /// Adds the signature of `key` under key name `name`.
    public mutating func sign(name: String, key: Ed25519PrivateKey) {
        let verifier = NoteVerifier(name: name, publicKey: key.publicKey)
        signatures.append(Signature(name: name, keyID: verifier.keyID, signature: key.signature(for: Array(text.utf8))))
    }

    /// A note's bytes as text. A note is UTF-8 (C2SP signed-note); bytes that are not are
    /// refused by name here, rather than repaired into text that no signature covers.
    public static func text(of bytes: [UInt8]) throws -> String {
        guard bytes.count <= maxBytes else { throw LedgerError(.invalidCheckpoint, "note is \(bytes.count) bytes, limit \(maxBytes)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw LedgerError(.invalidCheckpoint, "note is not valid UTF-8") }
        return text
    }

    /// Parses a note, splitting text from signatures at the last blank line.
    public init(parsing note: String) throws {
        let bytes = Array(note.utf8)
        guard bytes.count <= Self.maxBytes else {
            throw LedgerError(.invalidCheckpoint, "note is \(bytes.count) bytes, limit \(Self.maxBytes)")
        }
        guard !note.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) else {
            throw LedgerError(.invalidCheckpoint, "note contains control characters")
        }
        guard note.hasSuffix("\n"), let split = note.range(of: "\n\n", options: .backwards) else {
            throw LedgerError(.invalidCheckpoint, "note must be text, a blank line and signature lines, ending in a newline")
        }
        let text = String(note[note.startIndex...split.lowerBound])
        let sigBlock = note[split.upperBound...]
        guard !sigBlock.isEmpty else { throw LedgerError(.invalidCheckpoint, "note has no signatures") }
        var signatures: [Signature] = []
        for line in sigBlock.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            guard line.hasPrefix("\u{2014} ") else {
                throw LedgerError(.invalidCheckpoint, "note signature line \"\(line)\" does not begin with an em dash and a space")
            }
            let rest = line.dropFirst(2)
            guard let space = rest.firstIndex(of: " ") else {
                throw LedgerError(.invalidCheckpoint, "note signature line \"\(line)\" has no key name")
            }
            let name = String(rest[rest.startIndex..<space])
            guard Self.isValidKeyName(name), let raw = [UInt8](base64: String(rest[rest.index(after: space)...])), raw.count >= 5 else {
                throw LedgerError(.invalidCheckpoint, "note signature line \"\(line)\" is malformed")
            }
            let id = raw.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            signatures.append(Signature(name: name, keyID: id, signature: Array(raw.dropFirst(4))))
        }
        guard signatures.count <= Self.maxSignatures else {
            throw LedgerError(.invalidCheckpoint, "note has \(signatures.count) signatures, limit \(Self.maxSignatures)")
        }
        self.text = text
        self.signatures = signatures
    }

    /// The verifiers whose signatures are present and valid. Signatures by unknown keys are
    /// ignored; a known key with a bad signature rejects the whole note, and so does a known
    /// key with a second line, checked or not (C2SP signed-note; Go's `note.Open` calls it
    /// malformed). So a note costs at most one check per known key, and its verdict does not
    /// depend on the order of its lines: until 2026-12-07 a known key's lines after one that
    /// verified were passed over, so a bad copy after the good line was accepted and the same
    /// copy before it refused (found by an independent verifier).
    public func verifiedSigners(_ verifiers: [NoteVerifier]) throws -> [NoteVerifier] {
        var valid: [NoteVerifier] = []
        let message = Array(text.utf8)
        for sig in signatures {
            guard let v = verifiers.first(where: { $0.name == sig.name && $0.keyID == sig.keyID }) else { continue }
            guard !valid.contains(v) else {
                let hex = String(sig.keyID, radix: 16)
                throw LedgerError(.invalidCheckpoint, "note has more than one signature line by \(sig.name) (key id \(String(repeating: "0", count: 8 - hex.count) + hex)): "
                    + "a known key may sign a note once (C2SP signed-note)")
            }
            guard v.publicKey.isValidSignature(sig.signature, for: message) else {
                throw LedgerError(.invalidCheckpoint, "signature by \(sig.name) does not verify")
            }
            valid.append(v)
        }
        return valid
    }
}

/// A C2SP tlog-checkpoint: origin, decimal tree size, base64 root hash, and the extension line
/// `block <height> round <round>` naming the block and the consensus round in which the
/// validators signed it (FORMAT.md §9). The round keeps cosignatures given in different rounds
/// apart, as in a commit certificate: a quorum can only cosign the text of a committed tree.
public struct Checkpoint: Hashable, Sendable {
    public let origin: String
    public let size: UInt64
    public let rootHash: Hash
    /// Nil for a checkpoint written before the extension line existed, or one whose extension
    /// lines are another tool's (opaque to tlog tooling); a line whose first word is `block`
    /// that is not exactly the block line, in first place, makes the checkpoint malformed.
    public let commit: CommitPoint?

    public struct CommitPoint: Hashable, Sendable {
        public let height: UInt64
        public let round: UInt32
        public init(height: UInt64, round: UInt32) { self.height = height; self.round = round }
    }

    public init(origin: String, size: UInt64, rootHash: Hash, commit: CommitPoint?) {
        self.origin = origin; self.size = size; self.rootHash = rootHash; self.commit = commit
    }

    /// Whether this checkpoint names the block and round of `certificate`, as the one written
    /// with it from the same precommits does. A legacy certificate names no round to compare.
    public func namesCommit(of certificate: CommitCertificate) -> Bool {
        guard let round = certificate.round else { return true }
        return commit == CommitPoint(height: certificate.height, round: round)
    }

    /// The checkpoint validators cosign when they commit `header` in `round`.
    public init(header: BlockHeader, round: UInt32) {
        self.init(origin: header.chainID, size: header.logSize, rootHash: header.logRoot,
                  commit: CommitPoint(height: header.height, round: round))
    }

    public var text: String {
        let base = "\(origin)\n\(size)\n\(rootHash.base64String)\n"
        guard let commit else { return base }
        return base + "block \(commit.height) round \(commit.round)\n"
    }

    public init(text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, lines.last == "", !lines[0].isEmpty else {
            throw LedgerError(.invalidCheckpoint, "checkpoint text must have origin, size and root lines")
        }
        guard let size = UInt64(lines[1]), String(size) == lines[1] else {
            throw LedgerError(.invalidCheckpoint, "checkpoint size \"\(lines[1])\" is not a decimal without leading zeros")
        }
        guard let root = [UInt8](base64: String(lines[2])), root.count == 32 else {
            throw LedgerError(.invalidCheckpoint, "checkpoint root \"\(lines[2])\" is not a base64 SHA-256 hash")
        }
        // C2SP tlog-checkpoint: every extension line is non-empty.
        guard !lines[3..<(lines.count - 1)].contains(where: \.isEmpty) else {
            throw LedgerError(.invalidCheckpoint, "checkpoint has an empty extension line")
        }
        var commit: CommitPoint? = nil
        if lines.count >= 5 {
            let words = lines[3].split(separator: " ", omittingEmptySubsequences: false)
            if words.count == 4, words[0] == "block", words[2] == "round",
               let height = UInt64(words[1]), String(height) == words[1], let round = UInt32(words[3]), String(round) == words[3] {
                commit = CommitPoint(height: height, round: round)
            }
        }
        // Another tool's extension lines are opaque; a line that reads as this one's block line
        // but is not exactly it ("block 01 round 0", "Block 7 round 0", one after another line)
        // is refused: read as no block line, it let the block a checkpoint names go unchecked
        // (found by black-box testing, 2026-12-07).
        for (i, line) in lines[3..<(lines.count - 1)].enumerated()
        where line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).first?.lowercased() == "block" && !(i == 0 && commit != nil) {
            throw LedgerError(.invalidCheckpoint, "checkpoint extension line \"\(String(line.prefix(80)))\" is not the block line "
                + "(exactly \"block <height> round <round>\", decimals without leading zeros, as the first extension line)")
        }
        self.init(origin: String(lines[0]), size: size, rootHash: root, commit: commit)
    }

    /// Parses a signed checkpoint and checks that at least `genesis.quorum` distinct validators signed it.
    public static func verify(signedNote note: String, genesis: Genesis) throws -> (Checkpoint, [String]) {
        let parsed = try SignedNote(parsing: note)
        let checkpoint = try Checkpoint(text: parsed.text)
        guard checkpoint.origin == genesis.chainID else {
            throw LedgerError(.invalidCheckpoint, "checkpoint origin \"\(checkpoint.origin)\" is not this chain (\(genesis.chainID))")
        }
        let verifiers = genesis.validators.map { NoteVerifier(name: $0.id, publicKey: $0.signingKey) }
        let signers = try parsed.verifiedSigners(verifiers).map(\.name)
        guard signers.count >= genesis.quorum else {
            throw LedgerError(.invalidCheckpoint,
                "checkpoint has \(signers.count) valid validator signatures, needs \(genesis.quorum) of \(genesis.validators.count)")
        }
        return (checkpoint, signers)
    }
}
