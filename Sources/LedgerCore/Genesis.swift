import Foundation
import LedgerCrypto

/// One consortium member as named in the genesis file.
public struct Member: Sendable, Hashable {
    public let id: String
    public let name: String
    public let roles: Set<Role>
    public let signingKey: Ed25519PublicKey
    public let encryptionKey: X25519PublicKey
    public let p2pAddress: String?
    public let httpAddress: String?
    /// The C2SP signed-note key id of `signingKey` under the key name `id`.
    public let keyID: UInt32

    public init(id: String, name: String, roles: Set<Role>, signingKey: Ed25519PublicKey,
                encryptionKey: X25519PublicKey, p2pAddress: String? = nil, httpAddress: String? = nil) {
        self.id = id
        self.name = name
        self.roles = roles
        self.signingKey = signingKey
        self.encryptionKey = encryptionKey
        self.p2pAddress = p2pAddress
        self.httpAddress = httpAddress
        self.keyID = NoteVerifier.keyID(name: id, publicKey: signingKey)
    }

    public func has(_ role: Role) -> Bool { roles.contains(role) }

    /// The member's note verifier key, `name+hexid+base64(0x01‖key)`, for standard tlog tools.
    public var verifierKey: String { NoteVerifier(name: id, publicKey: signingKey).verifierKey }
}

/// Limits on every field and on whole transactions and blocks. Part of genesis so that
/// every node enforces the same numbers.
public struct Limits: Sendable, Hashable, Codable {
    public var maxTransactionBytes: Int = 131_072
    public var maxEnvelopeBytes: Int = 98_304
    public var maxBlockTransactions: Int = 10_000
    public var maxBatchTransactions: Int = 5_000
    public var maxMempoolTransactions: Int = 100_000
    public var maxRequestBytes: Int = 16 << 20

    public init() {}

    /// Missing keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Limits()
        maxTransactionBytes = try c.decodeIfPresent(Int.self, forKey: .maxTransactionBytes) ?? d.maxTransactionBytes
        maxEnvelopeBytes = try c.decodeIfPresent(Int.self, forKey: .maxEnvelopeBytes) ?? d.maxEnvelopeBytes
        maxBlockTransactions = try c.decodeIfPresent(Int.self, forKey: .maxBlockTransactions) ?? d.maxBlockTransactions
        maxBatchTransactions = try c.decodeIfPresent(Int.self, forKey: .maxBatchTransactions) ?? d.maxBatchTransactions
        maxMempoolTransactions = try c.decodeIfPresent(Int.self, forKey: .maxMempoolTransactions) ?? d.maxMempoolTransactions
        maxRequestBytes = try c.decodeIfPresent(Int.self, forKey: .maxRequestBytes) ?? d.maxRequestBytes
    }

    /// The least `max_transaction_bytes`: room for the largest score update a scorer may have to
    /// sign (1,024 inputs of 32 bytes, 16 dimensions, 16 endorsements: about 35 KB). Below it, a
    /// subject with many records would get an update no peer accepts, retried for ever.
    public static let minTransactionBytes = 40_960
    /// The most `max_request_bytes` a network of several validators may set (docs/CONSENSUS.md §3).
    public static let maxConsortiumRequestBytes = 48 << 20

    /// Every limit must be positive and within what the encoding can carry.
    public func check() throws {
        let ranges: [(String, Int, ClosedRange<Int>)] = [
            ("max_transaction_bytes", maxTransactionBytes, Self.minTransactionBytes...(1 << 20)),
            ("max_envelope_bytes", maxEnvelopeBytes, 256...(1 << 20)),
            ("max_block_transactions", maxBlockTransactions, 1...100_000),
            ("max_batch_transactions", maxBatchTransactions, 1...100_000),
            ("max_mempool_transactions", maxMempoolTransactions, 1...10_000_000),
            ("max_request_bytes", maxRequestBytes, 4_096...(256 << 20)),
        ]
        for (name, value, range) in ranges where !range.contains(value) {
            throw LedgerError(.invalidGenesis, "limits.\(name) is \(value), allowed \(range.lowerBound)-\(range.upperBound)")
        }
        // A batch is admitted whole and commits in one block, so it must fit in a block and in the mempool.
        guard maxBatchTransactions <= maxBlockTransactions, maxBatchTransactions <= maxMempoolTransactions else {
            throw LedgerError(.invalidGenesis, "limits.max_batch_transactions (\(maxBatchTransactions)) must not exceed limits.max_block_transactions (\(maxBlockTransactions)) or limits.max_mempool_transactions (\(maxMempoolTransactions)): a batch commits whole, in one block")
        }
    }

    enum CodingKeys: String, CodingKey {
        case maxTransactionBytes = "max_transaction_bytes"
        case maxEnvelopeBytes = "max_envelope_bytes"
        case maxBlockTransactions = "max_block_transactions"
        case maxBatchTransactions = "max_batch_transactions"
        case maxMempoolTransactions = "max_mempool_transactions"
        case maxRequestBytes = "max_request_bytes"
    }
}

