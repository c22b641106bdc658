import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore
import LedgerCrypto
import LedgerStorage
import LedgerStore
import Policy

@main
struct CreditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credit-verify",
        abstract: "Offline verifier for banks and auditors: chains, receipts, checkpoint consistency.",
        discussion: """
        Needs no node and no network (except `consistency --from`, which only fetches a proof).
        Examples:
          credit-verify chain --data-dir /tmp/ledger/ledger --genesis /tmp/ledger/genesis.json
          credit-verify chain --export chain.export --genesis genesis.json --json
          credit-verify receipt receipt.json --genesis genesis.json
          credit-verify consistency old.checkpoint new.checkpoint --genesis genesis.json --from http://127.0.0.1:8480
          credit-verify recompute SCORE_ID --data-dir /tmp/ledger-scoring/ledger --genesis /tmp/ledger-scoring/genesis.json --key /tmp/ledger-scoring/keys/dev.key
          credit-verify provenance provenance.json --genesis genesis.json
          credit-verify consent-evidence --form form.pdf --receipt answer.json --genesis genesis.json
        """,
        version: Release.line(tool: "credit-verify"),
        subcommands: [Chain.self, ReceiptCommand.self, Consistency.self, Recompute.self, Provenance.self, ConsentEvidenceCommand.self])

    static func main() {
        failExitWhenStandardOutputIsLost()
        main(nil)
    }
}

/// The most the verifier reads of one input file. A receipt or an answer receipt holds a few
/// transactions (at most `AnswerReceipt.maxRecordFacts` records, each within the genesis's
/// transaction limit, up to 1 MiB) with their proofs, notes and certificates: megabytes at most.
/// A provenance file holds a receipt per input, up to `FieldLimits.scoreInputs` of them
/// (`provenance`). A checkpoint is at most `SignedNote.maxBytes`. Larger is another file, or one
/// made to exhaust memory.
enum InputLimit {
    static let document = 256 << 20
    static let checkpoint = SignedNote.maxBytes
    static let proof = 1 << 20

    /// A provenance file under `genesis`: every receipt at its largest, and room to spare.
    static func provenance(_ genesis: Genesis) -> Int {
        max(document, (FieldLimits.scoreInputs + 2) * (genesis.limits.maxTransactionBytes * 4 / 3 + 4 * SignedNote.maxBytes + (64 << 10)))
    }
}

/// The bytes of an input file, within `limit` (`readInputFile`).
func readInput(_ path: String, limit: Int = InputLimit.document, what: String) throws -> Data {
    do { return Data(try readInputFile(path, limit: limit, what: what)) } catch { throw Failure("\(error)") }
}

