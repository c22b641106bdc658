import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import Policy
import Scoring

/// A score update and what it was computed from, gathered from a data directory or an export.
struct ScoreCase: LedgerStateReader {
    var update: LoggedTransaction
    var body: ScoreUpdateBody
    /// The subject's attestations and amendments before the update's as-of size, in log order.
    var records: [LoggedTransaction]
    var envelopes: [Hash: Envelope]
    var asOfMillis: UInt64
    var models: [InstalledModel]
    /// Inputs whose payload envelope is absent although no erase_records names them: withheld
    /// or lost, not crypto-shredded. (A data directory says so by its own missing-envelope
    /// marks; an export is read to its end for erasures.)
    var withheld: Set<Hash> = []

    // The state the update was validated against: the log up to its block (its as-of size suffices).
    func isNonceUsed(signer: String, nonce: UInt64) throws -> Bool { false }
    func committedTransaction(id: Hash) throws -> Transaction? { records.first { $0.transaction.id == id }?.transaction }
    func committedLogSize() throws -> UInt64 { body.asOfLogSize }
    func subjectRecords(_ subject: USCC, before logSize: UInt64, limit: Int) throws -> [LoggedTransaction] {
        Array(records.filter { $0.logIndex < logSize }.prefix(limit))
    }
    func blockTimestamp(coveringLogSize logSize: UInt64) throws -> UInt64? { logSize == body.asOfLogSize ? asOfMillis : nil }
    func installedModel(hash: Hash) throws -> InstalledModel? { models.first { $0.hash == hash } }
    func installedModels() throws -> [InstalledModel] { models }

    static func fromStore(_ store: ChainStore, id: Hash) throws -> ScoreCase {
        guard let loc = try store.location(of: id), let tx = try store.transaction(at: loc.logIndex) else {
            throw Failure("transaction \(id.hexString) is not in this store")
        }
        guard case .scoreUpdate(let u) = tx.body else { throw Failure("transaction \(id.hexString) is \(tx.kind.withArticle), not a score update") }
        let records = try store.subjectRecords(u.subject, before: u.asOfLogSize, limit: FieldLimits.scoreInputs + 1)
        var envelopes: [Hash: Envelope] = [:]
        var withheld = Set<Hash>()
        for r in records {
            envelopes[r.transaction.id] = try store.envelope(of: r.transaction.id)
            if envelopes[r.transaction.id] == nil, try store.isMissingEnvelope(r.transaction.id) { withheld.insert(r.transaction.id) }
        }
        guard let millis = try store.blockTimestamp(coveringLogSize: u.asOfLogSize) else {
            throw Failure("no block holds log entry \(u.asOfLogSize) − 1")
        }
        return ScoreCase(update: LoggedTransaction(logIndex: loc.logIndex, transaction: tx), body: u, records: records,
                         envelopes: envelopes, asOfMillis: millis, models: try store.installedModels(), withheld: withheld)
    }

