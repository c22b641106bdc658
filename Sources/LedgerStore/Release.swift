import LedgerCore

/// What this build is, for `--version` and `GET /v1/status`: the software's version and the
/// formats it reads and writes (docs/FORMAT.md), which decide whether two nodes, or a node and
/// a verifier, understand each other's data.
public enum Release {
    /// Raised with every change to what the tools accept or write.
    public static let version = "0.1.0"

    /// The formats, by the names and versions docs/FORMAT.md gives them.
    public static let formats: [(String, String)] = [
        ("transaction", "v\(Transaction.version)"),
        ("block", "v\(BlockHeader.version)"),
        ("envelope", "v\(Envelope.version)"),
        ("genesis", Genesis.format),
        ("store", ChainStore.storeFormat),
        ("receipt", Receipt.format),
        ("answer", AnswerReceipt.format),
    ]

    /// One line: `credit-node 0.1.0 (transaction v1, block v1, …)`.
    public static func line(tool: String) -> String {
        "\(tool) \(version) (" + formats.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")"
    }
}
