import Foundation
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
/// last of their answers ends. A body declared over every route's limit is not invited: the
/// route refuses it from the headers.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Bodies declared over this are not invited: every route refuses them without reading.
    let maxBodyBytes: Int
    /// Requests whose heads have arrived, and responses that have ended, on this connection.
    private var requestsStarted = 0
    private var responsesEnded = 0
    /// The index (in `requestsStarted` terms) of a request still owed its interim answer.
    private var owed: Int?

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            requestsStarted += 1
            if Self.wantsContinue(head, maxBodyBytes: maxBodyBytes) {
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

    /// An HTTP/1.1 (or later) request expecting `100-continue` and declaring a body the node may read.
    static func wantsContinue(_ head: HTTPRequestHead, maxBodyBytes: Int) -> Bool {
        guard head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1) else { return false }
        let expect = head.headers["expect"]
        guard !expect.isEmpty, expect.allSatisfy({ $0.trimmingCharacters(in: [" ", "\t"]).lowercased() == "100-continue" }) else {
            return false
        }
        if head.headers["transfer-encoding"].contains(where: { $0.lowercased().contains("chunked") }) { return true }
        guard let declared = head.headers["content-length"].first.flatMap({ Int($0) }) else { return false }
        return declared > 0 && declared <= maxBodyBytes
    }
}