    /// Two passes over an export: find the update, then collect its subject's records (before
    /// its as-of log size) and the models installed before the update itself, and read on to
    /// the end for erasures (an input erased after the update lacks its envelope rightly).
    static func fromExport(_ path: String, id: Hash, genesis: Genesis) throws -> ScoreCase {
        var found: LoggedTransaction? = nil
        var source = try ExportBlockSource(path: path)
        guard source.genesisBytes == genesis.bytes else { throw Failure("the export's genesis is not the trusted genesis") }
        source.limits = genesis.limits
        var logIndex: UInt64 = 0
        scan: while let block = try source.nextBlock() {
            for t in block.transactions {
                if Merkle.leafHash(t.transaction) == id {
                    found = LoggedTransaction(logIndex: logIndex, transaction: try Transaction.decode(t.transaction, maxBytes: Int.max))
                    break scan
                }
                logIndex += 1
            }
        }
        guard let update = found else { throw Failure("transaction \(id.hexString) is not in \(path)") }
        guard case .scoreUpdate(let u) = update.transaction.body else {
            throw Failure("transaction \(id.hexString) is \(update.transaction.kind.withArticle), not a score update")
        }
        source = try ExportBlockSource(path: path)
        source.limits = genesis.limits
        logIndex = 0
        var records: [LoggedTransaction] = []
        var ids = Set<Hash>()
        var envelopes: [Hash: Envelope] = [:]
        var models: [InstalledModel] = []
        var millis: UInt64? = nil
        var erased = Set<Hash>()
        // A model may be installed after the as-of point and before the update: read up to the
        // update for models and records, and to the end for erasures.
        while let block = try source.nextBlock() {
            let header = try BlockHeader.decode(block.header)
            if header.firstLogIndex < u.asOfLogSize && u.asOfLogSize <= header.logSize { millis = header.timestampMillis }
            for t in block.transactions {
                defer { logIndex += 1 }
                guard t.transaction.count > 1 else { continue }
                let kind = t.transaction[1]
                let beforeUpdate = logIndex < update.logIndex
                let record = kind == TransactionKind.attestation.rawValue || kind == TransactionKind.amendment.rawValue
                guard (beforeUpdate && record && logIndex < u.asOfLogSize) || kind == TransactionKind.governance.rawValue else { continue }
                let tx = try Transaction.decode(t.transaction, maxBytes: Int.max)
                let mine: Bool
                switch tx.body {
                case .attestation(let a): mine = a.subject == u.subject
                case .amendment(let a): mine = a.replacement.map { $0.subject == u.subject } ?? ids.contains(a.target)
                case .governance(let g):
                    // Models installed up to the update; erasures anywhere (an input erased
                    // after the update lacks its envelope rightly).
                    if g.action == .installModel, beforeUpdate {
                        models.append(InstalledModel(name: g.name, version: g.version, document: g.document, logIndex: logIndex))
                    }
                    erased.formUnion(g.erasedRecords)
                    mine = false
                default: mine = false
                }
                if mine {
                    records.append(LoggedTransaction(logIndex: logIndex, transaction: tx))
                    ids.insert(tx.id)
                    if let e = t.envelope { envelopes[tx.id] = try Envelope.decode(e, maxBytes: Int.max) }
                }
            }
        }
        guard let millis else { throw Failure("the export holds no block with log entry \(u.asOfLogSize) − 1") }
        let withheld = Set(records.filter { $0.transaction.body.envelopedRecord != nil && envelopes[$0.transaction.id] == nil && !erased.contains($0.transaction.id) }
            .map(\.transaction.id))
        return ScoreCase(update: update, body: u, records: records, envelopes: envelopes, asOfMillis: millis, models: models, withheld: withheld)
    }
}

