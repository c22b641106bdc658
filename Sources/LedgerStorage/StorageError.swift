/// An error from the storage engine, typed so callers can tell a missing store from a broken one.
public struct StorageError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: String, Hashable, Sendable {
        /// The store could not be opened (missing, locked, wrong column families).
        case open
        /// RocksDB reported corruption (bad checksum, truncated file).
        case corruption
        /// A read failed.
        case read
        /// A write failed (for example a full disk). Readers do not see the batch; a synced
        /// write that failed at its sync may still be on disk and replayed at the next open.
        case write
        /// A write refused before RocksDB saw it: too little free space for it and the store's
        /// reserve. Nothing was written, so the same write may be tried again once space is freed.
        case noSpace
        /// A checkpoint could not be created.
        case checkpoint
        /// The caller asked for something that does not exist.
        case unknownColumnFamily
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "storage \(code.rawValue) error: \(reason)" }

    /// RocksDB reports all errors as strings; classify the ones callers need to tell apart.
    static func fromRocksDB(_ message: String, default code: Code) -> StorageError {
        if message.contains("Corruption") || message.contains("checksum mismatch") {
            return StorageError(.corruption, message)
        }
        return StorageError(code, message)
    }
}
