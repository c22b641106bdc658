import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LedgerCore
@testable import LedgerNode
import XCTest

/// The tools' HTTP client: replies by length, chunked or to the close; limits; deadlines;
/// and a wait that sleeps in `poll` (URLSession on Linux spun a core for as long as a node
/// took to answer; found by an independent verifier).
final class PlainHTTPTests: XCTestCase {
    func testRepliesAreReadByLengthChunkedOrToTheClose() throws {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        let byLength = try HostileHTTPServer { send in _ = send(head + "Content-Length: 11\r\n\r\n{\"a\":true}\nTRAILING") }
        let chunked = try HostileHTTPServer { send in
            _ = send(head + "Transfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n")
            Thread.sleep(forTimeInterval: 0.1)
            _ = send("7\r\n:true}\n\r\n0\r\n\r\n")
        }
        let toTheClose = try HostileHTTPServer { send in _ = send("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{\"a\":true}\n") }
        defer { [byLength, chunked, toTheClose].forEach { $0.stop() } }
        for (server, status) in [(byLength, 200), (chunked, 200), (toTheClose, 404)] {
            let reply = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(server.port)/v1/x?y=1")), timeout: 5, limit: 1 << 20)
            XCTAssertEqual(reply.status, status)
            XCTAssertEqual(String(decoding: reply.body, as: UTF8.self), "{\"a\":true}\n")
            XCTAssertFalse(reply.overLimit)
        }
        // Past the limit: declared, or sent.
        let declared = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(byLength.port)/")), timeout: 5, limit: 10)
        XCTAssertTrue(declared.overLimit)
        XCTAssertEqual(declared.declaredLength, 11)
        let sent = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(toTheClose.port)/")), timeout: 5, limit: 4)
        XCTAssertTrue(sent.overLimit)
    }

