import Foundation
import Hummingbird
import LedgerCore
import LedgerStore
import NIOCore
import Scoring
import Synchronization

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
            if let kind = modelKinds.kind(of: m) { o["kind"] = kind }
            o["installed_by"] = m.logIndex.map { "governance at log index \($0)" } ?? "genesis"
            return o
        }])
    }
}

/// The kind of each installed model, read once (`GET /v1/models` is open to any client of the
/// member listener, and parsed every model document on every request; found in review,
/// 2026-12-08). Installed models are few, set by governance; the cache holds at most 256.
final class ModelKinds: Sendable {
    private let kinds = Mutex<[HashKey: String?]>([:])

    func kind(of m: InstalledModel) -> String? {
        if let known = kinds.withLock({ $0[HashKey(m.hash)] }) { return known }
        let kind = (try? ScoringModel(document: m.document))?.kind.rawValue
        kinds.withLock { if $0.count < 256 { $0[HashKey(m.hash)] = kind } }
        return kind
    }
}
