import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage

/// One block as stored or exported, in raw bytes so a verifier can say what is wrong with them.
public struct RawBlock: Sendable {
    public let height: UInt64
    public let header: [UInt8]
    public let certificate: [UInt8]?
    public let checkpoint: String?
    public let transactions: [(transaction: [UInt8], envelope: [UInt8]?)]
}

/// Where a verifier reads a chain from: a data directory or an export file.
public protocol BlockSource {
    var genesisBytes: [UInt8] { get }
    /// Blocks in order, starting at height 1; nil at the end.
    mutating func nextBlock() throws -> RawBlock?
    /// The transaction at a log index the verifier has already checked (for references).
    func verifiedTransaction(at logIndex: UInt64) throws -> [UInt8]?
    /// Called after a block has been checked, so exports can keep what later blocks refer to.
    /// `ids`: its transactions' ids, as the verifier computed them.
    mutating func didVerify(_ block: RawBlock, ids: [Hash], firstLogIndex: UInt64) throws
    /// Whether this copy holds the envelope of the already checked record `id` (an erased
    /// record's envelope must be gone from every copy: the verifier fails one that keeps it).
    func holdsEnvelope(of id: Hash) throws -> Bool
}

/// Reads blocks from a node's data directory (opened read-only; works beside a running node).
public struct StoreBlockSource: BlockSource {
    public let store: ChainStore
    private var height: UInt64 = 0
    private let lastHeight: UInt64
    private var logIndex: UInt64 = 0

    public init(store: ChainStore) {
        self.store = store
        lastHeight = store.head.height
    }

    public var genesisBytes: [UInt8] { store.genesis.bytes }

    public mutating func nextBlock() throws -> RawBlock? {
        guard height < lastHeight else {
            // A block stored past the recorded head means a torn or tampered store.
            if let _ = try store.rawBlockHeader(height: lastHeight + 1) {
                throw LedgerError(.invalidBlock, "block \(lastHeight + 1) is stored past the head (\(lastHeight))")
            }
            return nil
        }
        height += 1
        guard let header = try store.rawBlockHeader(height: height) else {
            throw LedgerError(.invalidBlock, "block \(height) is missing (head is \(lastHeight))")
        }
        // The transaction count comes from the header; a header that does not decode is the verifier's to report.
        // The count is not trusted yet: read no more than genesis lets a block hold, plus one (the
        // verifier refuses a larger count), so a tampered header cannot make the verifier load
        // the rest of the log and its envelopes as one block.
        let count = (try? BlockHeader.decode(header)).map { Int($0.transactionCount) } ?? 0
        let readable = min(count, store.genesis.limits.maxBlockTransactions + 1)
        var transactions: [([UInt8], [UInt8]?)] = []
        transactions.reserveCapacity(readable)
        for i in 0..<readable {
            guard let tx = try store.rawTransaction(at: logIndex + UInt64(i)) else {
                // The count is the header's, not trusted yet: a damaged header reads as a gap in the log (found by black-box testing).
                throw LedgerError(.invalidBlock, "block \(height): transaction at log index \(logIndex + UInt64(i)) is missing (the block's header counts \(count) "
                    + "transactions from log index \(logIndex); either the header or the log is damaged)")
            }
            transactions.append((tx, try store.rawEnvelope(of: Merkle.leafHash(tx))))
        }
        logIndex += UInt64(count)
        return RawBlock(height: height, header: header, certificate: try store.rawCertificate(height: height),
                        checkpoint: try store.checkpoint(height: height), transactions: transactions)
    }

    public func verifiedTransaction(at logIndex: UInt64) throws -> [UInt8]? { try store.rawTransaction(at: logIndex) }
    public mutating func didVerify(_ block: RawBlock, ids: [Hash], firstLogIndex: UInt64) throws {}
    public func holdsEnvelope(of id: Hash) throws -> Bool { try store.rawEnvelope(of: id) != nil }
}

/// The portable export format (docs/FORMAT.md §13), written and read as a stream.
public enum ChainExport {
    public static let magic: [UInt8] = Array("CreditLedger-export/v1\n".utf8)

