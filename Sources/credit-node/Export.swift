import ArgumentParser
import Foundation
import LedgerCore
import LedgerNode
import LedgerStore
import Policy

struct ExportChain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Stream the whole chain to a portable export file for `credit-verify chain --export`.",
        discussion: """
        Opens the store read-only, so it works beside a running node. Format: docs/FORMAT.md §13.
        Example:
          credit-node export --data-dir /tmp/ledger --out chain.export
        """)
    @Option(help: "Node data directory (the one holding ledger/).") var dataDir: String
    @Option(help: "Export file to write.") var out: String

    func run() throws {
        do {
            try checkOutput(out, dataDirectory: dataDir)
            let store = try ChainStore(path: dataDir + "/ledger", mode: .readOnly, verifyDepth: 1)
            let blocks = try ChainExport.write(store: store, to: out)
            print("exported \(blocks) blocks, \(store.head.logSize) transactions to \(out)")
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct ReceiptFetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipt",
        abstract: "Write a self-contained receipt for a committed transaction (check it with `credit-verify receipt`).",
        discussion: "Example:\n  credit-node receipt 949d1c…96e6 --node http://127.0.0.1:8480 --out receipt.json")
    @Argument(help: "Transaction id (64 hex digits).") var id: String
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "Receipt file to write (default: standard output).") var out: String?
    @Option(help: "The consortium's genesis file; when given, the node must serve the same and the receipt is checked against it.") var genesis: String?

    func run() throws {
        // The id went into the URL unchecked and whatever came back was written, so a wrong
        // --node (or a broken node) left a file that was no receipt (found in review, 2026-12-06).
        guard let wanted = [UInt8](hex: id), wanted.count == 32 else { throw fail("the transaction id must be 64 hex digits, got \"\(id.prefix(80))\"") }
        do {
            if let out { try checkOutput(out, inputs: [genesis]) }
            let client = LedgerClient(baseURL: node)
            let data = try client.get("/v1/transactions/\(wanted.hexString)/receipt")
            let receipt: Receipt
            do { receipt = try JSONDecoder().decode(Receipt.self, from: data) } catch {
                throw fail("\(node) did not answer with a receipt (\(Receipt.format)) for \(wanted.hexString); nothing was written")
            }
            if let bytes = [UInt8](base64: receipt.transaction), case let served = Transaction.id(ofEncoded: bytes), served != wanted {
                throw fail("\(node) served a receipt for transaction \(served.hexString), not \(wanted.hexString); nothing was written")
            }
            // Checked as `credit-verify receipt` would, against the genesis the node serves (or
            // --genesis): a receipt that would not verify is not written.
            // (Its transaction, once it decodes, is the one checked above.)
            do { _ = try receipt.verify(genesis: try consortiumGenesis(client, trusted: genesis), policyRules: PolicyRules()) } catch let e as ExitCode { throw e } catch {
                throw fail("the receipt \(node) served for \(wanted.hexString) does not verify: \(error); nothing was written")
            }
            if let out { try writeOutput(data, to: out); print("wrote \(out)") } else { print(String(decoding: data, as: UTF8.self)) }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}
