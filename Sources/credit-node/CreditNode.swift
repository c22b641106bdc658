import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import Logging
import Policy
import Scoring

@main
struct CreditNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credit-node",
        abstract: "CreditLedger node: keys, genesis, the dev ledger and client commands.",
        discussion: """
        Examples:
          credit-node run --config .build/local-network/samr-330106/node.json   # a consortium node (Network/local/setup.sh writes it)
          credit-node dev --data-dir /tmp/ledger                 # single-node dev ledger on 127.0.0.1:8480
          credit-node submit --key /tmp/ledger/keys/dev.key --genesis /tmp/ledger/genesis.json --file Genesis/examples/penalty.json
          credit-node keygen --member samr-330106 --out keys/
          credit-node genesis --members Genesis/example-consortium.json --keys-dir keys/ --out genesis.json
          credit-node verifier-keys --genesis genesis.json
          credit-node consent --key keys/bank-a.key --subject 91330106MA27XKT2XT --grantee bank-a --purpose loan_application --days 90 --evidence form.pdf
          credit-node query --key keys/bank-a.key --policy credit-grade --subject 91330106MA27XKT2XT --purpose loan_application
        """,
        version: Release.line(tool: "credit-node"),
        subcommands: [Run.self, Dev.self, Keygen.self, MakeGenesis.self, VerifierKeys.self, Submit.self, Revoke.self, Demo.self, ShowCheckpoint.self,
                      ReceiptFetch.self, ExportChain.self, DemoData.self, Score.self, Rescore.self,
                      QueryCommand.self, ConsentCommand.self, InstallPolicy.self, InstallModel.self, Erase.self, Approve.self])

    static func main() async {
        failExitWhenStandardOutputIsLost()
        // Before any task runs: Swift tasks run on the event loops that serve HTTP and P2P, so
        // a request is read, evaluated and answered without hopping between thread pools.
        TaskThreads.runOnEventLoops()
        await main(nil)
    }
}

/// A command sent again whose derived nonce a committed transaction holds (its first copy):
/// says so on standard error and gives the answer to print, naming that transaction.
func sentBefore(_ c: LedgerClient.CommittedTransaction, what: String, then note: String = "") -> [String: Any] {
    FileHandle.standardError.write(Data("already on the ledger: \(what) was sent before and committed as transaction \(c.id) at height \(c.height)\(note)\n".utf8))
    return ["id": c.id, "status": "committed", "height": c.height, "log_index": c.logIndex, "sent_before": true]
}

func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(1)
}

/// `--log-level`: a level by name, or an error naming the ones there are (a misspelt level
/// used to run the node at info without a word).
func parseLogLevel(_ name: String) throws -> Logger.Level {
    guard let level = Logger.Level(rawValue: name) else { throw fail("--log-level must be one of \(NodeConfig.logLevels), got \(name)") }
    return level
}

func nowMillis() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

/// The genesis a client command builds its transaction against. The node's copy is fetched
/// over plain HTTP, so it is only trusted once it matches the genesis file the member keeps
/// (`trusted`): a node or a man in the middle serving its own genesis could otherwise name
/// itself custodian and read the payloads sealed to it. `required` says why a command may
/// not go without the file; commands that send nothing secret take the node's word without it.
///
/// `signers`: key files the command signs with, each checked against the genesis before
/// anything is sent: another ledger's key was sent, and left a `bad_signature` record in the
/// subject's query log for good (found by black-box testing).
func consortiumGenesis(_ client: LedgerClient, trusted file: String?, required: String? = nil, signers: [MemberSecretKeys] = []) throws -> Genesis {
    let genesis = try consortiumGenesisUnchecked(client, trusted: file, required: required)
    for keys in signers {
        do { _ = try genesis.member(holding: keys) } catch let e as LedgerError { throw fail("\(e.reason); nothing was sent") }
    }
    return genesis
}