    /// Streams every block of `store` to `path`, one block in memory at a time. The file is
    /// written under a temporary name beside `path`, synced, then renamed into place: a full
    /// disk, a crash or an error leaves whatever `path` held before, never a truncated export
    /// that looks like a shorter chain. `progress` (blocks written, blocks in all) may throw
    /// to stop the export.
    public static func write(store: ChainStore, to path: String, progress: ((UInt64, UInt64) throws -> Void)? = nil) throws -> UInt64 {
        // What an export killed part-way left beside `path` (a minute old or more: not one under way).
        DurableFile.removeLeftovers(of: path, marker: ".partial-")
        let temporary = path + ".partial-" + SecureRandom.bytes(8).hexString
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o644]),
              let handle = FileHandle(forWritingAtPath: temporary) else {
            throw LedgerError(.notFound, "cannot create \(temporary) to write the export: \(String(cString: strerror(errno)))")
        }
        var renamed = false
        defer {
            try? handle.close()
            if !renamed { unlink(temporary) }
        }
        func failed(_ error: Error) -> LedgerError {
            LedgerError(.notFound, "cannot write the export \(path): \(error); \(path) was left as it was")
        }
        var out = ByteWriter(capacity: 1 << 20)
        out.raw(magic)
        out.bytes32(store.genesis.bytes)
        var source = StoreBlockSource(store: store)
        var blocks: UInt64 = 0
        let total = store.head.height
        while let block = try source.nextBlock() {
            out.u8(1)
            out.bytes32(block.header)
            out.bytes32(block.certificate ?? [])
            out.bytes32(Array((block.checkpoint ?? "").utf8))
            out.u32(UInt32(block.transactions.count))
            for t in block.transactions {
                out.bytes32(t.transaction)
                if let e = t.envelope { out.u8(1); out.bytes32(e) } else { out.u8(0) }
            }
            blocks += 1
            if out.bytes.count > 1 << 20 {
                do { try handle.write(contentsOf: out.bytes) } catch { throw failed(error) }
                out = ByteWriter(capacity: 1 << 20)
            }
            try progress?(blocks, total)
        }
        out.u8(0)
        out.u64(blocks)
        do {
            try handle.write(contentsOf: out.bytes)
            try handle.synchronize()
        } catch { throw failed(error) }
        guard rename(temporary, path) == 0 else {
            throw LedgerError(.notFound, "cannot rename the export into place at \(path): \(String(cString: strerror(errno))); \(path) was left as it was")
        }
        renamed = true
        try DurableFile.syncDirectory((path as NSString).deletingLastPathComponent)
        return blocks
    }
}

/// Reads an export file as a stream, keeping checked transactions in a scratch RocksDB
/// so references to earlier records can be resolved without holding the chain in memory.
public final class ExportBlockSource: BlockSource {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var offset = 0
    private var blocksRead: UInt64 = 0
    private var finished = false
    public private(set) var genesisBytes: [UInt8] = []
    /// The trusted genesis's limits, once known: a block holding more transactions, or a larger
    /// transaction or envelope, than they allow is refused as it is read, not held in memory
    /// first (the format's own bounds allow a million transactions of 1 MiB in one block).
    public var limits: Limits?
    private let scratchPath: String
    private let scratch: Database

