import Foundation
import Hummingbird
import LedgerCore
import LedgerCrypto
import LedgerStore
import Policy

// HTTP routes of the query service (docs/PRIVACY.md §8).
extension LedgerAPI {
    /// `GET /v1/policies`: every installed policy, with what it returns and to whom.
    func policies() throws -> Response {
        var list: [[String: Any]] = []
        for p in store.allPolicies() {
            var entry: [String: Any] = ["name": p.name, "version": Int(p.version), "sha256": p.hash.hexString,
                                        "installed": p.logIndex.map { "log index \($0)" } ?? "genesis"]
            // From the query service's parsed documents when there is one: this route is open to
            // any client of the member listener, and parsed every document on every request.
            let parsed: PolicyDocument? = if case .success(let service) = queries { try? service.document(p) }
                else { try? PolicyDocument(bytes: p.document, genesis: genesis) }
            if let d = parsed {
                entry["title"] = d.title
                entry["scope"] = d.scope.rawValue
                entry["callers"] = d.callerRoles.map { "role:\($0.rawValue)" }.sorted() + d.callerMembers.sorted().map { "member:\($0)" }
                entry["purposes"] = d.purposes.map(\.name)
                entry["consent_required"] = d.consentRequired
                entry["parameters"] = d.parameters.map(\.name)
                entry["parameter_specs"] = d.parameters.map(PolicyDocument.listing)
                entry["outputs"] = d.outputs.map(\.name)
            }
            list.append(entry)
        }
        return json(.ok, ["policies": list])
    }

    struct WireQuery: Decodable { var request: String }

    /// `POST /v1/queries` with `{"request": base64 signed query}`: 200 with the answer receipt,
    /// or 403 with the refusal receipt (its audit record is on the ledger either way).
    func query(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let service: QueryService
        switch queries {
        case .success(let s): service = s
        case .failure(let why):
            // The node's own configuration is at fault, not the request.
            return json(.serviceUnavailable, ["error": ["code": "queries_unavailable",
                                                        "message": "this node cannot answer queries: \(why.reason)"]])
        }
        let wire = try await readBody(request, context, as: WireQuery.self, limit: Self.queryBodyLimit)
        guard let bytes = [UInt8](base64: wire.request) else { throw LedgerError(.malformed, "\"request\" is not base64") }
        let outcome = try await service.handle(bytes)
        return Response(status: outcome.answered ? .ok : .forbidden, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: outcome.receipt.json())))
    }
}