private func consortiumGenesisUnchecked(_ client: LedgerClient, trusted file: String?, required: String?) throws -> Genesis {
    guard let file else {
        if let required { throw fail("--genesis FILE is required: \(required)") }
        return try client.genesis()
    }
    let trusted = try Genesis(file: file)
    let served = try client.genesis()
    guard served.hash == trusted.hash else {
        throw fail("the node at \(client.baseURL) serves genesis \(served.hash.hexString.prefix(16))… (chain \(served.chainID)), "
                   + "not the one in \(file) (\(trusted.hash.hexString.prefix(16))…, chain \(trusted.chainID)); nothing was sent")
    }
    return trusted
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a consortium node: BFT consensus with the other validators, P2P, HTTP API.",
        discussion: """
        Example (Network/local/setup.sh writes one config per member):
          credit-node run --config .build/local-network/samr-330106/node.json
        The config file (JSON; paths relative to the directory of the path given, a symlink's own)
        names the genesis, the member's key file and the data directory (made if missing), and the
        p2p and http (operator: every route, keep it private) listen addresses; optionally
        member_http (the routes other members use), peers (default: the p2p_address of each genesis
        member), timeouts (consensus, in ms), log_level, commit_wait_seconds, http_max_connections and
        http_max_connections_per_client. README.md lists each. A member with the validator role
        votes; any other member follows (checks and stores every block, never votes). SIGTERM or
        SIGINT stops it cleanly.
        """)

    @Option(help: "Node configuration file (JSON).") var config: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (overrides the config file).") var logLevel: String?

    func run() async throws {
        Allocator.keepFreedMemory()
        var logger = Logger(label: "credit-node")
        if let logLevel { logger.logLevel = try parseLogLevel(logLevel) }
        else if let level = (try? NodeConfig.load(path: config).0.log_level) ?? nil { logger.logLevel = Logger.Level(rawValue: level) ?? .info }
        await runningNode { try await NetworkNode.run(configPath: config, logger: logger) }
    }
}

/// Runs a node until it stops, reporting an error with `fail`, then ends the process at once
/// (`leaveNodeProcess`) with the error's exit status, or 0 after a clean stop (1 when the node
/// gave up waiting for its store's background work on the way out).
func runningNode(_ node: () async throws -> Void) async -> Never {
    do {
        try await node()
    } catch let e as ExitCode {
        leaveNodeProcess(status: e.rawValue)
    } catch {
        leaveNodeProcess(status: fail("\(error)").rawValue)
    }
    leaveNodeProcess(status: 0)
}

struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the single-node dev ledger (creates genesis and keys on first start).",
        discussion: """
        Example:
          credit-node dev --data-dir /tmp/ledger --http 127.0.0.1:8480
        The API address is written to DATA_DIR/http.addr once the node listens (use --http 127.0.0.1:0 for any free port).
        """)

    @Option(help: "Data directory (genesis.json, keys/, ledger/).") var dataDir: String
    @Option(help: "HTTP listen address host:port.") var http: String = "127.0.0.1:8480"
    @Option(help: "A second listener host:port for other members: queries, policies, proofs and submissions only (its URL goes to DATA_DIR/member-http.addr).")
    var memberHttp: String?
    @Option(help: "Commit at most one block per this many milliseconds while transactions are pending (0: as soon as the previous block is durable).")
    var blockIntervalMs: Int = 200
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"
    @Option(help: "On first start, install the scoring models in this directory (*.json) in the new genesis.")
    var models: String?
    @Option(help: "On first start, install the query policies in this directory (*.json) in the new genesis.")
    var policies: String?
    @Option(help: "Close an HTTP connection that sends nothing for this many seconds, between requests or within one (1-3600).")
    var httpIdleTimeoutSeconds: Int = 30
    @Option(help: "Open HTTP connections each listener accepts at once; more wait until one closes (1-100000).")
    var httpMaxConnections: Int = LedgerAPI.maxConnections
    @Option(help: "Open HTTP connections one client address (IPv4, or IPv6 /64) may hold on a listener; more are answered 429 (1-100000).")
    var httpMaxConnectionsPerClient: Int = LedgerAPI.maxConnectionsPerClient

    func run() async throws {
        Allocator.keepFreedMemory()
        guard let (host, port) = Genesis.listenHostAndPort(http) else { throw fail("--http must be host:port (a host without spaces or slashes, a port of 0-65535), got \(http)") }
        guard (0...60_000).contains(blockIntervalMs) else { throw fail("--block-interval-ms must be 0-60000") }
        guard (1...3600).contains(httpIdleTimeoutSeconds) else { throw fail("--http-idle-timeout-seconds must be 1-3600") }
        guard LedgerAPI.maxConnectionsRange.contains(httpMaxConnections) else { throw fail("--http-max-connections must be 1-100000") }
        guard LedgerAPI.maxConnectionsRange.contains(httpMaxConnectionsPerClient) else { throw fail("--http-max-connections-per-client must be 1-100000") }
        let members = try memberHttp.map { address -> (host: String, port: Int) in
            guard let (h, p) = Genesis.listenHostAndPort(address) else { throw fail("--member-http must be host:port (a host without spaces or slashes, a port of 0-65535), got \(address)") }
            return (h, p)
        }
        // Before the ledger is opened or made (as `run` does).
        let listeners = [LedgerAPI.ListenAddress(field: "--http", address: http, host: host, port: port)]
            + (members.map { [LedgerAPI.ListenAddress(field: "--member-http", address: memberHttp ?? "", host: $0.host, port: $0.port)] } ?? [])
        if let (l, why) = LedgerAPI.listenProblem(listeners) { throw fail("\(l.field) \(l.address) \(why) change \(l.field); nothing was started") }
        var logger = Logger(label: "credit-node")
        logger.logLevel = try parseLogLevel(logLevel)
        await runningNode {
            try await DevNode.run(dataDirectory: dataDir, host: host, port: port,
                                  blockInterval: .milliseconds(blockIntervalMs), logger: logger,
                                  models: try models.map { try loadModels(directory: $0) } ?? [],
                                  policies: try policies.map { try PolicyFiles.read(directory: $0) } ?? [],
                                  httpIdleTimeoutSeconds: httpIdleTimeoutSeconds, httpMaxConnections: httpMaxConnections,
                                  httpMaxConnectionsPerClient: httpMaxConnectionsPerClient, memberHTTP: members)
        }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a member's Ed25519 signing key and X25519 encryption key.",
        discussion: """
        Writes OUT/MEMBER.key (secret, mode 0600) and OUT/MEMBER.pub.json (public keys and note verifier key).
        Neither is ever overwritten. When MEMBER.key exists but MEMBER.pub.json does not (a crash between
        the two), it keeps the key and writes the public file from it.
        Example:
          credit-node keygen --member samr-330106 --out keys/
        """)
    @Option(help: "Member id (1-32 of a-z 0-9 . - _).") var member: String
    @Option(help: "Output directory.") var out: String

    func run() throws {
        guard Genesis.isValidMemberID(member) else {
            throw fail("member id \"\(member)\" must be 1-32 characters of a-z 0-9 . - _, starting with a letter or digit")
        }
        // `genesis` refuses it; said here, before keys are made for it (found by black-box testing).
        guard member != Genesis.unknownRequester else {
            throw fail("member id \"\(member)\" is reserved (audit records name it as the requester of a query whose requester is not a valid member id); choose another")
        }
        // A file there was reported as a raw Foundation error (found by black-box testing).
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw fail("--out \(out) is a file; name the directory to write \(member).key and \(member).pub.json in")
        }
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw fail("cannot create directory \(out): \((error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription)")
        }
        // "keys/" and "keys" name the same directory ("keys//dev.key" was printed).
        let directory = out.count > 1 && out.hasSuffix("/") ? String(out.dropLast()) : out
        let keyPath = "\(directory)/\(member).key", pubPath = "\(directory)/\(member).pub.json"
        let keys: MemberSecretKeys
        var kept = false
        guard FileManager.default.fileExists(atPath: keyPath) || !FileManager.default.fileExists(atPath: pubPath) else {
            throw fail("\(pubPath) exists without its key \(keyPath); a public file is never overwritten: remove it or choose another --out")
        }
        do {
            if FileManager.default.fileExists(atPath: keyPath) && !FileManager.default.fileExists(atPath: pubPath) {
                keys = try MemberSecretKeys.load(from: keyPath)
                guard keys.memberID == member else { throw fail("\(keyPath) holds the key of \(keys.memberID), not \(member)") }
                kept = true
            } else {
                keys = MemberSecretKeys(memberID: member)
                try keys.write(to: keyPath)
            }
            let verifier = NoteVerifier(name: member, publicKey: keys.signing.publicKey)
            let pub: [String: Any] = ["member": member, "ed25519_public_key": keys.signing.publicKey.bytes.base64String,
                                      "x25519_public_key": keys.encryption.publicKey.bytes.base64String,
                                      "verifier_key": verifier.verifierKey]
            try DurableFile.create(atPath: pubPath, contents: JSONView.data(pub), mode: 0o644)
            print(kept ? "kept the existing \(keyPath); wrote the missing \(pubPath) from it" : "wrote \(keyPath) (mode 0600) and \(pubPath)")
            print("verifier key: \(verifier.verifierKey)")
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct MakeGenesis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "genesis",
        abstract: "Build a genesis file from a members file and the members' public key files.",
        discussion: """
        The members file (see Genesis/README.md) names the chain id and each member's id, name, roles and addresses;
        public keys come from KEYS_DIR/ID.pub.json as written by `credit-node keygen`.
        Example:
          credit-node genesis --members Genesis/example-consortium.json --keys-dir keys/ --out genesis.json
        """)
    @Option(help: "Members file (JSON).") var members: String
    @Option(help: "Directory holding MEMBER.pub.json files.") var keysDir: String
    @Option(help: "Where to write the genesis file.") var out: String

    struct MembersFile: Decodable {
        struct Entry: Decodable {
            var id: String; var name: String; var roles: [String]; var p2p_address: String?; var http_address: String?
        }
        var chain_id: String
        var genesis_time: String
        var score_endorsements_required: Int?
        var members: [Entry]
        /// Scoring model files installed in genesis, relative to the members file.
        var models: [String]?
        /// Query policy files installed in genesis, relative to the members file.
        var policies: [String]?
    }

    func run() throws {
        let data = Data(try readFile(members, limit: 1 << 20, what: "members file"))
        let file: MembersFile
        // The genesis made from it is permanent: a key given twice must not be settled silently by
        // taking one of them (found by black-box testing), nor a misspelt field dropped.
        // Only its duplicate-key finding is taken from the strict parser (written for scoring
        // models, it has limits and wording of its own; JSONDecoder judges the rest).
        do { _ = try StrictJSONParser.parse(Array(data)) } catch where "\(error)".contains("appears twice in one object") {
            throw fail("\(members) is not a members file: \(error)")
        } catch {}
        do { file = try JSONDecoder().decode(MembersFile.self, from: data) } catch { throw fail("\(members) is not a members file: \(DecodingProblem.describe(error, data: data))") }
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        let known: Set<String> = ["chain_id", "genesis_time", "score_endorsements_required", "members", "models", "policies"]
        let knownMember: Set<String> = ["id", "name", "roles", "p2p_address", "http_address"]
        if let unknown = object?.keys.filter({ !known.contains($0) }).sorted().first {
            throw fail("\(members): unknown field \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        for entry in object?["members"] as? [[String: Any]] ?? [] {
            if let unknown = entry.keys.filter({ !knownMember.contains($0) }).sorted().first {
                throw fail("\(members): member \(entry["id"] as? String ?? "?"): unknown field \"\(unknown)\" (known: \(knownMember.sorted().joined(separator: ", ")))")
            }
        }
        guard !FileManager.default.fileExists(atPath: out) else {
            throw fail("\(out) exists; a genesis file is never overwritten (its hash identifies the chain)")
        }
        var list: [Member] = []
        for e in file.members {
            guard Genesis.isValidMemberID(e.id) else {
                throw fail("member id \"\(e.id)\" must be 1-32 characters of a-z 0-9 . - _, starting with a letter or digit")
            }
            let path = "\(keysDir)/\(e.id).pub.json"
            guard let pubData = try? readInputFile(path, limit: 64 << 10, what: "public key file"),
                  let pub = try? JSONSerialization.jsonObject(with: Data(pubData)) as? [String: Any],
                  let ed = (pub["ed25519_public_key"] as? String).flatMap({ [UInt8](base64: $0) }),
                  let x = (pub["x25519_public_key"] as? String).flatMap({ [UInt8](base64: $0) }) else {
                throw fail("cannot read public keys of \(e.id) from \(path) (run credit-node keygen --member \(e.id) --out \(keysDir))")
            }
            guard pub["member"] as? String == e.id else {
                throw fail("\(path) holds the keys of \(pub["member"] as? String ?? "nobody"), not \(e.id)")
            }
            var roles = Set<Role>()
            for r in e.roles {
                guard let role = Role(rawValue: r) else { throw fail("member \(e.id): unknown role \(r)") }
                roles.insert(role)
            }
            list.append(Member(id: e.id, name: e.name, roles: roles, signingKey: try Ed25519PublicKey(bytes: ed),
                               encryptionKey: try X25519PublicKey(bytes: x), p2pAddress: e.p2p_address, httpAddress: e.http_address))
        }
        do {
            let base = URL(fileURLWithPath: members).deletingLastPathComponent()
            let models = try (file.models ?? []).map { try loadModel(path: $0.hasPrefix("/") ? $0 : base.appendingPathComponent($0).path) }
            var bytes = try Genesis.render(chainID: file.chain_id, genesisTime: file.genesis_time, members: list,
                                           scoreEndorsementsRequired: file.score_endorsements_required ?? 0, models: models)
            let policyFiles = try (file.policies ?? []).map { p -> (source: String, bytes: [UInt8]) in
                let path = p.hasPrefix("/") ? p : base.appendingPathComponent(p).path
                return (path, try readFile(path))
            }
            if !policyFiles.isEmpty {
                let policies = try PolicyFiles.forGenesis(policyFiles, members: try Genesis(bytes: bytes))
                bytes = try Genesis.render(chainID: file.chain_id, genesisTime: file.genesis_time, members: list,
                                           scoreEndorsementsRequired: file.score_endorsements_required ?? 0, models: models, policies: policies)
            }
            // Whole or not at all: a partial genesis.json would block every rerun (it is never overwritten).
            try DurableFile.create(atPath: out, contents: Data(bytes), mode: 0o644)
            let g = try Genesis(bytes: bytes)
            print("wrote \(out): chain \(g.chainID), \(g.members.count) members, \(g.validators.count) validators (quorum \(g.quorum)), "
                  + "\(g.scoreEndorsementsRequired) score endorsement(s) required")
            for m in g.models { print("model \(m.name) v\(m.version) sha256 \(m.hash.hexString)") }
            for p in g.policies { print("policy \(p.name) v\(p.version) sha256 \(p.hash.hexString)") }
            print("genesis hash \(g.hash.hexString)")
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct VerifierKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verifier-keys",
        abstract: "Print each validator's C2SP note verifier key (name+hexid+base64), one per line, for standard tlog tools.",
        discussion: """
        Only validators cosign checkpoints, so only their keys are printed (--all-members prints every
        member's). A standard signed-note verifier (Go's note.Open) accepts a note that ONE listed key
        signed: it knows no quorum. To trust a checkpoint as the consortium's, check it with
        credit-verify, or with a tool that requires the quorum (n - floor((n-1)/3) of the n keys).

        Example:
          credit-node verifier-keys --genesis /tmp/ledger/genesis.json
        """)
    @Option(help: "Genesis file.") var genesis: String
    @Flag(help: "Follow each key with a tab and the member's roles (the lines are then no longer plain verifier keys).")
    var withRoles = false
    @Flag(help: "Print every member's key, not only the validators' (members that are not validators never sign checkpoints).")
    var allMembers = false

    func run() throws {
        do {
            let g = try Genesis(file: genesis)
            for m in allMembers ? g.members : g.validators {
                print(withRoles ? "\(m.verifierKey)\t\(Role.allCases.filter(m.roles.contains).map(\.rawValue).joined(separator: ","))" : m.verifierKey)
            }
            let quorum = g.validators.count - g.faultTolerance
            let which = allMembers ? "of the \(g.validators.count) validators' keys (\(g.validators.map(\.id).joined(separator: ", ")))" : "of these \(g.validators.count) validator keys"
            FileHandle.standardError.write(Data("# a checkpoint is the consortium's when \(quorum) \(which) signed it; standard note verifiers accept one: check the quorum with credit-verify\n".utf8))
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build, encrypt, sign and send an attestation from a JSON file; waits for its commit.",
        discussion: """
        The payload is sealed to the custodians named in the genesis file, which must be the genesis the
        node serves. The nonce is derived from the key and the file's bytes, so sending the same file
        again (say after a timeout, not knowing whether the first copy committed) commits it at most
        once: when the first copy is on the ledger, the command prints where it committed (with
        "sent_before": true) and exits 0; while it waits for a block, the second copy is refused as a
        replay. The transaction id is printed before sending.
        With --corrects RECORD_ID --reason CODE the file is the corrected version of one of this
        member's records (an attestation or an earlier correction), sent as a correction: the
        record's scores and answers then use it. The reason is a code, not free text, since it is
        in the clear on every node. `credit-node revoke` ends a record instead.
        Examples:
          credit-node submit --node http://127.0.0.1:8480 --genesis /tmp/ledger/genesis.json \\
            --key /tmp/ledger/keys/dev.key --file Genesis/examples/penalty.json
          credit-node submit --node http://127.0.0.1:8480 --genesis /tmp/ledger/genesis.json \\
            --key /tmp/ledger/keys/dev.key --file corrected-penalty.json --corrects RECORD_ID --reason data_error
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "The consortium's genesis file, as distributed to its members; the node must serve the same. Required: the payload is sealed to the custodians it names.")
    var genesis: String?
    @Option(help: "Secret key file of the issuing member.") var key: String
    @Option(help: "Attestation JSON file.") var file: String
    @Option(help: "Transaction nonce (default: derived from the key and the file, so a resent file is refused as a replay).")
    var nonce: UInt64?
    @Option(help: "Send the file as a correction of this record (transaction id, hex) of the same member.") var corrects: String?
    @Option(help: "With --corrects: why, as a reason code (data_error, court_overturned, credit_repair, …).") var reason: String?

    func run() throws {
        do {
            let keys = try MemberSecretKeys.load(from: key)
            let bytes = try readFile(file)
            let request = try AttestationRequest.decode(bytes, source: file)
            guard (corrects == nil) == (reason == nil) else { throw fail("--corrects and --reason go together") }
            let target = try corrects.map { try recordID($0) }
            let client = LedgerClient(baseURL: node)
            let g = try consortiumGenesis(client, trusted: genesis,
                                          required: "the payload is sealed to the custodians it names, and the node's own copy is not proof of who they are",
                                          signers: [keys])
            let derived = target.map { AttestationRequest.amendmentNonce(keys: keys, target: $0, file: bytes) } ?? AttestationRequest.nonce(keys: keys, file: bytes)
            let submission = try request.build(genesis: g, keys: keys, nonce: nonce ?? derived,
                                               issuedAtMillis: nowMillis(), correcting: target, reason: reason ?? "")
            let id = submission.transaction.id.hexString
            FileHandle.standardError.write(Data("submitting transaction \(id) (nonce \(submission.transaction.header.nonce))\n".utf8))
            do {
                let result = try client.submit(submission)
                print(String(decoding: JSONView.data(result), as: UTF8.self))
            } catch let f as LedgerClient.HTTPFailure where f.status == 409 && f.committed != nil && nonce == nil {
                // The nonce is derived from this key and this file: the transaction holding it is an
                // earlier send of the same file (sealed afresh, so under another id). Recorded once, as asked.
                print(String(decoding: JSONView.data(sentBefore(f.committed!, what: "this file", then: "; nothing was added")), as: UTF8.self))
            } catch let f as LedgerClient.HTTPFailure where f.status == 409 && f.code == LedgerError.Code.replay.rawValue && nonce != nil {
                // The nonce was given: it is the one in use, not this file's (found by black-box testing).
                throw fail("\(f); --nonce \(nonce!) was used before by \(keys.memberID): if that transaction is an earlier send of this file "
                           + "(a retry after a failed send), the event is recorded already; otherwise give a --nonce not used yet, or leave it out to derive one from the file")
            } catch let f as LedgerClient.HTTPFailure where f.status == 409 && f.code == LedgerError.Code.replay.rawValue {
                throw fail("\(f); if this file was sent before, its first copy may be on the ledger or waiting for a block: look for "
                           + "the record in the subject's history (GET /v1/subjects/USCC/history, served on a node's operator address, not on a member listener). To record the same event again on purpose, pass --nonce")
            } catch let f as LedgerClient.HTTPFailure {
                throw fail("\(f)")
            } catch {
                throw fail("\(error)\nwhether transaction \(id) committed is unknown; GET /v1/transactions/\(id) on your own node's operator address tells (a member listener does not serve it), and sending the same file again is safe")
            }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Revoke one of your member's records (an attestation or a correction): it no longer counts for scores or answers.",
        discussion: """
        Only the record's issuer may revoke it, and a revocation is final: a correction recorded after
        it does not bring the record back. The reason is a code, not free text, since it is in the clear
        on every node. The record stays on the ledger (the chain is append-only); to destroy its payload,
        the custodians erase it (`credit-node erase`). Sending the same revocation again is safe: the
        nonce is derived from the key and the record, so a second copy is refused as a replay.
        Example:
          credit-node revoke --node http://127.0.0.1:8480 --genesis /tmp/ledger/genesis.json \\
            --key /tmp/ledger/keys/dev.key --id RECORD_ID --reason issued_in_error
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "The consortium's genesis file, as distributed to its members; the node must serve the same.")
    var genesis: String?
    @Option(help: "Secret key file of the issuing member.") var key: String
    @Option(name: .customLong("id"), help: "Transaction id (hex) of the record to revoke.") var id: String
    @Option(help: "Why, as a reason code (issued_in_error, court_overturned, credit_repair, …).") var reason: String

    func run() throws {
        do {
            let keys = try MemberSecretKeys.load(from: key)
            let target = try recordID(id, option: "--id")
            let client = LedgerClient(baseURL: node)
            let g = try consortiumGenesis(client, trusted: genesis, required: nil, signers: [keys])
            let submission = try AttestationRequest.revocation(of: target, reason: reason, genesis: g, keys: keys,
                                                               nonce: AttestationRequest.amendmentNonce(keys: keys, target: target, file: nil),
                                                               issuedAtMillis: nowMillis())
            FileHandle.standardError.write(Data("submitting revocation \(submission.transaction.id.hexString)\n".utf8))
            do {
                print(String(decoding: JSONView.data(try client.submit(submission)), as: UTF8.self))
            } catch let f as LedgerClient.HTTPFailure where f.status == 409 && f.committed != nil {
                print(String(decoding: JSONView.data(sentBefore(f.committed!, what: "this revocation")), as: UTF8.self))
            } catch let f as LedgerClient.HTTPFailure {
                throw fail("\(f)")
            }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct ShowCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Print the node's latest signed checkpoint (C2SP tlog-checkpoint).")
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    func run() throws {
        do { print(try LedgerClient(baseURL: node).checkpoint(), terminator: "") } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}
