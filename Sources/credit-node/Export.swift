import ArgumentParser
import Foundation
import LedgerCore
import LedgerNode
import LedgerStore

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
            try checkOutput(out)
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

    func run() throws {
        do {
            if let out { try checkOutput(out) }
            let data = try LedgerClient(baseURL: node).get("/v1/transactions/\(id)/receipt")
            if let out { try writeOutput(data, to: out); print("wrote \(out)") } else { print(String(decoding: data, as: UTF8.self)) }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}
