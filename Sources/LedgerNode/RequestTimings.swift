import Hummingbird
import HTTPTypes
import LedgerCore
import Synchronization

/// Counts of durations in fixed buckets, with their sum: what a Prometheus histogram serves.
struct DurationHistogram: Sendable {
    /// Upper bounds (seconds) of the buckets: 1 ms to 5 s, so a 5 ms query target and a 1 s
    /// commit target each fall on a bound.
    static let bounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    /// Durations at or under each of `bounds` (not cumulative), and over the last.
    private var buckets = [UInt64](repeating: 0, count: DurationHistogram.bounds.count + 1)
    private var totalNanos: UInt64 = 0
    private(set) var count: UInt64 = 0

    mutating func record(_ took: Duration) {
        let seconds = took.inSeconds
        count += 1
        buckets[Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count] += 1
        totalNanos &+= UInt64(max(0, seconds) * 1e9)
    }

    /// Cumulative counts at each of `bounds` (the +Inf bucket is `count`).
    var cumulative: [UInt64] {
        var running: UInt64 = 0
        return buckets.dropLast().map { running += $0; return running }
    }

    var sumSeconds: Double { Double(totalNanos) / 1e9 }
}

/// How long the node's HTTP listeners took to answer, by listener, method, route and status, for
/// `GET /metrics` (`creditledger_http_request_duration_seconds`): the figure a monitor alerts on
/// when queries or submissions slow down, which the node otherwise only logs per slow block write.
/// The time runs from the request's head to the response's head, so a commit wait is in it. Label
/// values come from a closed set (the route's template, not the path asked; methods outside the
/// standard ones as `other`), so no client can grow the series without bound.
final class RequestTimings: Sendable {
    struct Series: Hashable, Sendable {
        let listener: String
        let method: String
        let route: String
        let status: Int
    }

    private let series = Mutex([Series: DurationHistogram]())

    func record(_ s: Series, _ took: Duration) {
        series.withLock { $0[s, default: DurationHistogram()].record(took) }
    }

    /// Every series with its histogram, in a stable order (listener, route, method, status).
    var snapshot: [(Series, DurationHistogram)] {
        series.withLock { Array($0) }.sorted {
            ($0.0.listener, $0.0.route, $0.0.method, $0.0.status) < ($1.0.listener, $1.0.route, $1.0.method, $1.0.status)
        }
    }

    static let methods: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .delete, .patch, .options, .trace, .connect]
}

/// Times each request for `RequestTimings`. Outermost on the router, so it sees the status the
/// client gets, including the JSON error answers of `JSONErrors`.
struct RequestTiming<Context: RequestContext>: RouterMiddleware {
    let timings: RequestTimings
    let listener: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let method = RequestTimings.methods.contains(request.method) ? request.method.rawValue : "other"
        func record(_ status: Int) {
            // Hummingbird names a request no route matched "NotFound"; a route's template starts with "/".
            let route = context.endpointPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "unmatched"
            timings.record(.init(listener: listener, method: method, route: route, status: status),
                           ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            record(response.status.code)
            return response
        } catch let e as any HTTPResponseError {
            record(e.status.code)
            throw e
        } catch {
            record(500)
            throw error
        }
    }
}
