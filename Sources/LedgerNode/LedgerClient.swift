import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore

/// A small blocking HTTP client for the node API, used by the CLI, the demo and the benchmarks.
public struct LedgerClient: Sendable {
    public let baseURL: String
    public let timeout: TimeInterval

    /// The environment `http_proxy` and `no_proxy` are read from: the process's, unless a test gives another.
    let environment: [String: String]

    public init(baseURL: String, timeout: TimeInterval = 60) {
        self.init(baseURL: baseURL, timeout: timeout, environment: ProcessInfo.processInfo.environment)
    }

    init(baseURL: String, timeout: TimeInterval, environment: [String: String]) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeout = timeout
        self.environment = environment
    }

    public struct HTTPFailure: Error, CustomStringConvertible {
        public let status: Int
        public let code: String
        public let message: String
        /// For a refused replay whose nonce a committed transaction holds: that transaction.
        public var committed: CommittedTransaction? = nil
        public var description: String { "HTTP \(status) \(code): \(message)" }
    }

    /// Where a transaction committed, as a replay refusal names it (`"committed"` in the error body).
    public struct CommittedTransaction: Sendable, Equatable {
        public let id: String
        public let height: UInt64
        public let logIndex: UInt64
    }

    /// A POST asks the node to answer within this client's timeout, less up to 5 s (a quarter
    /// of a short one) for the answer to travel (`Prefer: wait`, RFC 7240): a node configured to
    /// wait longer for a commit (`commit_wait_seconds`) would otherwise answer after the client
    /// had given up.
    func preferHeader(_ method: String) -> [(name: String, value: String)] {
        let seconds = Int(timeout)
        return method == "POST" ? [("Prefer", "wait=\(max(1, seconds - min(5, seconds / 4)))")] : []
    }

    /// Sends a request and returns status and body. Throws on transport errors only.
    public func send(_ method: String, _ path: String, body: Data? = nil) throws -> (Int, Data) {
        // A bare host:port read as a URL without a scheme (found by black-box testing).
        guard baseURL.lowercased().hasPrefix("http://") || baseURL.lowercased().hasPrefix("https://") else {
            // "ftp://x" was told to write "http://ftp://x" (found by black-box testing).
            throw LedgerError(.malformed, "node address \(baseURL) is not an http:// URL"
                              + (baseURL.contains("://") ? "" : "; write it as http://\(baseURL)"))
        }
        guard let url = URL(string: baseURL + path) else { throw LedgerError(.malformed, "bad URL \(baseURL + path)") }
        if baseURL.lowercased().hasPrefix("http://") {
            do {
                let reply = try PlainHTTP.exchange(method, url, body: body.map { Array($0) }, headers: preferHeader(method),
                                                   timeout: timeout, limit: Self.maxReplyBytes, environment: environment)
                // A proxy's own refusal (407, 502, an HTML page) is not the node's answer (found in review).
                if let proxy = reply.proxy, !(200..<400).contains(reply.status),
                   (try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])?["error"] == nil {
                    let said = String(decoding: reply.body.prefix(200), as: UTF8.self).printable
                    throw HTTPFailure(status: reply.status, code: "http_\(reply.status)",
                                      message: "the proxy \(proxy) that http_proxy names answered \(reply.status) to \(method) \(Self.node(url))\(url.path), not the node\(said.isEmpty ? "" : ": \(said)")")
                }
                guard !reply.overLimit else {
                    throw Unreachable(description: "the node at \(Self.node(url)) (\(method) \(url.path)) sent a reply over \(Self.maxReplyBytes >> 20) MiB", underlying: LedgerError(.fieldTooLarge, "reply too large"))
                }
                if (300..<400).contains(reply.status), reply.status != 304 {
                    // Not followed (a redirect could take a signed request elsewhere); said instead of an empty 301.
                    let to = reply.location.map { "to \($0.printable)" } ?? "without saying where"
                    throw HTTPFailure(status: reply.status, code: "http_\(reply.status)",
                                      message: "the node at \(Self.node(url)) redirects \(method) \(url.path) \(to): give the address it names (with --node)")
                }
                return (reply.status, Data(reply.body))
            } catch let e as PlainHTTP.Failure {
                // A node that was reached but did not answer in time is not "unreachable" (found by black-box testing).
                let what = e.kind == .timedOut ? "the node at \(Self.node(url)) did not answer \(method) \(url.path) in time"
                    : "cannot reach the node at \(Self.node(url)) (\(method) \(url.path))"
                throw Unreachable(description: "\(what): \(e.description)", underlying: e)
            }
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        for (name, value) in preferHeader(method) { request.setValue(value, forHTTPHeaderField: name) }
        request.httpMethod = method
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        // Within `maxReplyBytes` and without following redirects, as over plain HTTP: the
        // shared session read any reply whole into memory (found in review, 2026-12-08).
        let fetch = BoundedFetch(limit: Self.maxReplyBytes, followRedirects: false)
        _ = fetch.run(request, requestTimeout: timeout)
        let (data, status, error, overLimit) = fetch.outcome
        if overLimit {
            throw Unreachable(description: "the node at \(Self.node(url)) (\(method) \(url.path)) sent a reply over \(Self.maxReplyBytes >> 20) MiB", underlying: LedgerError(.fieldTooLarge, "reply too large"))
        }
        if let error { throw Self.transportFailure(error, method: method, url: url, timeout: timeout) }
        if (300..<400).contains(status), status != 304 {
            let to = fetch.location.map { "to \($0.printable)" } ?? "without saying where"
            throw HTTPFailure(status: status, code: "http_\(status)",
                              message: "the node at \(Self.node(url)) redirects \(method) \(url.path) \(to): give the address it names (with --node)")
        }
        return (status, data)
    }

    /// A transport error in words an operator can act on, naming the node: Foundation's own
    /// (`Error Domain=NSURLErrorDomain Code=-1004 "(null)"UserInfo=…`) names neither.
    public struct Unreachable: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// Foundation's error, for callers that look at its code.
        public let underlying: any Error
    }

    static func transportFailure(_ error: any Error, method: String, url: URL, timeout: TimeInterval) -> Unreachable {
        let reason = transportProblem(error, timeout: timeout)
        return Unreachable(description: "cannot reach the node at \(node(url)) (\(method) \(url.path)): \(reason)", underlying: error)
    }

    static func node(_ url: URL) -> String { url.host.map { h in url.port.map { "\(h):\($0)" } ?? h } ?? url.absoluteString }

    /// The largest reply a client reads: a batch's results, a block, a receipt are far smaller.
    public static let maxReplyBytes = 512 << 20

    /// GET returning the body; throws `HTTPFailure` on a non-2xx status.
    public func get(_ path: String) throws -> Data {
        let (status, data) = try send("GET", path)
        try Self.check(status, data)
        return data
    }

    public func getJSON(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: get(path)) as? [String: Any] ?? [:]
    }

    public func postJSON(_ path: String, _ object: Any) throws -> [String: Any] {
        let (status, data) = try send("POST", path, body: JSONView.data(object))
        try Self.check(status, data)
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    static func check(_ status: Int, _ data: Data) throws {
        guard (200..<300).contains(status) else {
            let error = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["error"] as? [String: Any]
            var committed: CommittedTransaction? = nil
            if let c = error?["committed"] as? [String: Any], let id = c["id"] as? String,
               let height = (c["height"] as? NSNumber)?.uint64Value, let logIndex = (c["log_index"] as? NSNumber)?.uint64Value {
                committed = CommittedTransaction(id: id, height: height, logIndex: logIndex)
            }
            throw HTTPFailure(status: status, code: error?["code"] as? String ?? "http_\(status)",
                              message: error?["message"] as? String ?? String(decoding: data, as: UTF8.self), committed: committed)
        }
    }

    public static func wire(_ s: Submission) -> [String: Any] {
        var w: [String: Any] = ["transaction": s.transaction.encoded.base64String]
        if let e = s.envelope { w["envelope"] = e.encoded.base64String }
        return w
    }

    /// Submits one transaction and waits for its commit.
    public func submit(_ s: Submission) throws -> [String: Any] {
        try postJSON("/v1/transactions", Self.wire(s))
    }

    /// Submits a batch (all or nothing) and waits for every commit.
    public func submit(batch: [Submission]) throws -> [[String: Any]] {
        let r = try postJSON("/v1/transactions/batch", ["transactions": batch.map(Self.wire)])
        return r["results"] as? [[String: Any]] ?? []
    }

    /// Bytes `wire(s)` takes in a batch request body: base64 of the transaction and the
    /// envelope, their keys and separators.
    public static func wireBytes(_ s: Submission) -> Int {
        func base64(_ n: Int) -> Int { (n + 2) / 3 * 4 }
        return base64(s.transaction.encoded.count) + (s.envelope.map { base64($0.encoded.count) + 14 } ?? 0) + 20
    }

    /// The most transaction and envelope bytes one batch carries: what a block holds (a batch
    /// commits in one block on a dev node, which refuses a larger one whole).
    public static let maxBatchBytes = 24 << 20

    /// Splits submissions into batches a node takes under `limits`: at most
    /// `max_batch_transactions` each, a request body within `max_request_bytes`, and at most
    /// `maxBatchBytes` of transactions and envelopes. A submission that alone would not fit is
    /// refused by its index, before anything is sent.
    public static func batches(_ submissions: [Submission], limits: Limits) throws -> [ArraySlice<Submission>] {
        let budget = limits.maxRequestBytes - 64  // `{"transactions":[` … `]}`
        var out: [ArraySlice<Submission>] = []
        var start = 0, bytes = 0, raw = 0
        for (i, s) in submissions.enumerated() {
            let size = wireBytes(s) + 1
            guard size <= budget, s.byteCount <= maxBatchBytes else {
                throw LedgerError(.fieldTooLarge, "submission \(i) (\(s.transaction.id.hexString)) takes \(size) bytes as JSON: more than fits in a request of \(limits.maxRequestBytes) bytes (limits.max_request_bytes)")
            }
            if i > start, i - start >= limits.maxBatchTransactions || bytes + size > budget || raw + s.byteCount > maxBatchBytes {
                out.append(submissions[start..<i])
                start = i
                bytes = 0
                raw = 0
            }
            bytes += size
            raw += s.byteCount
        }
        if start < submissions.count { out.append(submissions[start...]) }
        return out
    }

    /// Submits in as many batches as `limits` need (see `batches`) and waits for every commit.
    /// Each batch is all or nothing; when one fails, the error says how many committed before
    /// it. `progress` gets the count committed so far after each batch.
    public func submit(all submissions: [Submission], limits: Limits, progress: ((Int) -> Void)? = nil) throws -> [[String: Any]] {
        var results: [[String: Any]] = []
        results.reserveCapacity(submissions.count)
        for batch in try Self.batches(submissions, limits: limits) {
            do {
                results += try submit(batch: Array(batch))
            } catch {
                guard !results.isEmpty else { throw error }
                throw PartlySubmitted(committed: results.count, of: submissions.count, error: error)
            }
            progress?(results.count)
        }
        return results
    }

    /// A multi-batch submission that failed after some batches committed.
    public struct PartlySubmitted: Error, CustomStringConvertible {
        public let committed: Int
        public let of: Int
        public let error: any Error
        public var description: String { "\(committed) of \(of) submissions committed (in whole batches) before this failure: \(error)" }
    }

    public func genesis() throws -> Genesis {
        let bytes = Array(try get("/v1/genesis"))
        do { return try Genesis(bytes: bytes) } catch {
            // Said of the node, not of the operator's genesis file (found by black-box testing).
            throw LedgerError(.malformed, "\(baseURL) did not serve a CreditLedger genesis at /v1/genesis (is it a CreditLedger node's API address?): \(error)")
        }
    }
    public func checkpoint() throws -> String {
        let text = try SignedNote.text(of: Array(try get("/v1/checkpoint")))
        // Checked for shape, so nothing empty or torn is printed as a checkpoint (found in review).
        do { _ = try SignedNote(parsing: text) } catch {
            throw LedgerError(.invalidCheckpoint, "\(baseURL)/v1/checkpoint is not a signed checkpoint note: \(error)")
        }
        return text
    }
}
