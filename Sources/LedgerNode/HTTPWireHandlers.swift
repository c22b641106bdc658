import Foundation
import LedgerCore
import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` (RFC 9110 §10.1.1), which Hummingbird leaves unanswered.
/// curl sends it for every body over 1 MiB, and libcurl-based clients with it; they then wait a
/// second for the interim answer before sending the body, so each batch submission from them
/// took a second longer than it needed (a 1.5 MB batch: 1.04 s against 0.01 s, found in
/// testing, 2026-12-07).
///
/// It sits right after NIO's request decoder, where requests still carry their HTTP version
/// (an HTTP/1.0 request's expectation is ignored, as the RFC says). The interim answer is
/// written only where it cannot land inside another response: at once when every earlier
/// request on the connection has been answered, otherwise (a pipelining client) right after the
/// last of their answers ends. Only a POST to a route that reads a body, declaring one within
/// that route's limit, is invited: the others are refused from their headers (404, 405, 413),
/// and the client need not send the body at all.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The body limit of each path that reads a body (POST).
    let bodyLimits: [String: Int]
    /// Requests whose heads have arrived, and responses that have ended, on this connection.
    private var requestsStarted = 0
    private var responsesEnded = 0
    /// The index (in `requestsStarted` terms) of a request still owed its interim answer.
    private var owed: Int?

    init(bodyLimits: [String: Int]) {
        self.bodyLimits = bodyLimits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            requestsStarted += 1
            if Self.wantsContinue(head, bodyLimits: bodyLimits) {
                if responsesEnded == requestsStarted - 1 {
                    writeContinue(context: context)
                } else {
                    owed = requestsStarted
                }
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .end:
            responsesEnded += 1
            context.write(data, promise: promise)
            if let n = owed, n == responsesEnded + 1 {
                owed = nil
                writeContinue(context: context)
            }
        default:
            context.write(data, promise: promise)
        }
    }

    private func writeContinue(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    /// An HTTP/1.1 (or later) POST expecting `100-continue` and declaring a body its route reads.
    static func wantsContinue(_ head: HTTPRequestHead, bodyLimits: [String: Int]) -> Bool {
        guard head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1), head.method == .POST else { return false }
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
        guard let maxBodyBytes = bodyLimits[path] else { return false }
        let expect = head.headers["expect"]
        guard !expect.isEmpty, expect.allSatisfy({ $0.trimmingCharacters(in: [" ", "\t"]).lowercased() == "100-continue" }) else {
            return false
        }
        if head.headers["transfer-encoding"].contains(where: { $0.lowercased().contains("chunked") }) { return true }
        guard let declared = head.headers["content-length"].first.flatMap({ Int($0) }) else { return false }
        return declared > 0 && declared <= maxBodyBytes
    }
}

/// Names what could not be parsed when a request is not HTTP the decoder accepts. Hummingbird
/// answers such a request 400 with an empty body and closes the connection; a client author
/// then had nothing to go on (a header without a colon, two Content-Lengths and a 90 KB header
/// all looked alike). The 400 now carries the node's usual error body, code `malformed`.
/// Sits beside `ExpectContinueHandler`, after NIO's request decoder, whose error passes here on
/// its way to Hummingbird.
final class ParseErrorReplyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var problem: HTTPParserError?

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let e = error as? HTTPParserError, problem == nil { problem = e }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Only Hummingbird's own reply to the error (empty, closing): a route that met the error
        // in a body it was reading answers 400 with its own message, which passes untouched (found
        // in review: rewriting that one put two bodies in one response).
        guard let problem, case .head(var head) = unwrapOutboundIn(data), head.status == .badRequest,
              head.headers["content-length"] == ["0"], head.headers["connection"].contains(where: { $0.lowercased() == "close" }) else {
            return context.write(data, promise: promise)
        }
        self.problem = nil
        var body = context.channel.allocator.buffer(capacity: 256)
        var w = JSONWriter(capacity: 256)
        w.object { o in
            o.field("error") { e in
                e.object { fields in
                    fields.field("code") { $0.string(LedgerError.Code.malformed.rawValue) }
                    fields.field("message") { $0.string("the request is not HTTP/1.1 this node reads: \(Self.describe(problem)); the connection is closed") }
                }
            }
        }
        body.writeBytes(w.bytes)
        head.headers.replaceOrAdd(name: "content-type", value: "application/json")
        head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: promise)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    static func describe(_ e: HTTPParserError) -> String {
        switch e {
        case .headerOverflow: return "its header section is over the limits (80 KiB, 1,000 fields)"
        case .invalidHeaderToken: return "a header line is not `name: value` (or its name holds a character a header name may not)"
        // The parser reports Content-Length beside Transfer-Encoding this way too.
        case .invalidContentLength: return "its Content-Length is not a number, or it comes with Transfer-Encoding (a request has one or the other)"
        // An HTTP/2 connection preface ("PRI * HTTP/2.0") stops the HTTP/1 parser here.
        case .paused: return "it is not an HTTP/1.x request (HTTP/2 is not served here: use HTTP/1.1)"
        case .unexpectedContentLength: return "it has more than one Content-Length"
        case .invalidChunkSize: return "a chunk's size line is not hexadecimal"
        case .invalidMethod: return "its method is not an HTTP method"
        case .invalidVersion: return "its request line does not end in HTTP/1.0 or HTTP/1.1"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            return "its request target is not a valid path"
        case .lfExpected, .invalidConstant, .invalidCharactersUsed, .strictModeAssertion:
            return "its request line or headers are not well-formed (each line ends in CRLF; no control characters)"
        // Content-Length followed by Transfer-Encoding ends here (the parser has no code for it).
        case .unknown: return "it is not well-formed (for example, it has both Content-Length and Transfer-Encoding: a request has one or the other)"
        default: return "\(e)"
        }
    }
}