    public init(path: String) throws {
        // A directory opens for reading and fails at the first read with a Foundation error dump
        // (found by black-box testing).
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw LedgerError(.notFound, "\(path) is a directory; name the export file (credit-node export --out FILE)")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LedgerError(.notFound, "cannot read export file \(path)")
        }
        self.handle = handle
        scratchPath = FileManager.default.temporaryDirectory.appendingPathComponent("credit-verify-\(UUID())").path
        scratch = try Database(path: scratchPath, columnFamilies: ["transactions", "envelopes"])
        let magic = try take(ChainExport.magic.count, "magic")
        guard magic == ChainExport.magic else {
            throw LedgerError(.malformed, "\(path) is not a CreditLedger export (bad magic)")
        }
        genesisBytes = try readBytes32("genesis", max: 1 << 20)
    }

    deinit {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: scratchPath)
    }

    private func fill(_ n: Int) throws {
        while buffer.count - offset < n {
            let chunk = try handle.read(upToCount: max(1 << 20, n)) ?? Data()
            if chunk.isEmpty { break }
            buffer = Array(buffer[offset...]) + chunk
            offset = 0
        }
    }

    private func take(_ n: Int, _ what: String) throws -> [UInt8] {
        try fill(n)
        guard buffer.count - offset >= n else {
            throw LedgerError(.truncated, "export ends inside \(what) after \(blocksRead) blocks (truncated file?)")
        }
        defer { offset += n }
        return Array(buffer[offset..<offset + n])
    }

    private func readU32(_ what: String) throws -> UInt32 { try take(4, what).reduce(0) { $0 << 8 | UInt32($1) } }

    private static func utf8(_ bytes: [UInt8], _ what: String) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else { throw LedgerError(.malformed, "export: \(what) is not UTF-8") }
        return s
    }

    private func readBytes32(_ what: String, max: Int) throws -> [UInt8] {
        let n = Int(try readU32(what))
        guard n <= max else { throw LedgerError(.fieldTooLarge, "export: \(what) is \(n) bytes, limit \(max)") }
        return try take(n, what)
    }

    public func nextBlock() throws -> RawBlock? {
        guard !finished else { return nil }
        let marker = try take(1, "block marker")[0]
        if marker == 0 {
            let declared = try take(8, "block count").reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard declared == blocksRead else {
                throw LedgerError(.invalidBlock, "export declares \(declared) blocks but holds \(blocksRead)")
            }
            try fill(1)
            guard buffer.count == offset else { throw LedgerError(.trailingBytes, "export has bytes after its end marker") }
            finished = true
            return nil
        }
        guard marker == 1 else { throw LedgerError(.malformed, "export: bad block marker \(marker) after \(blocksRead) blocks") }
        let header = try readBytes32("block header", max: 4096)
        let certificate = try readBytes32("commit certificate", max: 1 << 16)
        let checkpoint = try readBytes32("checkpoint", max: SignedNote.maxBytes)
        let count = Int(try readU32("transaction count"))
        guard count <= 1_000_000 else { throw LedgerError(.fieldTooLarge, "export: block with \(count) transactions") }
        if let limits, count > limits.maxBlockTransactions {
            throw LedgerError(.fieldTooLarge, "export: block \(blocksRead + 1) holds \(count) transactions; genesis allows at most \(limits.maxBlockTransactions)")
        }
        var transactions: [([UInt8], [UInt8]?)] = []
        transactions.reserveCapacity(min(count, 10_000))
        for i in 0..<count {
            let tx = try readBytes32("block \(blocksRead + 1) transaction \(i)", max: limits?.maxTransactionBytes ?? 1 << 20)
            let has = try take(1, "envelope flag")[0]
            guard has <= 1 else { throw LedgerError(.malformed, "export: block \(blocksRead + 1), transaction \(i): envelope flag \(has) is neither 0 nor 1") }
            transactions.append((tx, has == 1 ? try readBytes32("block \(blocksRead + 1) envelope \(i)", max: limits?.maxEnvelopeBytes ?? 1 << 20) : nil))
        }
        blocksRead += 1
        return RawBlock(height: blocksRead, header: header, certificate: certificate.isEmpty ? nil : certificate,
                        checkpoint: checkpoint.isEmpty ? nil : try Self.utf8(checkpoint, "block \(blocksRead) checkpoint"),
                        transactions: transactions)
    }

    public func verifiedTransaction(at logIndex: UInt64) throws -> [UInt8]? {
        var w = ByteWriter(capacity: 8); w.u64(logIndex)
        return try scratch.get("transactions", w.bytes)
    }

    public func didVerify(_ block: RawBlock, ids: [Hash], firstLogIndex: UInt64) throws {
        let batch = WriteBatch(for: scratch)
        for (i, t) in block.transactions.enumerated() {
            var w = ByteWriter(capacity: 8); w.u64(firstLogIndex + UInt64(i))
            try batch.put("transactions", w.bytes, t.transaction)
            // Only that the export carries it: erase_records in a later block is checked against this.
            if t.envelope != nil { try batch.put("envelopes", ids[i], []) }
        }
        try scratch.write(batch, sync: false)
    }

    public func holdsEnvelope(of id: Hash) throws -> Bool { try scratch.get("envelopes", id) != nil }
}