/// The genesis document: chain id, members with roles and keys, parameters.
/// Its hash is SHA-256 of the file's exact bytes; block 1 links to it.
public struct Genesis: Sendable {
    public static let format = "creditledger-genesis/v1"
    public let chainID: String
    public let genesisTime: String
    public let members: [Member]
    public let limits: Limits
    /// Endorsements by other scorers a score update needs.
    public let scoreEndorsementsRequired: Int
    public let hash: Hash
    public let bytes: [UInt8]
    /// Scoring models installed at genesis (docs/SCORING.md §6), in file order.
    public let models: [InstalledModel]
    /// Query policies installed at genesis (checked by the policy engine when a node opens the chain).
    public let policies: [InstalledPolicy]
    private let membersByID: [String: Member]

    public var validators: [Member] { members.filter { $0.has(.validator) } }
    public var custodians: [Member] { members.filter { $0.has(.custodian) } }
    /// Byzantine faults tolerated: f = ⌊(n−1)/3⌋ for n validators.
    public var faultTolerance: Int { (validators.count - 1) / 3 }
    /// Signatures needed for a commit certificate or a checkpoint: n − f (= 2f+1 when n = 3f+1).
    public var quorum: Int { validators.count - faultTolerance }

    public func member(_ id: String) -> Member? { membersByID[id] }

    /// The genesis model with this content hash, if any.
    public func model(hash: Hash) -> InstalledModel? { models.first { $0.hash == hash } }

    /// The genesis policy with this content hash, if any.
    public func policy(hash: Hash) -> InstalledPolicy? { policies.first { $0.hash == hash } }

    struct Document: Codable {
        struct MemberEntry: Codable {
            var id: String
            var name: String
            var roles: [String]
            var ed25519_public_key: String
            var x25519_public_key: String
            var p2p_address: String?
            var http_address: String?
        }
        var format: String
        var chain_id: String
        var genesis_time: String
        var members: [MemberEntry]
        var limits: Limits?
        var score_endorsements_required: Int?
        /// Optional: scoring models, each the exact bytes of its document in base64.
        var models: [ModelEntry]?
        /// Optional: query policies, in the same form as models.
        var policies: [ModelEntry]?

        struct ModelEntry: Codable {
            var name: String
            var version: UInt32
            var sha256: String
            var document: String
        }
    }

    /// What an audit record names as the requester when a query's requester field is not a
    /// valid member id; no member may have this id.
    public static let unknownRequester = "unknown"

    /// The requester an audit record names for a query's requester field.
    public static func recordedRequester(_ requester: String) -> String {
        isValidMemberID(requester) ? requester : unknownRequester
    }

    public static func isValidIdentifier(_ s: String, max: Int) -> Bool {
        guard !s.isEmpty, s.utf8.count <= max else { return false }
        return s.utf8.enumerated().allSatisfy { i, c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || (i > 0 && (c == 0x2D || c == 0x2E || c == 0x2F || c == 0x5F))
        }
    }

    /// A name inside the ledger (member id, attribute name): an identifier without '/'.
    public static func isValidName(_ s: String, max: Int) -> Bool {
        isValidIdentifier(s, max: max) && !s.utf8.contains(0x2F)
    }

    /// A member id: also the member's key name in signed notes.
    public static func isValidMemberID(_ s: String) -> Bool { isValidName(s, max: FieldLimits.memberID) }