/// A JSON document of type `T` from `data`, read from `path`; the error says which file and
/// what it should have been.
func readJSON<T: Decodable>(_ type: T.Type, from path: String, what: String, data: Data) throws -> T {
    // Parsers disagree on a key given twice (the first value wins here, the last in most other
    // tools): a file verified here must read the same everywhere.
    if let duplicate = JSONDuplicateKeys.first(in: Array(data)) { throw Failure("\(path) is not \(what) any tool reads alike: \(duplicate)") }
    // Its numbers are integers: 443.0 read as 443, so two texts passed for one file.
    if let number = JSONIntegers.firstNonInteger(in: Array(data)) {
        throw Failure("\(path) is not \(what) any tool reads alike: the number \(number) is not written as an integer (this file holds integers only)")
    }
    do { return try JSONDecoder().decode(T.self, from: data) } catch { throw Failure("\(path) is not \(what): \(DecodingProblem.describe(error, data: data))") }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func emit(json: Bool, _ object: [String: Any], text: String) {
    if json { print(String(decoding: JSONView.data(object), as: UTF8.self)) } else { print(text) }
}

/// Exactly one of --data-dir and --export. With --json the mistake is answered in JSON too (it
/// was usage text on stderr alone; found by black-box testing), still with the usage status 64.
func requireOneSource(dataDir: String?, export: String?, json: Bool) throws {
    guard (dataDir == nil) == (export == nil) else { return }
    let message = "give exactly one of --data-dir or --export"
    guard json else { throw ValidationError(message) }
    print(String(decoding: JSONView.data(["ok": false, "reason": message]), as: UTF8.self))
    throw ExitCode(64)
}

/// Reports an error in the chosen format and exits non-zero.
func failAndExit(json: Bool, _ object: [String: Any], text: String) -> ExitCode {
    if json { print(String(decoding: JSONView.data(object), as: UTF8.self)) } else {
        FileHandle.standardError.write(Data("FAILED: \(text)\n".utf8))
    }
    return ExitCode(1)
}

/// A one-line progress bar with rate and time left, drawn on standard error when it is a terminal.
final class ProgressBar {
    let total: UInt64
    let started = Date()
    var lastDraw = Date.distantPast
    let enabled = isatty(2) == 1

    init(total: UInt64) { self.total = total }

    func update(blocks: UInt64, transactions: UInt64, force: Bool = false) {
        guard enabled, force || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = Date()
        let elapsed = max(0.001, Date().timeIntervalSince(started))
        let rate = Double(transactions) / elapsed
        let fraction = total == 0 ? 1 : min(1, Double(blocks) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let left = fraction > 0 ? elapsed / fraction - elapsed : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data(String(format: "\r[%@] %3.0f%% block %llu/%llu, %llu tx, %.0f tx/s, %.0f s left ",
                                                   bar, fraction * 100, blocks, total, transactions, rate, left).utf8))
    }

    func finish() { if enabled { FileHandle.standardError.write(Data("\n".utf8)) } }
}

struct Chain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a whole chain: genesis, links, certificates, every signature and role, roots, checkpoints.",
        discussion: """
        Reads a node's RocksDB store read-only (safe beside a running node) or an export written by \
        `credit-node export`. Prints a summary, or the first failure with block height, transaction \
        index and reason, and exits 1. In a data directory it also checks the indexes a node \
        answers queries from against the log: subjects, transaction index, nonces, consents, query \
        logs and request nonces (docs/FORMAT.md §13).

        Trust: give --genesis (the genesis file you hold), or anyone's look-alike chain with its own keys verifies. \
        Give --checkpoint with a checkpoint you obtained yourself (say, `credit-node checkpoint` from a member's node, \
        or one kept from an earlier audit): a copy that stops at a block boundary is otherwise a valid chain, and only \
        a checkpoint shows that no block after it was left out.

        Example:
          credit-verify chain --export chain.export --genesis genesis.json --checkpoint latest.checkpoint
        """)
    @Option(help: "A node's ledger store directory (DATA_DIR/ledger for the dev node).") var dataDir: String?
    @Option(help: "An export file from `credit-node export`.") var export: String?
    @Option(help: "The genesis file you trust; without it the chain's own genesis is used, its hash printed, and a warning given.") var genesis: String?
    @Option(name: .customLong("checkpoint"), help: "A checkpoint (signed note) you trust: the chain must reach its log size with its root (repeatable).")
    var checkpoints: [String] = []
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        try requireOneSource(dataDir: dataDir, export: export, json: json)
        let started = Date()
        var summary: ChainSummary
        var indexesUnchecked: String? = nil
        do {
            let trusted = try genesis.map { try Genesis(file: $0) }
            /// The trusted checkpoints, verified against the trusted genesis (else the chain's own).
            func notes(_ g: Genesis) throws -> [Checkpoint] {
                try checkpoints.map { path in
                    let data = try readInput(path, limit: InputLimit.checkpoint, what: "checkpoint")
                    do { return try Checkpoint.verify(signedNote: try SignedNote.text(of: Array(data)), genesis: g).0 }
                    catch { throw Failure("checkpoint \(path) does not verify against the genesis: \(error)") }
                }
            }
            if let dataDir {
                let store = try ChainStore(path: dataDir, mode: .readOnly, verifyDepth: 0, blockCacheBytes: 8 << 20)
                try checkGenesis(store.genesis.bytes, trusted: trusted)
                let bar = ProgressBar(total: store.head.height)
                var source = StoreBlockSource(store: store)
                // The head record is not trusted yet: it only sizes the indexes, within reason.
                summary = try ChainVerifier(genesis: trusted ?? store.genesis).verify(&source, expectedTransactions: min(Int(clamping: store.head.logSize), 1 << 24),
                                                                                      mustReach: try notes(trusted ?? store.genesis)) {
                    bar.update(blocks: $0, transactions: $1)
                }
                bar.finish()
                try summary.check(againstHead: store.head)
                let audit = try store.auditIndexesNoting()
                if let problem = audit.problem {
                    throw Failure("the store's indexes do not match its log, so neither do the answers its node gives from them: \(problem)")
                }
                indexesUnchecked = audit.unchecked
            } else {
                let source = try ExportBlockSource(path: export!)
                try checkGenesis(source.genesisBytes, trusted: trusted)
                let g = try trusted ?? Genesis(bytes: source.genesisBytes)
                let bar = ProgressBar(total: 0)
                var s = source
                s.limits = g.limits
                summary = try ChainVerifier(genesis: g).verify(&s, mustReach: try notes(g)) { bar.update(blocks: $0, transactions: $1) }
                bar.finish()
            }
        } catch let failure as ChainFailure {
            var object: [String: Any] = ["ok": false, "height": failure.height, "reason": failure.reason]
            if let i = failure.transactionIndex { object["transaction_index"] = i }
            if let l = failure.logIndex { object["log_index"] = l }
            throw failAndExit(json: json, object, text: failure.description)
        } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
        let seconds = Date().timeIntervalSince(started)
        emit(json: json, [
            "ok": true, "chain_id": summary.chainID, "genesis_sha256": summary.genesisHash.hexString, "blocks": summary.blocks,
            "transactions": summary.transactions, "signatures_checked": summary.signaturesChecked,
            "commit_certificates": summary.certificatesChecked, "checkpoints": summary.checkpointsChecked,
            "envelopes_erased": summary.envelopesShredded - summary.envelopesMissing, "envelopes_missing": summary.envelopesMissing,
            "head_hash": summary.headHash.hexString,
            "score_updates_checked": summary.scoreUpdatesChecked, "score_inputs_checked": summary.scoreInputsChecked,
            "models_installed": summary.modelsInstalled,
            "log_root": summary.logRoot.hexString, "seconds": seconds,
            "genesis_trusted": genesis != nil, "checkpoints_reached": summary.checkpointsReached,
            "indexes_checked": dataDir == nil ? "no" : indexesUnchecked == nil ? "all" : "partly", "indexes_unchecked": indexesUnchecked ?? "",
            "answers_without_standing_consent": summary.answersWithoutStandingConsent,
            "answers_without_standing_consent_first": summary.answersWithoutStandingConsentFirst.map { ["log_index": $0.logIndex, "reason": $0.reason] as [String: Any] },
        ], text: """
        OK: chain \(summary.chainID) is intact
          genesis      \(summary.genesisHash.hexString)\(genesis != nil ? " (the trusted file)" : "\n               WARNING: not checked against a genesis you hold (--genesis): compare this hash with the consortium's")
          complete     \(summary.checkpointsReached > 0 ? "reaches \(summary.checkpointsReached) trusted checkpoint\(summary.checkpointsReached == 1 ? "" : "s") with the same root" : "not checked: give --checkpoint; a copy cut short at a block boundary also reads as intact")
          blocks       \(summary.blocks) (\(summary.certificatesChecked) commit certificates and \(summary.checkpointsChecked) checkpoints checked)
          transactions \(summary.transactions) (signature, signer, role, replay guard, references)
          head         \(summary.headHash.hexString)
          log root     \(summary.logRoot.hexString) (size \(summary.transactions))
          indexes      \(dataDir == nil ? "none in an export" : indexesUnchecked.map { "subjects, transaction index and nonces match the log; WARNING: \($0)" } ?? "subjects, transaction index, nonces, consents, query logs and request nonces match the log")
          payloads     \(summary.envelopesShredded - summary.envelopesMissing) envelopes erased (crypto-shredded by erase_records)\(summary.envelopesMissing == 0 ? "" : "\n               WARNING: \(summary.envelopesMissing) envelopes missing that no erase_records names: lost or withheld by whoever made this copy, not erased")
          consents     \(summary.answersWithoutStandingConsent == 0 ? "every answer's consent stood where it was evaluated" : "WARNING: \(summary.answersWithoutStandingConsent) answers relied on a consent that did not stand (certified before validators checked it), first: " + summary.answersWithoutStandingConsentFirst.prefix(3).map { "log index \($0.logIndex): \($0.reason)" }.joined(separator: "; "))
          scores       \(summary.scoreUpdatesChecked) score updates recomputed exactly; \(summary.scoreInputsChecked) inputs each present, about the subject, from an issuer allowed to attest it, before the update; \(summary.modelsInstalled) models
          time         \(String(format: "%.2f", seconds)) s, \(String(format: "%.0f", Double(summary.transactions) / max(seconds, 0.001))) tx/s
        """)
    }

    func checkGenesis(_ bytes: [UInt8], trusted: Genesis?) throws {
        if let trusted, trusted.bytes != bytes {
            throw ChainFailure(height: 0, transactionIndex: nil, logIndex: nil,
                               reason: "the chain's genesis (hash \(SHA256.hash(bytes).hexString.prefix(16))…) is not the trusted genesis (\(trusted.hash.hexString.prefix(16))…)")
        }
    }
}