    /// Replies from a node that is not trusted: framing that does not add up is an error that
    /// says so, never a crash or a shorter body (a negative Content-Length crashed the first
    /// version; found in review). Interim replies are skipped; 204 has no body.
    func testMalformedRepliesAreErrorsAndInterimRepliesAreSkipped() throws {
        let ok = "HTTP/1.1 200 OK\r\n"
        let cases: [(String, String)] = [
            (ok + "Content-Length: -1\r\n\r\n{}", "Content-Length \"-1\""),
            (ok + "Content-Length: 99999999999999999999\r\n\r\n{}", "Content-Length \"99999999999999999999\""),
            (ok + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "two different Content-Length values"),
            (ok + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n7fffffffffffffff\r\n", "chunk size \"7fffffffffffffff\""),
            (ok + "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "a chunk does not end where its size says"),
            (ok + "Content-Length: 10\r\n\r\n{}", "the connection closed before the answer's end"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "not HTTP/1.1"),
        ]
        for (reply, said) in cases {
            let server = try HostileHTTPServer { send in _ = send(reply) }
            defer { server.stop() }
            XCTAssertThrowsError(try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(server.port)/")), timeout: 5, limit: 1 << 20), said) {
                XCTAssertTrue("\($0)".contains(said), "\($0) (expected: \(said))")
            }
        }
        // A 100 Continue before the reply, and a 204 from a server that keeps the connection open.
        let interim = try HostileHTTPServer { send in _ = send("HTTP/1.1 100 Continue\r\n\r\n" + ok + "Content-Length: 2\r\n\r\n{}") }
        let noContent = try HostileHTTPServer { send in _ = send("HTTP/1.1 204 No Content\r\n\r\n"); Thread.sleep(forTimeInterval: 3) }
        let redirect = try HostileHTTPServer { send in _ = send("HTTP/1.1 301 Moved Permanently\r\nLocation: https://node.example/v1/health\r\nContent-Length: 0\r\n\r\n") }
        defer { [interim, noContent, redirect].forEach { $0.stop() } }
        let afterInterim = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(interim.port)/")), timeout: 5, limit: 1 << 20)
        XCTAssertEqual(afterInterim.status, 200)
        XCTAssertEqual(afterInterim.body, Array("{}".utf8))
        let started = Date()
        XCTAssertEqual(try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(noContent.port)/")), timeout: 5, limit: 1 << 20).status, 204)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2, "waited for a body a 204 does not have")
        XCTAssertThrowsError(try LedgerClient(baseURL: "http://127.0.0.1:\(redirect.port)", timeout: 5).get("/v1/health")) {
            XCTAssertTrue("\($0)".contains("redirects GET /v1/health to https://node.example/v1/health: give the address it names"), "\($0)")
        }
    }

    /// Chunk framing cannot stretch a reply's wire bytes without end: one body byte per kilobyte
    /// of chunk extensions grew a client's memory until its deadline (found in review).
    func testChunkFramingIsBoundedToo() throws {
        let flood = try HostileHTTPServer { send in
            guard send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") else { return }
            let chunk = String(repeating: "1;" + String(repeating: "a", count: 1000) + "\r\nX\r\n", count: 64)
            for _ in 0..<400 where send(chunk) {}   // 26 MB at most
        }
        defer { flood.stop() }
        let reply = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(flood.port)/")), timeout: 10, limit: 64 << 10)
        XCTAssertTrue(reply.overLimit)
        XCTAssertLessThan(reply.body.count, 64 << 10)
    }

    func testPrintableTextHasNoControlOrFormatCharacters() {
        XCTAssertEqual("a\nb\u{1B}[31mc\u{2028}d\u{202E}e\u{FFFD}f".printable, "a b [31mc d ef")
        XCTAssertEqual("统一社会信用代码 ok".printable, "统一社会信用代码 ok")
    }

    func testASilentServerTimesOutWithoutSpinning() throws {
        let silent = try HostileHTTPServer { _ in Thread.sleep(forTimeInterval: 3) }
        defer { silent.stop() }
        func cpuSeconds() -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(1), &usage)   // RUSAGE_THREAD: this thread only
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        let before = cpuSeconds(), started = Date()
        XCTAssertThrowsError(try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://127.0.0.1:\(silent.port)/")), timeout: 1.5, limit: 1 << 20)) {
            XCTAssertEqual(($0 as? PlainHTTP.Failure)?.kind, .timedOut, "\($0)")
            XCTAssertEqual("\($0)", "no answer within 1 s")
        }
        let waited = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(waited, 1.4)
        XCTAssertLessThan(waited, 3)
        // Sleeping in poll: a spinning wait uses about as much CPU as it waits.
        XCTAssertLessThan(cpuSeconds() - before, 0.3, "the wait used the CPU")
    }

    func testTransportFailuresAreNamed() throws {
        // A port nothing listens on: bind one, then close it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = UInt16(bigEndian: address.sin_port)
        close(fd)
        let client = LedgerClient(baseURL: "http://127.0.0.1:\(port)", timeout: 5)
        XCTAssertThrowsError(try client.get("/v1/health")) {
            XCTAssertEqual("\($0)", "cannot reach the node at 127.0.0.1:\(port) (GET /v1/health): connection refused (is the node running, and is this its --http address?)")
        }
        let closing = try HostileHTTPServer { _ in }
        defer { closing.stop() }
        XCTAssertThrowsError(try LedgerClient(baseURL: "http://127.0.0.1:\(closing.port)", timeout: 5).get("/v1/health")) {
            XCTAssertTrue("\($0)".hasSuffix("the connection closed before the answer"), "\($0)")
        }
    }

    /// `http_proxy` is honoured as curl reads it (URLSession, used before, did through curl):
    /// the request goes to the proxy in absolute form, with Basic credentials when given;
    /// `no_proxy` and loopback are reached directly; a proxy that cannot be reached is named.
    func testRequestsGoThroughTheProxyThatHttpProxyNames() throws {
        typealias Proxy = PlainHTTP.Proxy
        XCTAssertNil(try Proxy.forHost("node.example", environment: [:]))
        XCTAssertNil(try Proxy.forHost("node.example", environment: ["HTTP_PROXY": "proxy:3128"]), "upper case is not read (httpoxy)")
        XCTAssertEqual(try Proxy.forHost("node.example", environment: ["http_proxy": "proxy.bank:3128"]),
                       Proxy(host: "proxy.bank", port: 3128, credentials: nil))
        XCTAssertEqual(try Proxy.forHost("node.example", environment: ["http_proxy": "http://u%40x:p@[2001:db8::1]:8080/"]),
                       Proxy(host: "2001:db8::1", port: 8080, credentials: Data("u@x:p".utf8).base64EncodedString()))
        XCTAssertEqual(try Proxy.forHost("node.example", environment: ["http_proxy": "http://proxy"])?.port, 1080)
        for host in ["localhost", "127.0.0.1", "127.9.9.9", "::1"] {
            XCTAssertNil(try Proxy.forHost(host, environment: ["http_proxy": "proxy:3128"]), host)
        }
        let exempt = ["http_proxy": "proxy:3128", "no_proxy": " .bureau.gov.cn, 10.0.0.0/8 ,192.168.1.7"]
        for (host, direct) in [("node.bureau.gov.cn", true), ("bureau.gov.cn", true), ("xbureau.gov.cn", false), ("10.2.3.4", true),
                               ("11.2.3.4", false), ("192.168.1.7", true), ("192.168.1.8", false), ("NODE.Bureau.gov.cn", true)] {
            XCTAssertEqual(try Proxy.forHost(host, environment: exempt) == nil, direct, host)
        }
        XCTAssertNil(try Proxy.forHost("anything", environment: ["http_proxy": "proxy:3128", "NO_PROXY": "*"]))
        // Addresses match exactly or by range, never as a name's suffix; `*.name` is `.name`; spaces separate too.
        XCTAssertNotNil(try Proxy.forHost("10.0.0.1", environment: ["http_proxy": "proxy:3128", "no_proxy": "0.1"]))
        XCTAssertNil(try Proxy.forHost("a.bureau.gov.cn", environment: ["http_proxy": "proxy:3128", "no_proxy": "x.example *.bureau.gov.cn"]))
        XCTAssertEqual(try Proxy.forHost("node.example", environment: ["http_proxy": "http://user@proxy:3128\n"]),
                       Proxy(host: "proxy", port: 3128, credentials: Data("user:".utf8).base64EncodedString()), "a user without a password, as curl")
        XCTAssertEqual(try Proxy.forHost("node.example", environment: ["http_proxy": "fe80::1"]), Proxy(host: "fe80::1", port: 1080, credentials: nil))
        XCTAssertThrowsError(try Proxy.forHost("node.example", environment: ["http_proxy": "socks5://bank:s3cret@proxy:1080"])) {
            XCTAssertFalse("\($0)".contains("s3cret"), "the password is in the message: \($0)")
            XCTAssertTrue("\($0)".contains("socks5://***@proxy:1080"), "\($0)")
        }
        for setting in ["socks5://proxy:1080", "https://proxy:443", "proxy:port", "http://:8080"] {
            XCTAssertThrowsError(try Proxy.forHost("node.example", environment: ["http_proxy": setting]), setting) {
                XCTAssertTrue("\($0)".contains("http_proxy"), "\($0)")
            }
        }

        let proxy = try HostileHTTPServer { send in _ = send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}\n") }
        defer { proxy.stop() }
        let environment = ["http_proxy": "http://bank:secret@127.0.0.1:\(proxy.port)"]
        let reply = try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://node.bureau.example:8611/v1/health?x=1")), timeout: 5,
                                           limit: 1 << 20, environment: environment)
        XCTAssertEqual(reply.status, 200)
        let head = try XCTUnwrap(proxy.received.list.withLock { $0.last })
        XCTAssertTrue(head.hasPrefix("GET http://node.bureau.example:8611/v1/health?x=1 HTTP/1.1\r\n"), head)
        XCTAssertTrue(head.contains("\r\nHost: node.bureau.example:8611\r\n"), head)
        XCTAssertTrue(head.contains("\r\nProxy-Authorization: Basic \(Data("bank:secret".utf8).base64EncodedString())\r\n"), head)

        // A proxy's own refusal is named as the proxy's, not taken for the node's answer.
        let refusing = try HostileHTTPServer { send in
            _ = send("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 27\r\nConnection: close\r\n\r\n<html>upstream down</html>\n")
        }
        defer { refusing.stop() }
        let viaProxy = LedgerClient(baseURL: "http://node.bureau.example:8611", timeout: 5,
                                    environment: ["http_proxy": "127.0.0.1:\(refusing.port)"])
        XCTAssertThrowsError(try viaProxy.get("/v1/health")) {
            XCTAssertTrue("\($0)".contains("the proxy 127.0.0.1:\(refusing.port) that http_proxy names answered 502 to GET node.bureau.example:8611/v1/health, not the node: <html>upstream down</html>"), "\($0)")
        }

        // Stopped: the proxy is named, not the node.
        proxy.stop()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertThrowsError(try PlainHTTP.exchange("GET", XCTUnwrap(URL(string: "http://node.bureau.example:8611/v1/health")), timeout: 5,
                                                    limit: 1 << 20, environment: environment)) {
            XCTAssertTrue("\($0)".contains("the proxy 127.0.0.1:\(proxy.port) that http_proxy names"), "\($0)")
        }
    }
}
