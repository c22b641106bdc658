import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange read within `limit` bytes: the reply is cut off, and marked, once it
/// would pass the limit (its declared length first).
public final class BoundedFetch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    public let limit: Int
    public let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var data = Data()
    private var status = 0
    private var error: (any Error)?
    private var overLimit = false
    private var declared: Int64 = -1
    private var redirectTo: String?

    /// Whether a redirect is followed; when not, the 3xx reply is the outcome.
    public let followRedirects: Bool

    public init(limit: Int, followRedirects: Bool = true) { (self.limit, self.followRedirects) = (limit, followRedirects) }

    public func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                           newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        if !followRedirects { lock.withLock { redirectTo = response.value(forHTTPHeaderField: "Location") } }
        completionHandler(followRedirects ? request : nil)
    }

    /// Runs `request` on an ephemeral session of its own with this delegate, then closes the
    /// session. It waits at most `wait` seconds (nil: until the session's own timeouts end the
    /// exchange) and returns whether the exchange ended within it; `outcome` then holds the reply.
    public func run(_ request: URLRequest, requestTimeout: TimeInterval, resourceTimeout: TimeInterval? = nil, wait: TimeInterval? = nil) -> Bool {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = requestTimeout
        if let resourceTimeout { configuration.timeoutIntervalForResource = resourceTimeout }
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        session.dataTask(with: request).resume()
        guard let wait else { done.wait(); return true }
        return done.wait(timeout: .now() + wait) == .success
    }

    public var outcome: (data: Data, status: Int, error: (any Error)?, overLimit: Bool) { lock.withLock { (data, status, error, overLimit) } }
    /// Where a redirect not followed pointed (its `Location`), if it said.
    public var location: String? { lock.withLock { redirectTo } }
    /// The reply's declared length (`Content-Length`), or -1 when it declared none.
    public var declaredLength: Int64 { lock.withLock { declared } }

    public func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let tooLong = response.expectedContentLength > Int64(limit)
        lock.withLock {
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            declared = response.expectedContentLength
            if tooLong { overLimit = true }
        }
        completionHandler(tooLong ? .cancel : .allow)
        // Foundation on Linux may read on after `.cancel`; the task is stopped outright (found in review).
        if tooLong { dataTask.cancel() }
    }

    public func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let cut = lock.withLock { () -> Bool in
            guard !overLimit else { return true }
            if self.data.count + data.count > limit { overLimit = true; return true }
            self.data.append(data)
            return false
        }
        if cut { dataTask.cancel() }
    }

    public func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        lock.withLock { self.error = error }
        done.signal()
    }
}
