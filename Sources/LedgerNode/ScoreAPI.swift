import Foundation
import Hummingbird
import LedgerCore
import LedgerStore
import NIOCore
import Scoring

/// Score routes of the HTTP API (docs/SCORING.md §7.3).
extension LedgerAPI {
    /// `GET /v1/transactions/{id}/provenance`: a score update with receipts of all its inputs,
    /// checkable offline with `credit-verify provenance FILE --genesis genesis.json`.
    func scoreProvenance(_ idText: String) throws -> Response {
        guard let id = [UInt8](hex: idText), id.count == 32 else {
            throw LedgerError(.malformed, "transaction id \"\(idText)\" is not 64 hex digits")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(try store.scoreProvenance(for: id))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: data)))
    }

    /// `GET /v1/models`: the scoring models installed on this chain.
    func models() -> Response {
        json(.ok, ["models": store.allModels().map { m -> [String: Any] in
            var o: [String: Any] = ["name": m.name, "version": Int(m.version), "sha256": m.hash.hexString, "bytes": m.document.count]
            // For tools that check a new version keeps its name's kind before anyone approves it.
            if let kind = (try? ScoringModel(document: m.document))?.kind.rawValue { o["kind"] = kind }
            o["installed_by"] = m.logIndex.map { "governance at log index \($0)" } ?? "genesis"
            return o
        }])
    }
}