struct Recompute: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "As a custodian or an auditor holding a custodian key: recompute a score update from its decrypted inputs.",
        discussion: """
        Checks that the inputs are exactly the subject's records before the update's as-of log size, that
        each is signed by a member allowed to attest it and precedes the update, decrypts each payload with the
        custodian key and checks it against its commitment and the clear attributes the model reads, then
        recomputes dimensions, points and grade exactly. Run `credit-verify chain` on the same source first
        to check the chain itself. An input without its payload envelope passes only if an erase_records
        names it: an export is read to its end for those; a data directory's own bookkeeping (its
        missing-envelope marks) is taken as it is, so check a copy someone else hands you as an export.
        Examples:
          credit-verify recompute ID --data-dir /tmp/ledger-scoring/ledger --genesis /tmp/ledger-scoring/genesis.json --key /tmp/ledger-scoring/keys/dev.key
          credit-verify recompute ID --export chain.export --genesis genesis.json --key keys/data-330106.key --json
        """)
    @Argument(help: "Score update transaction id (64 hex digits).") var id: String
    @Option(help: "A node's ledger store directory.") var dataDir: String?
    @Option(help: "An export file from `credit-node export`.") var export: String?
    @Option(help: "The genesis file you trust.") var genesis: String
    @Option(help: "A custodian's secret key file (creditledger-secret-key/v1).") var key: String
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        try requireOneSource(dataDir: dataDir, export: export, json: json)
        do {
            let g = try Genesis(file: genesis)
            guard let txID = [UInt8](hex: id), txID.count == 32 else { throw Failure("\(id) is not 64 hex digits") }
            let keys = try MemberSecretKeys.load(from: key)
            guard let custodian = g.member(keys.memberID), custodian.has(.custodian), custodian.encryptionKey == keys.encryption.publicKey else {
                throw Failure("\(key) is not the key of a custodian of this genesis")
            }
            let c: ScoreCase
            if let dataDir {
                let store = try ChainStore(path: dataDir, mode: .readOnly, verifyDepth: 1, blockCacheBytes: 8 << 20)
                guard store.genesis.bytes == g.bytes else { throw Failure("the store's genesis is not the trusted genesis") }
                c = try ScoreCase.fromStore(store, id: txID)
            } else {
                c = try ScoreCase.fromExport(export!, id: txID, genesis: g)
            }
            let u = c.body
            let validator = TransactionValidator.standard(genesis: g)
            // The update itself: this chain's, signed by a member allowed to score (an export is any file).
            try validator.checkStateless(Submission(transaction: c.update.transaction, envelope: nil))
            // Inputs complete, in order, preceding; model installed; recomputation from clear metadata.
            guard u.asOfLogSize <= c.update.logIndex else { throw Failure("as_of_log_size \(u.asOfLogSize) does not precede the update") }
            try validator.checkScoreUpdate(u, state: c)
            // Each input: signed by a member allowed to attest it; payload opened and matching.
            var rows: [[String: Any]] = []
            var lines: [String] = []
            var problems: [String] = []
            for r in c.records {
                let tx = r.transaction
                let envelope = c.envelopes[tx.id]
                do { try validator.checkStateless(Submission(transaction: tx, envelope: envelope), envelopeMayBeShredded: true) }
                catch { problems.append("input \(tx.id.hexString): \(error)") }
                if case .amendment(let a) = tx.body, let target = c.records.first(where: { $0.transaction.id == a.target }),
                   target.transaction.header.signer != tx.header.signer {
                    problems.append("input \(tx.id.hexString) amends a record of \(target.transaction.header.signer)")
                }
                var row: [String: Any] = ["id": tx.id.hexString, "log_index": r.logIndex, "kind": tx.kind.name, "issuer": tx.header.signer]
                var what = tx.kind.name
                if case .amendment(let a) = tx.body { what = a.action == .correction ? "correction" : "revocation"; row["target"] = a.target.hexString }
                var payloadState = "no payload"
                if let record = tx.body.envelopedRecord {
                    row["category"] = record.category.name
                    row["event_date"] = record.eventDate.description
                    what += " \(record.category.name) \(record.eventDate)"
                    if let envelope {
                        do {
                            let payload = try PayloadSeal.open(envelope, commitment: record.payloadCommitment, custodianID: keys.memberID, key: keys.encryption)
                            let bad = PayloadAgreement.mismatches(record: record, payload: payload)
                            if bad.isEmpty { payloadState = "decrypted, matches commitment and clear attributes" } else {
                                payloadState = "MISMATCH " + bad.map { "\($0.name): clear \($0.clear), payload \($0.payload)" }.joined(separator: "; ")
                                problems.append("input \(tx.id.hexString): clear attributes differ from the decrypted record: \(payloadState)")
                            }
                            row["payload"] = String(decoding: payload, as: UTF8.self)
                        } catch {
                            payloadState = "cannot open: \(error)"
                            problems.append("input \(tx.id.hexString): payload \(payloadState)")
                        }
                    } else if c.withheld.contains(tx.id) {
                        payloadState = "MISSING: no erase_records names it (withheld or lost), so the clear attributes cannot be checked against it"
                        problems.append("input \(tx.id.hexString): payload envelope missing, and no erase_records names the record (withheld or lost, not erased)")
                    } else {
                        payloadState = "erased by erase_records (crypto-shredded; the score follows from the clear metadata alone)"
                    }
                }
                row["payload_check"] = payloadState
                rows.append(row)
                lines.append("  \(String(r.logIndex).padding(toLength: 8, withPad: " ", startingAt: 0)) \(what.padding(toLength: 48, withPad: " ", startingAt: 0)) by \(tx.header.signer): \(payloadState)")
            }
            let installed = g.model(hash: u.modelHash) ?? c.models.first { $0.hash == u.modelHash }!
            let engine = ScoreEngine(genesis: g)
            let model = try engine.model(installed)
            let asOf = ScoreAsOf(logSize: u.asOfLogSize, date: try LedgerDate(chinaStandardTimeMillis: c.asOfMillis))
            let result = try engine.score(subject: u.subject, inputs: c.records.map(\.transaction), model: model, asOf: asOf, explain: true)
            let ok = problems.isEmpty
            let object: [String: Any] = [
                "ok": ok, "id": id, "subject": u.subject.code, "model": installed.name, "model_version": Int(installed.version),
                "model_sha256": installed.hash.hexString, "as_of_log_size": u.asOfLogSize, "as_of_date": asOf.date.description,
                "points": Int(u.points), "grade": u.grade.name, "inputs": rows, "problems": problems,
                "recomputed": ["points": Int(result.points), "grade": result.grade.name, "vetoes": result.vetoes,
                               "dimensions": result.dimensions.map { ["code": $0.code, "points": Int($0.points)] },
                               "indicators": result.indicators.map { ["id": $0.id, "points": $0.points, "matched": $0.matched] }] as [String: Any],
            ]
            guard ok else {
                throw failAndExit(json: json, object, text: "score update \(id) inputs do not check out:\n" + problems.joined(separator: "\n"))
            }
            emit(json: json, object, text: """
            OK: score update \(id) recomputes exactly
              subject     \(u.subject), model \(installed.name) v\(installed.version) (\(installed.hash.hexString.prefix(16))…)
              as of       log size \(u.asOfLogSize), \(asOf.date); update at log index \(c.update.logIndex), signed by \(c.update.transaction.header.signer), endorsed by \(u.endorsements.isEmpty ? "nobody (none required)" : u.endorsements.map(\.member).joined(separator: ", "))
              result      \(u.points) points, grade \(u.grade.name)\(result.vetoes.isEmpty ? "" : " (vetoes: \(result.vetoes.joined(separator: ", ")))")
              dimensions  \(u.dimensions.map { "\($0.code) \($0.points)" }.joined(separator: ", "))
              inputs      \(c.records.count): every one a record of the subject before the as-of size, issuer allowed, in log order
            \(lines.joined(separator: "\n"))
            """)
        } catch let e as ExitCode { throw e } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
    }
}

