/// An error from the P2P transport: configuration, handshake, framing or session.
public struct P2PError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: String, Hashable, Sendable {
        case invalidConfiguration
        case alreadyStarted
        case stopped
        case notConnected
        // Handshake refusals.
        case malformedHandshake
        case unsupportedVersion
        case wrongChain
        case unknownMember
        case unexpectedMember
        case selfConnection
        case badKey
        case badSignature
        case handshakeTimeout
        // Session faults.
        case frameTooLarge
        case malformedFrame
        case authenticationFailed
        case peerSilent
        /// The peer ended the session and said why (a `closing` frame).
        case peerClosed
    }

    public let code: Code
    public let reason: String
    public let fileID: String
    public let line: Int

    public init(_ code: Code, _ reason: String, fileID: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.fileID = fileID
        self.line = line
    }

    public var description: String { reason }

    public static func == (lhs: P2PError, rhs: P2PError) -> Bool { lhs.code == rhs.code && lhs.reason == rhs.reason }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(reason)
    }
}