struct ReceiptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipt",
        abstract: "Check a receipt offline: a transaction receipt, or a query answer receipt with its facts and audit record.",
        discussion: """
        A transaction receipt (creditledger-receipt/v1): the transaction, its signer and role, its inclusion proof,
        a quorum-signed checkpoint. An answer receipt (creditledger-answer/v1, from `credit-node query --out`):
        the signed request, the result and its hash in the audit record, the answering node's signature, and
        inclusion proofs of the audit record, the consent and the score update under a quorum-signed checkpoint.
        """)
    @Argument(help: "Receipt file (from `credit-node receipt`, GET /v1/transactions/ID/receipt, or `credit-node query --out`).") var file: String
    @Option(help: "The genesis file you trust.") var genesis: String
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        do {
            let g = try Genesis(file: genesis)
            let (receipt, v): (Receipt, Receipt.Verified)
            switch try VerifiedReceipt.read(file, genesis: g) {
            case .answer(let answerReceipt, let verified): return answer(g, answerReceipt, verified)
            case .transaction(let r, let verified): (receipt, v) = (r, verified)
            }
            emit(json: json, ["ok": true, "transaction": JSONView.transaction(v.transaction), "height": v.height, "genesis_sha256": g.hash.hexString,
                              "log_index": receipt.log_index, "tree_size": v.checkpoint.size, "checkpoint_signers": v.checkpointSigners],
                 text: """
                 OK: transaction \(v.transaction.id.hexString)
                   \(v.transaction.kind.name) signed by \(v.transaction.header.signer), in block \(v.height) at log index \(receipt.log_index)
                   included in the log of size \(v.checkpoint.size), checkpoint signed by \(v.checkpointSigners.joined(separator: ", ")) (quorum \(g.quorum))
                   under the genesis you trust, SHA-256 \(g.hash.hexString) (compare it with the consortium's published hash)
                 """)
        } catch let e as ExitCode { throw e } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
    }

    func answer(_ g: Genesis, _ receipt: AnswerReceipt, _ v: AnswerReceipt.Verified) {
        // A policy installed by governance is named by its install fact, verified with the rest.
        let installed = v.facts.lazy.compactMap { fact -> String? in
            guard fact.role == "policy", case .governance(let body) = fact.transaction.body, body.action == .installPolicy,
                  body.documentHash == v.record.policy else { return nil }
            return "\(body.name)@\(body.version)"
        }.first
        // No policy (zeros) for a refusal made before the policy was looked up: said so, not as 64 zeros.
        let policy = v.record.policy == Hashes.zero ? "none (refused before a policy was looked up)"
            : g.policy(hash: v.record.policy).map { "\($0.name)@\($0.version)" } ?? installed ?? v.record.policy.hexString
        let facts = v.facts.map { "\($0.role) \($0.transaction.id.hexString.prefix(16))… at log index \($0.logIndex)" }
        // A refusal for a bad signature, an unknown requester or another chain shows nobody asking.
        let unauthenticated = v.record.outcome == .refused && QueryRecordBody.unauthenticatedRefusals.contains(v.record.reason)
        let claimed = unauthenticated ? "(unsigned: the requester named is only a claim) " : ""
        emit(json: json, ["ok": true, "outcome": receipt.outcome, "reason": receipt.reason, "result": receipt.result,
                          "requester": v.record.requester, "requester_authenticated": !unauthenticated, "subject": v.record.subject?.code ?? "", "policy": policy,
                          "purpose": v.record.purpose.name, "consent": v.record.consent == Hashes.zero ? "" : v.record.consent.hexString,
                          "as_of_height": receipt.as_of_height, "answered_by": receipt.answered_by,
                          "audit_record": v.auditRecordID.hexString, "tree_size": v.checkpoint.size,
                          "checkpoint_signers": v.checkpointSigners, "facts": facts, "genesis_sha256": g.hash.hexString],
             text: """
             OK: \(receipt.outcome) query \(v.auditRecordID.hexString)
               \(claimed)\(v.record.requester) asked about \(v.record.subject?.code ?? "(aggregate)") under \(policy) for \(v.record.purpose.name)\(receipt.reason.isEmpty ? "" : "; refused: \(receipt.reason)")
               \(v.record.outcome == .refused ? "refused" : "answered") by \(receipt.answered_by) at height \(receipt.as_of_height), answer signature verified
               result: \(receipt.result.isEmpty ? "(none)" : receipt.result)
               facts proven under the checkpoint of size \(v.checkpoint.size) signed by \(v.checkpointSigners.joined(separator: ", ")) (quorum \(g.quorum)):
                 \(facts.joined(separator: "\n    "))
               under the genesis you trust, SHA-256 \(g.hash.hexString) (compare it with the consortium's published hash)
             """)
    }
}

