import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit sample attestations to a node, then fetch and check an inclusion proof and checkpoints.",
        discussion: """
        Example (after `credit-node dev --data-dir /tmp/ledger`):
          credit-node demo --node http://127.0.0.1:8480 --key /tmp/ledger/keys/dev.key --count 200
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "Secret key file of a member that may attest government records.") var key: String
    @Option(help: "How many sample attestations to submit.") var count: Int = 200
    @Option(help: "Seed for the sample data.") var seed: UInt64 = 2026
    @Option(help: "The consortium's genesis file; when given, the node must serve the same.") var genesis: String?

    func run() throws {
        do { try demo() } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }

    func demo() throws {
        guard (1...5000).contains(count) else { throw fail("--count must be 1-5000") }
        let keys = try MemberSecretKeys.load(from: key)
        let client = LedgerClient(baseURL: node)
        let genesis = try consortiumGenesis(client, trusted: self.genesis, signers: [keys])
        print("== CreditLedger demo on \(genesis.chainID) (genesis \(genesis.hash.hexString.prefix(16))…)")

        let before = try? client.checkpoint()
        let requests = DemoRecords.requests(count: count, subjects: max(1, count / 4), seed: seed)
        let submissions = try requests.map { try $0.build(genesis: genesis, keys: keys, issuedAtMillis: nowMillis()) }
        let started = Date()
        let results = try client.submit(all: submissions, limits: genesis.limits)
        let seconds = Date().timeIntervalSince(started)
        print("submitted \(results.count) signed, encrypted attestations; all committed in \(String(format: "%.3f", seconds)) s")

        print("\n== bad input is refused with a reason")
        do {
            _ = try AttestationRequest(subject: "91330106MA27XKT2X5", subject_kind: "enterprise", category: "penalty",
                                       severity: "general", event_date: "2026-03-01", industry: "C13", attributes: nil,
                                       payload: .string("x")).build(genesis: genesis, keys: keys, issuedAtMillis: nowMillis())
        } catch { print("invalid USCC: \(error)") }
        do { _ = try client.submit(submissions[0]) } catch { print("replayed transaction: \(error)") }

        let first = submissions[0].transaction
        let status = try client.getJSON("/v1/transactions/\(first.id.hexString)")
        let proof = status["inclusion_proof"] as? [String: Any] ?? [:]
        let hashes = (proof["hashes"] as? [String] ?? []).compactMap { [UInt8](base64: $0) }
        let index = (proof["log_index"] as? NSNumber)?.uint64Value ?? 0
        let size = (proof["tree_size"] as? NSNumber)?.uint64Value ?? 0
        let note = status["checkpoint"] as? String ?? ""
        print("\n== transaction \(first.id.hexString)")
        print(String(decoding: JSONView.data(status["transaction"] ?? [:]), as: UTF8.self))
        print("\n== inclusion proof (RFC 9162): leaf \(index) of \(size), \(hashes.count) hashes")
        for h in hashes { print("  \(h.base64String)") }
        print("\n== checkpoint (C2SP signed note)\n\(note)")
        let (checkpoint, signers) = try Checkpoint.verify(signedNote: note, genesis: genesis)
        guard checkpoint.size == size,
              Merkle.verifyInclusion(leafHash: first.id, index: index, size: size, proof: hashes, root: checkpoint.rootHash) else {
            throw fail("inclusion proof does NOT verify against the checkpoint")
        }
        print("checked offline: checkpoint signed by \(signers.joined(separator: ", ")) (quorum \(genesis.quorum)); inclusion proof verifies against its root")

        if let before, let (old, _) = try? Checkpoint.verify(signedNote: before, genesis: genesis), old.size > 0 {
            let c = try client.getJSON("/v1/proofs/consistency?old=\(old.size)&new=\(checkpoint.size)")
            let path = (c["hashes"] as? [String] ?? []).compactMap { [UInt8](base64: $0) }
            guard Merkle.verifyConsistency(oldSize: old.size, newSize: checkpoint.size, oldRoot: old.rootHash,
                                           newRoot: checkpoint.rootHash, proof: path) else {
                throw fail("consistency proof does NOT verify")
            }
            print("consistency proof \(old.size) → \(checkpoint.size) verifies: the log only grew")
        }
        print("\nverifier keys for standard tools (golang.org/x/mod/sumdb/note):")
        for m in genesis.validators { print("  \(m.verifierKey)") }
    }
}