    /// Documents listed in genesis (models, policies): valid names and versions, the stated
    /// hashes, no name-and-version or document listed twice.
    static func listed<T: InstalledDocument>(_ entries: [Document.ModelEntry]?, field: String) throws -> [T] {
        var out: [T] = []
        for (i, entry) in (entries ?? []).enumerated() {
            guard Self.isValidIdentifier(entry.name, max: FieldLimits.governanceName), entry.version >= 1 else {
                throw LedgerError(.invalidGenesis, "\(field)[\(i)]: name \"\(entry.name)\" must be an identifier of 1-64 characters and version at least 1")
            }
            guard let document = [UInt8](base64: entry.document), document.count <= FieldLimits.governanceDocument else {
                throw LedgerError(.invalidGenesis, "\(field)[\(i)] (\(entry.name)): document must be base64 of at most \(FieldLimits.governanceDocument) bytes")
            }
            let item = T(name: entry.name, version: entry.version, document: document, logIndex: nil)
            guard item.hash.hexString == entry.sha256 else {
                throw LedgerError(.invalidGenesis, "\(field)[\(i)] (\(entry.name)): sha256 is \(entry.sha256), the document hashes to \(item.hash.hexString)")
            }
            if out.contains(where: { ($0.name == item.name && $0.version == item.version) || $0.hash == item.hash }) {
                throw LedgerError(.invalidGenesis, "\(field)[\(i)]: \(entry.name) version \(entry.version) is listed twice")
            }
            out.append(item)
        }
        return out
    }

    /// The genesis listing of installed documents; nil (omitted) when there are none.
    static func entries<T: InstalledDocument>(_ items: [T]) -> [Document.ModelEntry]? {
        items.isEmpty ? nil : items.map {
            Document.ModelEntry(name: $0.name, version: $0.version, sha256: $0.hash.hexString, document: $0.document.base64String)
        }
    }

    /// The most a genesis file may hold: its members, limits, scoring models and policies run
    /// to kilobytes.
    public static let maxFileBytes = 16 << 20

    /// Reads (within `maxFileBytes`), parses and checks the genesis file at `path`.
    public init(file path: String) throws {
        let bytes: [UInt8]
        do { bytes = try readInputFile(path, limit: Self.maxFileBytes, what: "genesis file") } catch {
            throw LedgerError(.invalidGenesis, "genesis: \(error)")
        }
        // Named by its path: a config pointing at the members file, or a genesis broken by hand,
        // was refused without saying which file (found by black-box testing, 2026-12-08).
        do { try self.init(bytes: bytes) } catch let e as LedgerError { throw LedgerError(e.code, "\(path): \(e.reason)") }
    }

