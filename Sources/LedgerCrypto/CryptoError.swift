/// An error from a cryptographic operation or a key file.
public struct CryptoError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: String, Hashable, Sendable {
        case libraryInitializationFailed
        case invalidKeyLength
        case invalidSignatureLength
        case decryptionFailed
        case invalidInput
        case keyFilePermissions
        case keyFileMalformed
        case keyFileIO
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

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool {
        lhs.code == rhs.code && lhs.reason == rhs.reason
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(reason)
    }
}