struct Consistency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that the log only grew between two signed checkpoints (RFC 9162 consistency proof).")
    @Argument(help: "Older checkpoint (signed note file).") var old: String
    @Argument(help: "Newer checkpoint (signed note file).") var new: String
    @Option(help: "The genesis file you trust.") var genesis: String
    @Option(help: "Proof file: one base64 hash per line.") var proof: String?
    @Option(help: "Fetch the proof from this node URL instead.") var from: String?
    @Option(help: "With --from: seconds the whole fetch may take (1-600).") var timeoutSeconds: Int = 60
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        do {
            let g = try Genesis(file: genesis)
            func load(_ path: String) throws -> Checkpoint {
                let data = try readInput(path, limit: InputLimit.checkpoint, what: "checkpoint")
                do { return try Checkpoint.verify(signedNote: try SignedNote.text(of: Array(data)), genesis: g).0 }
                catch { throw Failure("\(path): \(error)") }
            }
            let a = try load(old), b = try load(new)
            guard a.size <= b.size else { throw Failure("the old checkpoint (size \(a.size)) is larger than the new one (\(b.size))") }
            let hashes: [Hash]
            guard proof == nil || from == nil else { throw Failure("give --proof FILE or --from URL, not both") }
            if let proof {
                let text = String(decoding: try readInput(proof, limit: InputLimit.proof, what: "consistency proof file"), as: UTF8.self)
                // isNewline: a file with CRLF line ends reads like one with LF.
                let lines = text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespaces) }
                do { hashes = try Merkle.proofHashes(base64: lines, what: "\(proof): consistency proof") } catch { throw Failure("\(error)") }
            } else if let from {
                guard (1...600).contains(timeoutSeconds) else { throw Failure("--timeout-seconds must be 1-600, got \(timeoutSeconds)") }
                hashes = try fetchProof(from, a.size, b.size)
            } else {
                throw Failure("give --proof FILE or --from URL")
            }
            if hashes.isEmpty, a.size > 0, a.size < b.size {
                throw Failure("\(proof ?? "the node's reply") holds no proof hashes; a consistency proof from size \(a.size) to \(b.size) has at least one")
            }
            guard Merkle.verifyConsistency(oldSize: a.size, newSize: b.size, oldRoot: a.rootHash, newRoot: b.rootHash, proof: hashes) else {
                throw Failure(a.size == b.size
                    ? "the two checkpoints, each signed by a quorum, give different roots for the same log size \(a.size): evidence of a fork (at least f+1 validators signed both); keep both files"
                    : "consistency proof \(a.size) → \(b.size) does NOT verify: the log was rewritten, or the proof is wrong")
            }
            emit(json: json, ["ok": true, "old_size": a.size, "new_size": b.size],
                 text: "OK: the log of size \(b.size) extends the log of size \(a.size) (both checkpoints quorum-signed)")
        } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
    }

    /// Fetches the node's consistency proof within limits: the whole exchange within
    /// `--timeout-seconds`, a reply of at most `InputLimit.proof` bytes, with status 200. A server
    /// that trickled its reply held the verifier for good, and one that sent gigabytes had them
    /// read into memory (found by black-box testing, 2026-12-07).
    func fetchProof(_ base: String, _ old: UInt64, _ new: UInt64) throws -> [Hash] {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard let url = URL(string: "\(trimmed)/v1/proofs/consistency?old=\(old)&new=\(new)") else { throw Failure("bad URL \(base)") }
        let fetchSeconds = Double(timeoutSeconds)
        if trimmed.lowercased().hasPrefix("http://") {
            // In `poll`: URLSession spun a core while it waited (PlainHTTP).
            let reply: PlainHTTP.Reply
            do { reply = try PlainHTTP.exchange("GET", url, timeout: fetchSeconds, limit: InputLimit.proof) } catch let e as PlainHTTP.Failure {
                throw Failure(e.kind == .timedOut ? "cannot fetch the proof from \(url): no whole answer within \(Int(fetchSeconds)) s" : "cannot fetch the proof from \(url): \(e.description)")
            }
            return try proofHashes(Data(reply.body), status: reply.status, overLimit: reply.overLimit, declaredLength: reply.declaredLength ?? -1, url: url, old: old, new: new)
        }
        let fetch = BoundedFetch(limit: InputLimit.proof)
        guard fetch.run(URLRequest(url: url, timeoutInterval: fetchSeconds), requestTimeout: fetchSeconds, resourceTimeout: fetchSeconds,
                        wait: fetchSeconds + 5) else {
            throw Failure("cannot fetch the proof from \(url): no whole answer within \(Int(fetchSeconds)) s")
        }
        let (data, status, error, overLimit) = fetch.outcome
        if let error, !overLimit { throw Failure("cannot fetch the proof from \(url): \(transportProblem(error, timeout: fetchSeconds))") }
        return try proofHashes(data, status: status, overLimit: overLimit, declaredLength: fetch.declaredLength, url: url, old: old, new: new)
    }

    /// The proof in a node's reply, checked as `fetchProof` describes.
    func proofHashes(_ data: Data, status: Int, overLimit: Bool, declaredLength declared: Int64, url: URL, old: UInt64, new: UInt64) throws -> [Hash] {
        if overLimit {
            let said = declared > Int64(InputLimit.proof) ? "declared \(declared) bytes, over" : "sent more than"
            throw Failure("\(url) \(said) \(InputLimit.proof >> 20) MiB; a consistency proof is a few kilobytes")
        }
        guard status == 200 else {
            throw Failure("\(url) answered HTTP \(status), not a consistency proof: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = object["hashes"] as? [String] else {
            throw Failure("\(url) did not return a consistency proof: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        // Read as every tool reads it (FORMAT.md §14), and for the sizes asked: a reply that
        // repeated "hashes" was read by its last copy, and one naming other sizes was taken
        // (found by an independent verifier; the proof is checked against the signed
        // checkpoints either way, so this names the fault instead of a failed proof).
        if let duplicate = JSONDuplicateKeys.first(in: Array(data)) {
            throw Failure("\(url) did not return a consistency proof any tool reads alike: \(duplicate)")
        }
        for (key, asked) in [("old_size", old), ("new_size", new)] {
            if let said = object[key], (said as? NSNumber)?.uint64Value != asked || "\(said)" != "\(asked)" {
                throw Failure("\(url) answered with \(key) \(said), not the \(asked) asked for")
            }
        }
        do { return try Merkle.proofHashes(base64: list, what: "\(url): consistency proof") } catch { throw Failure("\(error)") }
    }
}

/// A receipt file read and checked against the genesis you trust: an answer receipt (from
/// `credit-node query --out`) or a transaction receipt, told apart by its `format`.
enum VerifiedReceipt {
    case answer(AnswerReceipt, AnswerReceipt.Verified)
    case transaction(Receipt, Receipt.Verified)

    static func read(_ path: String, genesis g: Genesis) throws -> VerifiedReceipt {
        let data = try readInput(path, what: "receipt")
        let format = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["format"] as? String
        if format == AnswerReceipt.format {
            let receipt = try readJSON(AnswerReceipt.self, from: path, what: "an answer receipt", data: data)
            return .answer(receipt, try receipt.verify(genesis: g))
        }
        if let format, format != Receipt.format {
            throw Failure("\(path) has format \"\(format.prefix(64))\"; this verifier reads \(Receipt.format) and \(AnswerReceipt.format)")
        }
        let receipt = try readJSON(Receipt.self, from: path, what: "a receipt", data: data)
        return .transaction(receipt, try receipt.verify(genesis: g, policyRules: PolicyRules()))
    }
}

/// Whether a consent on the ledger records this consent form: the form, and the evidence record
/// its recorder kept (`credit-node consent` writes it beside the form), give the evidence; a
/// receipt that proves the consent (the grant's own transaction receipt, or an answer receipt
/// naming it; or a revocation's transaction receipt, when the revocation recorded a form) gives
/// the ledger's, checked against genesis first. docs/PRIVACY.md §3.
struct ConsentEvidenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent-evidence",
        abstract: "Check that a consent on the ledger records a given consent form (with its evidence record).",
        discussion: """
        Examples:
          credit-verify consent-evidence --form form.pdf --record form.pdf.evidence.json --receipt answer.json --genesis genesis.json
          credit-verify consent-evidence --form form.pdf --record form.pdf.evidence.json --evidence HEX
        """)
    @Option(help: "The signed consent form.") var form: String
    @Option(help: "Its evidence record (default: the form's path + .evidence.json).") var record: String?
    @Option(help: "A receipt proving the consent: its transaction receipt (`credit-node receipt`; a grant's, or a revocation's made with --evidence) or an answer receipt that names the grant.") var receipt: String?
    @Option(help: "With --receipt: the genesis file you trust.") var genesis: String?
    @Option(help: "The consent's evidence as the ledger shows it (64 hex digits), instead of a receipt.") var evidence: String?
    @Flag(help: "Machine-readable output.") var json = false

    func run() throws {
        do {
            guard (receipt == nil) != (evidence == nil) else { throw Failure("give --receipt FILE (with --genesis) or --evidence HEX: the consent on the ledger to check") }
            let recordPath = record ?? form + ".evidence.json"
            let formHash: Hash
            do { formHash = try ConsentEvidence.hashForm(atPath: form, option: "--form") } catch { throw Failure((error as? LedgerError)?.reason ?? "\(error)") }
            // What a salted evidence is the hash of, passed off as a form, would match it as an
            // unsalted one (found in review, 2026-12-07).
            if ConsentEvidence.isCommitmentInput(atPath: form) {
                throw Failure("\(form) is not a consent form: it is the input of an evidence commitment (domain, salt and a form's hash)")
            }
            // A consent recorded before evidence was salted (2026-12-07) has no evidence record:
            // its evidence is the form's plain SHA-256.
            let unsalted = record == nil && !FileManager.default.fileExists(atPath: recordPath)
            var kept: ConsentEvidence.Record? = nil
            if !unsalted {
                do {
                    kept = try ConsentEvidence.Record.read(Array(try readInput(recordPath, limit: ConsentEvidence.maxRecordBytes, what: "evidence record")),
                                                           path: recordPath)
                } catch let f as Failure { throw f } catch { throw Failure("\(error)") }
                guard kept!.formSHA256 == formHash else {
                    throw Failure("\(recordPath) is the evidence record of another form (SHA-256 \(kept!.form_sha256)); \(form) has SHA-256 \(formHash.hexString)")
                }
            }
            let onLedger: Hash
            var consent: (id: Hash, about: String, action: String, signer: String)? = nil
            if let receipt {
                guard let genesis else { throw Failure("--receipt needs --genesis FILE, the genesis you trust") }
                let proven: [Transaction]
                switch try VerifiedReceipt.read(receipt, genesis: try Genesis(file: genesis)) {
                case .answer(_, let v): proven = v.facts.filter { $0.role == "consent" }.map(\.transaction)
                case .transaction(_, let v): proven = [v.transaction]
                }
                // A revocation may record a form too (the business's signed stop): its own
                // transaction receipt proves it. Answer receipts name grants only.
                guard let tx = proven.first, case .consent(let body) = tx.body else {
                    throw Failure("\(receipt) proves no consent (an answer receipt names the grant it relied on; a transaction receipt must be a consent's: a grant or a revocation)")
                }
                if body.action == .revoke && body.evidence == Hashes.zero {
                    throw Failure("\(receipt) proves revocation \(tx.id.hexString), which records no consent form (its evidence is all zeros: it was recorded without --evidence)")
                }
                onLedger = body.evidence
                let what = body.action == .grant
                    ? "grant \(tx.id.hexString) by \(tx.header.signer): \(body.subject.code) to \(body.grantee) for \(body.purpose.name)"
                    : "revocation \(tx.id.hexString) by \(tx.header.signer): \(body.subject.code) stops \(body.grantee) for \(body.purpose.name), ending grant \(body.target.hexString)"
                consent = (tx.id, what, body.action == .grant ? "grant" : "revoke", tx.header.signer)
            } else {
                guard let e = evidence.flatMap({ [UInt8](hex: $0) }), e.count == 32 else { throw Failure("--evidence must be 64 hex digits") }
                onLedger = e
            }
            let about = consent.map { " (\($0.about))" } ?? ""
            // A consent recorded before salting: its evidence is the form's plain hash. A record
            // beside the form is then another consent's (the form used again for a new grant),
            // set aside (it failed, blaming the record; found by black-box testing).
            if onLedger == formHash, kept?.evidenceHash != onLedger {
                var fields: [String: Any] = ["ok": true, "evidence": onLedger.hexString, "form_sha256": formHash.hexString, "salted": false,
                                             "consent": consent?.id.hexString ?? "", "action": consent?.action ?? ""]
                if kept != nil { fields["record_not_used"] = recordPath }
                let setAside = kept.map { "; \(recordPath) is for another consent of this form (evidence \($0.evidence)) and was not needed" } ?? ""
                emit(json: json, fields, text: "OK: the consent's evidence is \(form)'s plain SHA-256, unsalted (as consents were recorded before 2026-12-07)\(about)\(setAside)")
                return
            }
            guard let kept else {
                throw Failure("the consent's evidence \(onLedger.hexString) is not \(form)'s SHA-256 (\(formHash.hexString)), and there is no evidence record "
                    + "\(recordPath): a consent recorded since 2026-12-07 needs the one its recorder kept (--record FILE)")
            }
            // The record's `recorder` is not part of the commitment: a receipt names who signed
            // the consent; without one, the record's word is only repeated as its word. A record
            // naming another member than the signer is named as such (it passed as a plain OK,
            // and a failure did not say why; found by black-box testing).
            let otherRecorder = consent.flatMap { c in c.signer == kept.recorder ? nil : c.signer }
            guard onLedger == kept.evidenceHash else {
                let whose = otherRecorder.map { "; the record is \(kept.recorder)'s, and the consent was signed by \($0): look for \($0)'s record of this form" } ?? ""
                throw Failure("the consent's evidence \(onLedger.hexString) is not \(form) under \(recordPath)'s salt (that record gives evidence \(kept.evidence))\(whose)")
            }
            let recorder = consent == nil ? "; the record names \(kept.recorder) as its recorder (a receipt would show who signed the consent)"
                : otherRecorder.map { "; note: the record names \(kept.recorder) as its recorder, but \($0) signed the consent (the salt and form match all the same)" } ?? ""
            let given = consent == nil ? " (the evidence you gave; a receipt would prove it is on the ledger)" : ""
            var fields: [String: Any] = ["ok": true, "evidence": kept.evidence, "form_sha256": kept.form_sha256, "salted": true, "record_names_recorder": kept.recorder,
                                         "consent": consent?.id.hexString ?? "", "action": consent?.action ?? ""]
            if let otherRecorder { fields["consent_signer"] = otherRecorder; fields["recorder_differs"] = true }
            emit(json: json, fields,
                 text: "OK: the consent's evidence\(given) is \(form) under the salt in \(recordPath)\(about)\(recorder)")
        } catch {
            throw failAndExit(json: json, ["ok": false, "reason": "\(error)"], text: "\(error)")
        }
    }
}