    /// Parses and checks a genesis file.
    public init(bytes: [UInt8]) throws {
        // The trust anchor must read the same in every tool: a key given twice is read as the
        // first here and as the last by most others.
        if let duplicate = JSONDuplicateKeys.first(in: bytes) {
            throw LedgerError(.invalidGenesis, "genesis is not one every tool reads alike: \(duplicate)")
        }
        let doc: Document
        do { doc = try JSONDecoder().decode(Document.self, from: Data(bytes)) } catch {
            throw LedgerError(.invalidGenesis, "genesis is not a CreditLedger genesis (JSON of format \(Self.format)): \(DecodingProblem.describe(error))")
        }
        guard doc.format == Self.format else {
            throw LedgerError(.invalidGenesis, "genesis format is \"\(doc.format)\", expected \"\(Self.format)\"")
        }
        guard Self.isValidIdentifier(doc.chain_id, max: 64) else {
            throw LedgerError(.invalidGenesis, "chain_id \"\(doc.chain_id)\" must be 1-64 characters of a-z 0-9 . - / _")
        }
        var members: [Member] = []
        var seen = Set<String>()
        var seenKeys = Set<[UInt8]>()
        var seenEncryptionKeys = Set<[UInt8]>()
        for entry in doc.members {
            guard Self.isValidMemberID(entry.id) else {
                throw LedgerError(.invalidGenesis, "member id \"\(entry.id)\" must be 1-32 characters of a-z 0-9 . - _")
            }
            guard entry.id != Self.unknownRequester else {
                throw LedgerError(.invalidGenesis, "member id \"\(Self.unknownRequester)\" is reserved: audit records name it as the requester of a query whose requester is not a valid member id")
            }
            guard seen.insert(entry.id).inserted else {
                throw LedgerError(.invalidGenesis, "member id \"\(entry.id)\" appears twice")
            }
            var roles = Set<Role>()
            for r in entry.roles {
                guard let role = Role(rawValue: r) else {
                    throw LedgerError(.invalidGenesis, "member \(entry.id): unknown role \"\(r)\" (known: \(Role.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                roles.insert(role)
            }
            guard let sk = [UInt8](base64: entry.ed25519_public_key), let signing = try? Ed25519PublicKey(bytes: sk) else {
                throw LedgerError(.invalidGenesis, "member \(entry.id): ed25519_public_key must be 32 bytes in base64")
            }
            guard let xk = [UInt8](base64: entry.x25519_public_key), let enc = try? X25519PublicKey(bytes: xk) else {
                throw LedgerError(.invalidGenesis, "member \(entry.id): x25519_public_key must be 32 bytes in base64")
            }
            guard seenKeys.insert(sk).inserted else {
                throw LedgerError(.invalidGenesis, "member \(entry.id): signing key is shared with another member")
            }
            // Payload keys are sealed to these, and custodians are told apart by them: a low-order
            // point would take sealed keys no one can open (found in review, 2026-12-06).
            guard !enc.isLowOrder else {
                throw LedgerError(.invalidGenesis, "member \(entry.id): x25519_public_key is a low-order point, to which nothing can be sealed")
            }
            guard seenEncryptionKeys.insert(xk).inserted else {
                throw LedgerError(.invalidGenesis, "member \(entry.id): x25519_public_key is shared with another member")
            }
            if roles.contains(.auditor) && roles.count > 1 {
                throw LedgerError(.invalidGenesis, "member \(entry.id): an auditor is a non-voting reader and holds no other role")
            }
            // Every other member dials these: one that does not parse would stop their nodes, and genesis never changes.
            for (field, address) in [("p2p_address", entry.p2p_address), ("http_address", entry.http_address)] {
                if let address, !Self.isHostPort(address) {
                    throw LedgerError(.invalidGenesis, "member \(entry.id): \(field) must be host:port (port 1-65535), got \"\(address.prefix(64))\"")
                }
            }
            members.append(Member(id: entry.id, name: entry.name, roles: roles, signingKey: signing, encryptionKey: enc,
                                  p2pAddress: entry.p2p_address, httpAddress: entry.http_address))
        }
        guard members.contains(where: { $0.has(.validator) }) else {
            throw LedgerError(.invalidGenesis, "genesis names no validator")
        }
        // Checkpoints carry the validators' cosignatures in one signed note, which holds at most
        // SignedNote.maxSignatures: with more validators a quorum could not be written down.
        let validatorCount = members.filter { $0.has(.validator) }.count
        guard validatorCount <= SignedNote.maxSignatures else {
            throw LedgerError(.invalidGenesis, "genesis names \(validatorCount) validators; at most \(SignedNote.maxSignatures) (a checkpoint note holds that many cosignatures)")
        }
        guard members.contains(where: { $0.has(.custodian) }) else {
            throw LedgerError(.invalidGenesis, "genesis names no custodian; raw payloads would be readable by no one")
        }
        let custodianCount = members.filter { $0.has(.custodian) }.count
        guard custodianCount <= FieldLimits.wrappedKeys else {
            throw LedgerError(.invalidGenesis, "genesis names \(custodianCount) custodians; an envelope holds at most \(FieldLimits.wrappedKeys) keys")
        }
        let scorers = members.filter { $0.has(.scorer) }.count
        let endorsements = doc.score_endorsements_required ?? 0
        guard endorsements >= 0, endorsements <= max(0, scorers - 1) else {
            throw LedgerError(.invalidGenesis,
                "score_endorsements_required is \(endorsements); with \(scorers) scorers it must be 0-\(max(0, scorers - 1))")
        }
        let limits = doc.limits ?? Limits()
        try limits.check()
        // A consortium carries a block (up to 2 · max_request_bytes) in one P2P frame, and a peer's
        // backlog holds 96 MiB: a larger frame could not start the P2P layer (over 128 MiB) or
        // would be refused by every peer it is sent to, so catch-up would stall for good.
        let usesP2P = validatorCount > 1 || members.contains { $0.p2pAddress != nil }
        guard !usesP2P || limits.maxRequestBytes <= Limits.maxConsortiumRequestBytes else {
            throw LedgerError(.invalidGenesis, "limits.max_request_bytes is \(limits.maxRequestBytes); a network (\(validatorCount) validators, members with P2P addresses) carries a block of twice that in one P2P frame, so it may be at most \(Limits.maxConsortiumRequestBytes) (48 MiB)")
        }
        self.models = try Self.listed(doc.models, field: "models")
        self.policies = try Self.listed(doc.policies, field: "policies")
        self.chainID = doc.chain_id
        self.genesisTime = doc.genesis_time
        self.members = members
        self.limits = limits
        self.scoreEndorsementsRequired = endorsements
        self.bytes = bytes
        self.hash = SHA256.hash(bytes)
        self.membersByID = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) })
    }

    /// The host and port of "host:port": a non-empty host and a port of 0-65535 (0: any free
    /// port, for listen addresses), or nil. The one parser of addresses in configs, flags and genesis.
    public static func hostAndPort(_ address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
              let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (String(address[..<colon]), port)
    }

    /// Whether `address` can be dialled: host:port with a host of no spaces or slashes and a port of 1-65535.
    /// Genesis documents are held to this rule as it was when they were written: a stricter one
    /// here would make an existing chain's genesis unreadable. Configs use `listenHostAndPort`.
    public static func isHostPort(_ address: String) -> Bool {
        guard address.utf8.count <= 255, let (host, port) = hostAndPort(address), port >= 1 else { return false }
        return !host.contains { $0 == " " || $0 == "/" }
    }

    /// The host and port of an address to listen on: `hostAndPort` (port 0: any free port) with
    /// a host of no spaces, slashes or other whitespace, at most 255 bytes in all. An IPv6
    /// address is written in brackets, `[::1]:26601`, and comes back without them (the brackets
    /// were taken as part of a host name, and the address failed only when used).
    /// The port is written as a number is: ASCII digits without a sign or a leading zero
    /// ("+18722" and "018721" were taken as 18722 and 18721, and two members could share an
    /// address written two ways; found by black-box testing, 2026-12-08).
    public static func listenHostAndPort(_ address: String) -> (host: String, port: Int)? {
        guard address.utf8.count <= 255, let (given, port) = hostAndPort(address),
              address.hasSuffix(":\(port)"), !given.contains(where: { $0 == "/" || $0.isWhitespace }) else { return nil }
        var host = given
        if host.hasPrefix("[") || host.hasSuffix("]") || host.contains("[") || host.contains("]") {
            guard host.hasPrefix("["), host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
            guard host.contains(":"), !host.contains("["), !host.contains("]"), host.contains(where: \.isHexDigit) else { return nil }
        } else if host.contains(":") {
            return nil  // an IPv6 address without brackets: "::1:8080" reads two ways
        }
        return (host, port)
    }

    /// Writes a genesis document for the given members (used by `credit-node genesis` and `dev`).
    public static func render(chainID: String, genesisTime: String, members: [Member], limits: Limits = Limits(),
                              scoreEndorsementsRequired: Int = 0, models: [InstalledModel] = [],
                              policies: [InstalledPolicy] = []) throws -> [UInt8] {
        // Two members at one address: one of them can never be dialled, which shows only once
        // the network runs, when fixing it takes a new genesis (found by black-box testing). A
        // new genesis refuses it; one already made still loads.
        // A member listed twice is named as such first (it was reported as two members at one address).
        var ids = Set<String>()
        for m in members where !ids.insert(m.id).inserted {
            throw LedgerError(.invalidGenesis, "member id \"\(m.id)\" appears twice")
        }
        for field in ["p2p_address", "http_address"] {
            var seen: [String: String] = [:]
            for m in members {
                guard let address = field == "p2p_address" ? m.p2pAddress : m.httpAddress else { continue }
                // A new genesis takes addresses as configs do: IPv6 in brackets, a plain port
                // (`::1:18722` and `127.0.0.1:+18722` were written into one).
                guard let (host, port) = listenHostAndPort(address), port >= 1 else {
                    throw LedgerError(.invalidGenesis, "member \(m.id): \(field) must be host:port (a host without spaces or slashes, IPv6 in brackets, a port of 1-65535 in plain digits), got \"\(address.prefix(64))\"")
                }
                if let other = seen.updateValue(m.id, forKey: "\(host.lowercased()):\(port)") {
                    throw LedgerError(.invalidGenesis, "members \(other) and \(m.id) have the same \(field) \(address); each member's node needs its own")
                }
            }
        }
        let doc = Document(
            format: format, chain_id: chainID, genesis_time: genesisTime,
            members: members.map {
                Document.MemberEntry(id: $0.id, name: $0.name, roles: Role.allCases.filter($0.roles.contains).map(\.rawValue),
                                     ed25519_public_key: $0.signingKey.bytes.base64String,
                                     x25519_public_key: $0.encryptionKey.bytes.base64String,
                                     p2p_address: $0.p2pAddress, http_address: $0.httpAddress)
            },
            limits: limits, score_endorsements_required: scoreEndorsementsRequired,
            models: entries(models), policies: entries(policies))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(doc)
        data.append(0x0A)
        let bytes = Array(data)
        _ = try Genesis(bytes: bytes)
        return bytes
    }
}
