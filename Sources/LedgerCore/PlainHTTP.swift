import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP/1.1 exchange over a plain TCP connection, blocking the calling thread in `poll`
/// until the reply has come or the deadline has passed. The tools' requests to a node go
/// through it: Foundation's URLSession on Linux spins while it waits (a `credit-node` command
/// waiting 8 s for a reply used 4.9 s of CPU, `credit-verify consistency --from` 7.8 s in 8 s;
/// found by an independent verifier), and a command waiting for its block's commit took a core
/// from the node it waited on. `https://` addresses still go through URLSession.
public enum PlainHTTP {
    /// Why the exchange failed in transport, in words an operator can act on.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable { case refused, noSuchHost, timedOut, closedEarly, other }
        public let kind: Kind
        public let description: String
    }

    public struct Reply: Sendable {
        public let status: Int
        /// At most `limit` bytes of the body (all of it unless `overLimit`).
        public let body: [UInt8]
        /// The body was longer than the limit (or declared so): it was not read to its end.
        public let overLimit: Bool
        /// The body length the reply declared, if it did.
        public let declaredLength: Int64?
        /// Where a redirect (3xx) points.
        public let location: String?
        /// The proxy (`host:port`) the exchange went through, if any: its own error replies
        /// (407, 502, 504) are not the node's.
        public var proxy: String? = nil
    }

    /// Sends `method url` with `body` (as JSON when given) on a new connection and reads the
    /// reply to its end, all within `timeout` seconds; a body past `limit` bytes is cut off and
    /// marked. The request asks the server to close the connection after it.
    /// Goes through the proxy that `http_proxy` names, as curl does (and URLSession, which these
    /// tools used before, through curl), unless `no_proxy` exempts the host; `environment` is the
    /// process's unless a test gives another.
    public static func exchange(_ method: String, _ url: URL, body: [UInt8]? = nil, headers: [(name: String, value: String)] = [],
                                timeout: Double, limit: Int,
                                environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Reply {
        guard let rawHost = url.host, !rawHost.isEmpty else { throw Failure(kind: .other, description: "not an http:// URL") }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let port = url.port ?? 80
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        let proxy = try Proxy.forHost(host, environment: environment)
        let fd: Int32
        if let proxy {
            do { fd = try connect(host: proxy.host, port: proxy.port, deadline: deadline, timeout: timeout) } catch let e as Failure {
                throw Failure(kind: e.kind == .timedOut ? .timedOut : .other,
                              description: "the proxy \(proxy.address) that http_proxy names: \(e.kind == .refused ? "connection refused" : e.description)")
            }
        } else {
            fd = try connect(host: host, port: port, deadline: deadline, timeout: timeout)
        }
        defer { close(fd) }

        let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        let path = (components?.percentEncodedPath.isEmpty ?? true ? "/" : components!.percentEncodedPath)
            + (components?.percentEncodedQuery.map { "?" + $0 } ?? "")
        let hostHeader = rawHost.contains(":") && !rawHost.hasPrefix("[") ? "[\(rawHost)]" : rawHost
        // To a proxy, the request names the whole URL (RFC 9112 §3.2.2, absolute form).
        let target = proxy == nil ? path : "http://\(hostHeader):\(port)\(path)"
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(hostHeader):\(port)\r\nAccept: application/json\r\nConnection: close\r\n"
        if let credentials = proxy?.credentials { head += "Proxy-Authorization: Basic \(credentials)\r\n" }
        for (name, value) in headers {
            precondition(!(name + value).contains(where: { $0 == "\r" || $0 == "\n" }), "a header holds a line break")
            head += "\(name): \(value)\r\n"
        }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" } else if method != "GET" { head += "Content-Length: 0\r\n" }
        head += "\r\n"
        try write(fd, Array(head.utf8) + (body ?? []), deadline: deadline, timeout: timeout)
        var reply = try read(fd, deadline: deadline, timeout: timeout, limit: limit)
        reply.proxy = proxy?.address
        return reply
    }

    /// The HTTP proxy a request to a host goes through, read from the environment as curl reads
    /// it: `http_proxy` (lower case only: a CGI server sets `HTTP_PROXY` from a request's
    /// `Proxy:` header, so curl ignores it for http), `host:port` or `http://[user:password@]host:port`
    /// (port 1080 when not given, as curl); `no_proxy` or `NO_PROXY`, a comma-separated list of
    /// host names (each also matching its subdomains), IP addresses, IPv4 CIDR ranges, or `*`.
    /// Loopback (`localhost`, 127.0.0.0/8, ::1) is always reached directly, as Go's clients do:
    /// the local network's scripts and a node's own operator listener are there.
    public struct Proxy: Sendable, Equatable {
        public let host: String
        public let port: Int
        /// base64 of `user:password`, for `Proxy-Authorization: Basic`.
        public let credentials: String?

        public init(host: String, port: Int, credentials: String?) {
            self.host = host; self.port = port; self.credentials = credentials
        }

        /// `host:port`, an IPv6 host in brackets, as messages name it.
        public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        public static func forHost(_ host: String, environment: [String: String]) throws -> Proxy? {
            guard let setting = environment["http_proxy"]?.trimmingCharacters(in: .whitespacesAndNewlines), !setting.isEmpty else { return nil }
            let target = host.lowercased()
            if isLoopback(target) { return nil }
            let exempt = (environment["no_proxy"] ?? environment["NO_PROXY"] ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace })
                .map { $0.lowercased() }
            if exempt.contains(where: { matches(target, $0) }) { return nil }
            return try parse(setting)
        }

        static func parse(_ setting: String) throws -> Proxy {
            var rest = Substring(setting)
            if let scheme = rest.range(of: "://") {
                let name = rest[..<scheme.lowerBound].lowercased()
                guard name == "http" else {
                    throw Failure(kind: .other, description: "http_proxy names a \(name):// proxy (\(redacted(setting))); these tools reach proxies over plain http only")
                }
                rest = rest[scheme.upperBound...]
            }
            var credentials: String?
            if let at = rest.lastIndex(of: "@") {
                var user = String(rest[..<at]).removingPercentEncoding ?? String(rest[..<at])
                if !user.contains(":") { user += ":" }   // a user without a password, as curl sends it (RFC 7617)
                credentials = Data(user.utf8).base64EncodedString()
                rest = rest[rest.index(after: at)...]
            }
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            var host = String(rest), port = 1080
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                let after = host[host.index(after: close)...]
                if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw bad(setting) }; port = p }
                else if !after.isEmpty { throw bad(setting) }
                host = String(host[host.index(after: host.startIndex)..<close])
            } else if host.filter({ $0 == ":" }).count > 1 {
                // An IPv6 address without brackets has no port.
            } else if let colon = host.lastIndex(of: ":") {
                guard let p = Int(host[host.index(after: colon)...]) else { throw bad(setting) }
                port = p
                host = String(host[..<colon])
            }
            guard !host.isEmpty, (1...65_535).contains(port) else { throw bad(setting) }
            return Proxy(host: host, port: port, credentials: credentials)
        }

        static func bad(_ setting: String) -> Failure {
            Failure(kind: .other, description: "http_proxy is not host:port or http://host:port: \(redacted(setting))")
        }

        /// The setting as messages show it: without its user and password.
        static func redacted(_ setting: String) -> String {
            guard let at = setting.lastIndex(of: "@") else { return setting.printable }
            let scheme = setting.range(of: "://").map { String(setting[..<$0.upperBound]) } ?? ""
            return (scheme + "***@" + setting[setting.index(after: at)...]).printable
        }

        static func isLoopback(_ host: String) -> Bool {
            if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" { return true }
            var a = in_addr()
            return inet_pton(AF_INET, host, &a) == 1 && UInt32(bigEndian: a.s_addr) >> 24 == 127
        }

        /// Whether `host` (lower case) is what a `no_proxy` entry names: `*`, a host name (also
        /// matching its subdomains; `.name` and `*.name` alike), an IP address (exactly), or an
        /// IPv4 CIDR range.
        static func matches(_ host: String, _ entry: String) -> Bool {
            if entry == "*" { return true }
            var name = entry.hasPrefix("*.") ? String(entry.dropFirst(2)) : entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
            var address = in_addr(), address6 = in6_addr()
            let hostIsIPv4 = inet_pton(AF_INET, host, &address) == 1
            if let slash = name.firstIndex(of: "/"), let bits = Int(name[name.index(after: slash)...]), (0...32).contains(bits) {
                var network = in_addr()
                guard inet_pton(AF_INET, String(name[..<slash]), &network) == 1, hostIsIPv4 else { return false }
                let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
                return UInt32(bigEndian: network.s_addr) & mask == UInt32(bigEndian: address.s_addr) & mask
            }
            if hostIsIPv4 || inet_pton(AF_INET6, host, &address6) == 1 { return host == name }   // addresses match exactly
            return host == name || host.hasSuffix("." + name)
        }
    }

    private static func remainingMillis(_ deadline: UInt64) -> Int32 {
        let now = DispatchTime.now().uptimeNanoseconds
        return now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
    }

    private static func timedOut(_ timeout: Double) -> Failure { Failure(kind: .timedOut, description: "no answer within \(Int(timeout)) s") }

    /// Waits until `fd` is ready for `events`, or throws once the deadline has passed.
    private static func wait(_ fd: Int32, _ events: Int16, deadline: UInt64, timeout: Double) throws {
        while true {
            let left = remainingMillis(deadline)
            guard left > 0 else { throw timedOut(timeout) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, left)
            if n > 0 { return }
            if n < 0 && errno != EINTR { throw Failure(kind: .other, description: "poll failed: \(String(cString: strerror(errno)))") }
        }
    }

    /// `getaddrinfo` for TCP to (or, `passive`, on) `host:port`; the caller frees the list
    /// with `freeaddrinfo`. Nil when the host does not resolve.
    public static func lookUp(_ host: String, port: Int, passive: Bool = false) -> UnsafeMutablePointer<addrinfo>? {
        try? resolve(host, port: port, passive: passive).get()
    }

    /// `lookUp`, or getaddrinfo's reason when the host does not resolve.
    public static func resolve(_ host: String, port: Int, passive: Bool = false) -> Result<UnsafeMutablePointer<addrinfo>, LookUpFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        if passive { hints.ai_flags = AI_PASSIVE }
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var found: UnsafeMutablePointer<addrinfo>? = nil
        let code = getaddrinfo(host, String(port), &hints, &found)
        if code == 0, let found { return .success(found) }
        return .failure(LookUpFailure(reason: code == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(code))))
    }

    public struct LookUpFailure: Error { public let reason: String }

    private static func connect(host: String, port: Int, deadline: UInt64, timeout: Double) throws -> Int32 {
        guard let first = lookUp(host, port: port) else { throw Failure(kind: .noSuchHost, description: "no such host") }
        defer { freeaddrinfo(first) }
        var lastError: Int32 = ECONNREFUSED
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            next = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else { lastError = errno; continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            guard errno == EINPROGRESS else { lastError = errno; close(fd); continue }
            do { try wait(fd, Int16(POLLOUT), deadline: deadline, timeout: timeout) } catch { close(fd); throw error }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError == 0 { return fd }
            lastError = soError
            close(fd)
        }
        if lastError == ECONNREFUSED {
            throw Failure(kind: .refused, description: "connection refused (is the node running, and is this its --http address?)")
        }
        throw Failure(kind: .other, description: "cannot connect: \(String(cString: strerror(lastError)))")
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8], deadline: UInt64, timeout: Double) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                try wait(fd, Int16(POLLOUT), deadline: deadline, timeout: timeout)
                continue
            }
            // The server may answer and close before reading a whole request (a refusal): read it.
            if n < 0 && (errno == EPIPE || errno == ECONNRESET) { return }
            throw Failure(kind: .closedEarly, description: "the connection closed before the request was sent: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads the reply: interim (1xx) replies skipped, then status line and headers, then the
    /// body by its Content-Length, chunked, or to the connection's end. A reply that breaks the
    /// framing (a negative, huge or conflicting Content-Length, a malformed chunk, a reset
    /// before the end) is an error, never a shorter body: a node being checked is not trusted
    /// (a negative length crashed the first version; found in review).
    private static func read(_ fd: Int32, deadline: UInt64, timeout: Double, limit: Int) throws -> Reply {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let maxHead = 64 << 10
        var closed = false
        // Bytes read from the wire in all: chunk framing may not stretch a reply past about twice
        // its body limit (one byte per kilobyte of chunk extensions held a client's memory
        // growing until the deadline; found in review).
        var wire = 0
        let maxWire = limit.multipliedReportingOverflow(by: 2).partialValue &+ (1 << 20)
        func malformed(_ what: String) -> Failure { Failure(kind: .other, description: "the reply is malformed: \(what)") }
        func cutShort() -> Failure { Failure(kind: .closedEarly, description: "the connection closed before the answer's end") }
        func receive() throws {
            try wait(fd, Int16(POLLIN), deadline: deadline, timeout: timeout)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { data.append(contentsOf: buffer[..<n]); wire += n } else if n == 0 { closed = true } else if errno != EAGAIN && errno != EINTR {
                throw Failure(kind: .closedEarly, description: "the connection closed before the answer")
            }
        }
        var status = 0
        var declared: Int64? = nil
        var chunked = false
        var location: String? = nil
        repeat {
            var headerEnd: Int? = nil
            var searched = 0   // where the search resumes: rescanning from 0 on each read was quadratic (found in review)
            while headerEnd == nil {
                if let r = find(data, [13, 10, 13, 10], from: searched) { headerEnd = r + 4; break }
                searched = max(0, data.count - 3)
                guard data.count <= maxHead else { throw malformed("its headers are over \(maxHead >> 10) KiB") }
                guard !closed else { throw Failure(kind: .closedEarly, description: "the connection closed before the answer") }
                try receive()
            }
            let lines = String(decoding: data[..<headerEnd!], as: UTF8.self).components(separatedBy: "\r\n")
            let statusParts = lines[0].split(separator: " ", maxSplits: 2)
            guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), statusParts[1].count == 3, let code = Int(statusParts[1]), code >= 100 else {
                throw Failure(kind: .other, description: "the reply is not HTTP/1.1: \(lines[0].prefix(80))")
            }
            status = code
            (declared, chunked, location) = (nil, false, nil)
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased(), value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                switch name {
                case "content-length":
                    guard (1...18).contains(value.utf8.count), value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int64(value) else {
                        throw malformed("Content-Length \"\(value.prefix(40))\"")
                    }
                    guard declared == nil || declared == n else { throw malformed("two different Content-Length values") }
                    declared = n
                case "transfer-encoding":
                    if value.lowercased().contains("chunked") { chunked = true }
                case "location":
                    location = String(value.prefix(300))
                default:
                    break
                }
            }
            data.removeFirst(headerEnd!)
        } while (100..<200).contains(status)   // interim replies (100 Continue) come before the real one

        // No body: 204 and 304 by definition.
        if status == 204 || status == 304 { return Reply(status: status, body: [], overLimit: false, declaredLength: 0, location: location) }
        if chunked {
            var body: [UInt8] = []
            var at = 0
            var searched = 0
            while true {
                // Consumed framing is dropped now and then, so the buffer holds about one chunk.
                if at >= 64 << 10 { data.removeFirst(at); searched -= at; at = 0 }
                guard wire <= maxWire else { return Reply(status: status, body: body, overLimit: true, declaredLength: nil, location: location) }
                guard let lineEnd = find(data, [13, 10], from: max(at, searched)) else {
                    guard data.count - at <= 1_024 else { throw malformed("a chunk-size line is over 1 KiB") }
                    guard !closed else { throw cutShort() }
                    searched = max(at, data.count - 1)
                    try receive(); continue
                }
                guard lineEnd - at <= 1_024 else { throw malformed("a chunk-size line is over 1 KiB") }
                let sizeText = (String(decoding: data[at..<lineEnd], as: UTF8.self).split(separator: ";", omittingEmptySubsequences: false).first ?? "")
                    .trimmingCharacters(in: .whitespaces)
                guard (1...15).contains(sizeText.utf8.count), let size = Int(sizeText, radix: 16), size >= 0 else { throw malformed("chunk size \"\(sizeText.prefix(20))\"") }
                if size == 0 { return Reply(status: status, body: body, overLimit: false, declaredLength: nil, location: location) }
                guard size <= limit - body.count else { return Reply(status: status, body: body, overLimit: true, declaredLength: nil, location: location) }
                while data.count < lineEnd + 2 + size + 2 {
                    guard !closed else { throw cutShort() }
                    try receive()
                }
                guard data[lineEnd + 2 + size] == 13, data[lineEnd + 3 + size] == 10 else { throw malformed("a chunk does not end where its size says") }
                body.append(contentsOf: data[(lineEnd + 2)..<(lineEnd + 2 + size)])
                at = lineEnd + 2 + size + 2
                searched = at
            }
        }
        if let declared {
            guard declared <= Int64(limit) else { return Reply(status: status, body: [], overLimit: true, declaredLength: declared, location: location) }
            let length = Int(declared)
            while data.count < length {
                guard !closed else { throw cutShort() }
                try receive()
            }
            return Reply(status: status, body: Array(data.prefix(length)), overLimit: false, declaredLength: declared, location: location)
        }
        // Neither: the body runs to the connection's close (a reset is an error above).
        while !closed {
            if data.count > limit { return Reply(status: status, body: Array(data.prefix(limit)), overLimit: true, declaredLength: nil, location: location) }
            try receive()
        }
        if data.count > limit { return Reply(status: status, body: Array(data.prefix(limit)), overLimit: true, declaredLength: nil, location: location) }
        return Reply(status: status, body: data, overLimit: false, declaredLength: nil, location: location)
    }

    /// The first index at or after `start` where `pattern` begins, compared in place.
    private static func find(_ data: [UInt8], _ pattern: [UInt8], from start: Int = 0) -> Int? {
        guard data.count >= pattern.count, start <= data.count - pattern.count else { return nil }
        var i = start
        outer: while i <= data.count - pattern.count {
            for k in 0..<pattern.count where data[i + k] != pattern[k] { i += 1; continue outer }
            return i
        }
        return nil
    }
}