struct Provenance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a score provenance file offline: receipts of the update and every input, as-of block, model, recomputation.",
        discussion: """
        The file comes from GET /v1/transactions/ID/provenance. Completeness of the inputs (that no record of the
        subject was left out) cannot be proven by receipts; every validator checks it, and so does `credit-verify chain`.
        Example:
          credit-verify provenance provenance.json --genesis genesis.json
        """)
    @Argument(help: "Provenance file.") var file: String
    @Option(help: "The genesis file you trust.") var genesis: String
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        do {
            let g = try Genesis(file: genesis)
            let p = try readJSON(ScoreProvenance.self, from: file, what: "a score provenance file",
                                 data: try readInput(file, limit: InputLimit.provenance(g), what: "score provenance file"))
            let v = try p.verify(genesis: g)
            emit(json: json, [
                "ok": true, "subject": v.update.subject.code, "points": Int(v.update.points), "grade": v.update.grade.name,
                "model": v.model.name, "model_version": Int(v.model.version), "as_of_log_size": v.asOf.logSize,
                "as_of_date": v.asOf.date.description, "update_log_index": v.updateLogIndex,
                "inputs": v.inputs.map { ["id": $0.transaction.id.hexString, "log_index": $0.logIndex, "issuer": $0.transaction.header.signer] },
            ], text: """
            OK: score update of \(v.update.subject): \(v.update.points) points, grade \(v.update.grade.name)
              model \(v.model.name) v\(v.model.version) (\(v.model.logIndex == nil ? "genesis" : "installed at log index \(v.model.logIndex!)"))
              as of log size \(v.asOf.logSize) (\(v.asOf.date)); update at log index \(v.updateLogIndex), signed by \(v.signer)
              \(v.inputs.count) inputs, each with a verified receipt, issuer allowed, before the as-of size; recomputed exactly
            """)
        } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
    }
}
