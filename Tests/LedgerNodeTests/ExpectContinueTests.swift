import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import LedgerNode
import XCTest

/// `Expect: 100-continue` is answered with an interim 100 where it cannot land inside another
/// response; requests that should not be invited are not (the end-to-end case is in
/// HTTPIdleTimeoutTests).
final class ExpectContinueTests: XCTestCase {
    static let limits = ["/v1/transactions/batch": 1000, "/v1/queries": 100]

    func request(_ headers: [(String, String)], version: HTTPVersion = .http1_1, method: HTTPMethod = .POST,
                 uri: String = "/v1/transactions/batch") -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers)))
    }

    func interim(_ channel: EmbeddedChannel) throws -> [HTTPResponseStatus] {
        var statuses: [HTTPResponseStatus] = []
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .head(let head) = part { statuses.append(head.status) }
        }
        return statuses
    }

    func testAnExpectingRequestIsInvitedAtOnceAndPassedOn() throws {
        let channel = EmbeddedChannel(handler: ExpectContinueHandler(bodyLimits: Self.limits))
        try channel.writeInbound(request([("Content-Length", "10"), ("Expect", "100-Continue")]))
        XCTAssertEqual(try interim(channel), [.continue])
        guard case .head(let head)? = try channel.readInbound(as: HTTPServerRequestPart.self) else { return XCTFail("head not passed on") }
        XCTAssertEqual(head.uri, "/v1/transactions/batch")
    }

    func testAPipelinedRequestIsInvitedOnlyAfterTheAnswersBeforeIt() throws {
        let channel = EmbeddedChannel(handler: ExpectContinueHandler(bodyLimits: Self.limits))
        try channel.writeInbound(request([("Content-Length", "0")]))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try channel.writeInbound(request([("Content-Length", "10"), ("Expect", "100-continue")]))
        XCTAssertEqual(try interim(channel), [], "invited while the first request's answer was owed")
        // The first answer goes out whole, and only then the invitation.
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "{}"))))
        XCTAssertEqual(try interim(channel), [.ok])
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        XCTAssertEqual(try interim(channel), [.continue])
        // Its own answer afterwards brings no second one.
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        XCTAssertEqual(try interim(channel), [.ok])
    }

    func testRequestsNotToInvite() throws {
        let cases: [(String, HTTPServerRequestPart)] = [
            ("HTTP/1.0", request([("Content-Length", "10"), ("Expect", "100-continue")], version: .http1_0)),
            ("body over the limit", request([("Content-Length", "1001"), ("Expect", "100-continue")])),
            ("no body", request([("Expect", "100-continue")])),
            ("another expectation", request([("Content-Length", "10"), ("Expect", "100-continue, something")])),
            ("no expectation", request([("Content-Length", "10")])),
            ("over its route's smaller limit", request([("Content-Length", "101"), ("Expect", "100-continue")], uri: "/v1/queries")),
            ("a path that reads no body", request([("Content-Length", "10"), ("Expect", "100-continue")], uri: "/v1/health")),
            ("not a POST", request([("Content-Length", "10"), ("Expect", "100-continue")], method: .PUT)),
        ]
        for (name, head) in cases {
            let channel = EmbeddedChannel(handler: ExpectContinueHandler(bodyLimits: Self.limits))
            try channel.writeInbound(head)
            XCTAssertEqual(try interim(channel), [], name)
            XCTAssertNotNil(try channel.readInbound(as: HTTPServerRequestPart.self), "\(name): head not passed on")
        }
        let query = EmbeddedChannel(handler: ExpectContinueHandler(bodyLimits: Self.limits))
        try query.writeInbound(request([("Content-Length", "100"), ("Expect", "100-continue")], uri: "/v1/queries?x=1"))
        XCTAssertEqual(try interim(query), [.continue], "a body within its route's limit was not invited")
        let chunked = EmbeddedChannel(handler: ExpectContinueHandler(bodyLimits: Self.limits))
        try chunked.writeInbound(request([("Transfer-Encoding", "chunked"), ("Expect", "100-continue")]))
        XCTAssertEqual(try interim(chunked), [.continue], "a chunked body was not invited")
    }
}

/// A decoder error turns the next 400 into one whose body names the problem; without one, a
/// route's own 400 passes untouched.
final class ParseErrorReplyTests: XCTestCase {
    func testTheParserErrorIsNamedInTheReply() throws {
        let channel = EmbeddedChannel(handler: ParseErrorReplyHandler())
        let hummingbirds = HTTPResponseHead(version: .http1_1, status: .badRequest, headers: ["connection": "close", "content-length": "0"])
        try channel.writeOutbound(HTTPServerResponsePart.head(hummingbirds))
        XCTAssertEqual(try channel.readOutbound(as: HTTPServerResponsePart.self), .head(hummingbirds), "rewritten with no parser error")

        channel.pipeline.fireErrorCaught(HTTPParserError.unexpectedContentLength)
        XCTAssertThrowsError(try channel.throwIfErrorCaught(), "the error is passed on")
        // A route's own 400 (it met the error in the body it read) passes untouched.
        let routes = HTTPResponseHead(version: .http1_1, status: .badRequest, headers: ["content-length": "40"])
        try channel.writeOutbound(HTTPServerResponsePart.head(routes))
        XCTAssertEqual(try channel.readOutbound(as: HTTPServerResponsePart.self), .head(routes), "a route's 400 was rewritten")
        XCTAssertNil(try channel.readOutbound(as: HTTPServerResponsePart.self))
        try channel.writeOutbound(HTTPServerResponsePart.head(hummingbirds))
        guard case .head(let head)? = try channel.readOutbound(as: HTTPServerResponsePart.self),
              case .body(.byteBuffer(let body))? = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            return XCTFail("no head and body")
        }
        let text = String(buffer: body)
        XCTAssertEqual(head.status, .badRequest)
        XCTAssertEqual(head.headers["content-length"], [String(body.readableBytes)])
        XCTAssertEqual(head.headers["content-type"], ["application/json"])
        XCTAssertTrue(text.hasPrefix(#"{"error":{"code":"malformed","#) && text.contains("more than one Content-Length"), text)
    }
}
