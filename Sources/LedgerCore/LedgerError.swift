/// An error that names what is wrong with an input. `code` is stable; tests compare codes.
public struct LedgerError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: String, Hashable, Sendable, Codable {
        case malformed            // bytes that do not decode
        case truncated            // input ends early
        case trailingBytes        // input continues after the structure
        case unsupportedVersion
        case fieldTooLarge        // a field over its limit
        case transactionTooLarge  // the whole transaction over its limit
        case invalidUSCC
        case unknownCategory
        case unknownKind
        case invalidValue         // a field whose value is out of range
        case wrongChain
        case unknownSigner
        case unknownKey
        case badSignature
        case notAuthorized        // signer lacks the role for this transaction
        case replay               // nonce already used by this signer / duplicate transaction
        case unknownReference     // points at a transaction that does not exist
        case mempoolFull
        case notCommitted         // admitted, but not committed within the node's wait; still pending
        /// The node is catching up with the consortium (503): what it would answer from is out of date.
        case outOfDate
        case rateLimited          // over a budget (refused queries); retry later
        /// Blocks kept landing while an aggregate read its cells (503): the query was neither
        /// answered nor recorded, and its nonce is unused; send it again.
        case busy
        case invalidGenesis
        case invalidProof
        case invalidCheckpoint
        case invalidBlock
        case notFound
        /// A route served on a node's operator address only, asked of a member listener (404).
        case operatorOnly
        /// An HTTP request body over the route's limit (413): a query was told its body was a
        /// transaction too large (found by black-box testing).
        case requestTooLarge
        /// Clashes with a pending or committed transaction other than by being the same one
        /// (409): a record a pending transaction corrects or erases, a model or policy version
        /// already installed. `replay` is kept for the same transaction or nonce sent again,
        /// which a client may take for "sent before" (found by black-box testing).
        case conflict
    }

    public let code: Code
    public let reason: String
    /// How long to wait before sending again, when the refusal knows (`rateLimited`): the HTTP
    /// API says it in a `Retry-After` header too, which clients read without parsing the text.
    public let retryAfterMillis: UInt64?

    public init(_ code: Code, _ reason: String, retryAfterMillis: UInt64? = nil) {
        self.code = code
        self.reason = reason
        self.retryAfterMillis = retryAfterMillis
    }

    public var description: String { "\(code.rawValue): \(reason)" }
}
