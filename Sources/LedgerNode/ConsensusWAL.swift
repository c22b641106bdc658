import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerStorage

/// The validator's consensus safety state on disk: what it last signed in the current round,
/// its lock, and the blocks it is locked on or holds as valid. Written atomically (temporary
/// file, fsync, rename, fsync of the directory) before anything it covers is sent, so a
/// restarted validator never signs a conflicting message. The safety state carries a SHA-256
/// checksum; a block file is checked against its own hash instead (its name is the block hash,
/// the header commits to the transactions and they to their envelopes), which costs nothing
/// when writing a block of megabytes. A torn or altered file is refused with an error, never
/// half-read.
public final class ConsensusWAL: @unchecked Sendable {
    public let directory: String
    static let magic: [UInt8] = Array("CLWAL1\n".utf8)
    /// Block files: magic ‖ encoded block, no checksum (see above). Files written with `magic`
    /// and a checksum by earlier versions are still read.
    static let blockMagic: [UInt8] = Array("CLWALB\n".utf8)
    private var savedBlocks = Set<Hash>()
    /// Files `load` removed as a crash's leftovers (for the node's log).
    public private(set) var leftoversRemoved: [String] = []

    public init(directory: String) throws {
        self.directory = directory
        // The directory's own name (and its parents', when this creates them) must survive a
        // power loss too, or the votes saved in it go with it, and a restarted validator could
        // sign twice.
        try DurableFile.createDirectories(directory)
    }

    var statePath: String { directory + "/safety-state" }
    func blockPath(_ hash: Hash) -> String { directory + "/block-" + hash.hexString }

    /// The persisted state and the blocks it refers to.
    public func load(limits: Limits) throws -> (SafetyState?, [Hash: CandidateBlock]) {
        // Only a missing file means no state. One that cannot be read, or looked up, holds this
        // validator's last votes and lock all the same: starting without them could sign twice.
        let present: Bool
        do { present = try DurableFile.exists(statePath) } catch {
            throw LedgerError(.notFound, "cannot look up the consensus safety state \(statePath) (this validator's last votes and lock): \(error); "
                + "refusing to start rather than risk signing twice")
        }
        guard present else {
            leftoversRemoved = removeLeftovers(keeping: [])
            return (nil, [:])
        }
        guard let raw = FileManager.default.contents(atPath: statePath) else {
            throw LedgerError(.notFound, "cannot read the consensus safety state \(statePath) (this validator's last votes and lock); "
                + "refusing to start rather than risk signing twice: make it readable, or restore it")
        }
        let state = try SafetyState.decode(try Self.unwrap(Array(raw), what: statePath))
        var blocks: [Hash: CandidateBlock] = [:]
        for hash in [state.lockedHash, state.validHash].compactMap({ $0 }) where blocks[hash] == nil {
            guard let b = FileManager.default.contents(atPath: blockPath(hash)) else { continue }
            blocks[hash] = try Self.decodeBlock(Array(b), hash: hash, limits: limits, what: blockPath(hash))
            savedBlocks.insert(hash)
        }
        // Every block the state names is kept, read or not (a file unreadable now may be made
        // readable again; the block can also be fetched from peers).
        leftoversRemoved = removeLeftovers(keeping: Set([state.lockedHash, state.validHash].compactMap { $0 }))
        return (state, blocks)
    }

    /// Removes what a crash can leave behind once the state has been read: block files the state
    /// does not name (`save` writes a new block before the state that names it and removes the
    /// old one after, so a crash in between left one behind for good, up to the largest block's
    /// size each time) and temporary files of a write that never reached its rename. Only names
    /// this class writes are touched. Failing to remove one costs disk, not safety: not an error.
    func removeLeftovers(keeping keep: Set<Hash>) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        let kept = Set(keep.map { "block-" + $0.hexString })
        var removed: [String] = []
        func isBlockName(_ name: Substring) -> Bool {
            name.hasPrefix("block-") && name.utf8.count == 6 + 64
                && name.utf8.dropFirst(6).allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
        }
        for name in names {
            let isBlock = isBlockName(name[...])
            let isTemporary = name == "safety-state.tmp" || (name.hasSuffix(".tmp") && isBlockName(name.dropLast(4)))
            guard (isBlock && !kept.contains(name)) || isTemporary else { continue }
            if (try? FileManager.default.removeItem(atPath: directory + "/" + name)) != nil { removed.append(name) }
        }
        return removed.sorted()
    }

    /// Saves `state`, first saving the content of its locked and valid blocks (from `blocks`).
    public func save(_ state: SafetyState, blocks: (Hash) -> CandidateBlock?) throws {
        let keep = Set([state.lockedHash, state.validHash].compactMap { $0 })
        for hash in keep where !savedBlocks.contains(hash) {
            guard let block = blocks(hash) else { continue }
            // The directory is synced once, after the state's rename below: that makes this
            // rename durable too, and the state never names a block whose file could be lost.
            try Self.writeDurably(Self.encodeBlock(block), to: blockPath(hash), directory: directory, syncDirectory: false)
            savedBlocks.insert(hash)
        }
        try Self.writeDurably(Self.wrap(state.encoded), to: statePath, directory: directory)
        for stale in savedBlocks.subtracting(keep) {
            try? FileManager.default.removeItem(atPath: blockPath(stale))
            savedBlocks.remove(stale)
        }
    }

    static func encodeBlock(_ block: CandidateBlock) -> [UInt8] {
        var w = ByteWriter(capacity: blockMagic.count + block.encodedSize)
        w.raw(blockMagic)
        block.encode(&w)
        return w.bytes
    }

    /// A saved block, refused unless it is whole: it must decode to the end, hash to `hash`, and
    /// carry the transactions and envelopes its header commits to.
    static func decodeBlock(_ bytes: [UInt8], hash: Hash, limits: Limits, what: String) throws -> CandidateBlock {
        let refusal = "refusing to start. Removing the file lets the node start and fetch the block from its peers"
        let block: CandidateBlock
        if bytes.starts(with: blockMagic) {
            var r = ByteReader(Array(bytes[blockMagic.count...]), context: what)
            do {
                block = try CandidateBlock.decode(&r, limits: limits)
                try r.expectEnd()
            } catch {
                throw LedgerError(.malformed, "\(what) is not a whole block (torn write or corruption): \(error); \(refusal)")
            }
        } else {
            var r = ByteReader(try unwrap(bytes, what: what), context: what)
            block = try CandidateBlock.decode(&r, limits: limits)
        }
        guard block.hash == hash else {
            throw LedgerError(.invalidBlock, "\(what) does not hold block \(hash.hexString) (corruption); \(refusal)")
        }
        if let why = ConsensusNode.contentMismatch(block) {
            throw LedgerError(.invalidBlock, "\(what) holds block \(hash.hexString) but \(why) (corruption); \(refusal)")
        }
        return block
    }

    static func wrap(_ body: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: body.count + 48)
        w.raw(magic); w.bytes32(body); w.raw(SHA256.hash(body))
        return w.bytes
    }

    static func unwrap(_ bytes: [UInt8], what: String) throws -> [UInt8] {
        var r = ByteReader(bytes, context: what)
        guard try r.raw(magic.count, "magic") == magic else { throw LedgerError(.malformed, "\(what) is not a consensus WAL file") }
        let body = try r.bytes32("body", max: 64 << 20)
        let sum = try r.raw(32, "checksum")
        try r.expectEnd()
        guard SHA256.hash(body) == sum else {
            throw LedgerError(.malformed, "\(what) fails its checksum (torn write or corruption); refusing to start rather than risk double-signing")
        }
        return body
    }

    /// `syncDirectory: false` leaves the rename to be made durable by a later directory sync.
    static func writeDurably(_ bytes: [UInt8], to path: String, directory: String, syncDirectory: Bool = true) throws {
        let tmp = path + ".tmp"
        // A full disk (or quota) is `noSpace`: the file was not renamed into place, so the
        // state it held was not saved, and the node can wait and write it again.
        func failure(_ what: String) -> StorageError {
            let code = errno
            return StorageError(code == ENOSPC || code == EDQUOT ? .noSpace : .write, "\(what): \(String(cString: strerror(code)))")
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw failure("cannot write \(tmp)") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                let e = failure("cannot write \(tmp)"); close(fd)
                throw e
            }
            offset += n
        }
        guard fsync(fd) == 0 else { let e = failure("fsync \(tmp)"); close(fd); throw e }
        close(fd)
        guard rename(tmp, path) == 0 else { throw StorageError(.write, "rename \(tmp): \(String(cString: strerror(errno)))") }
        guard syncDirectory else { return }
        // The rename is durable only once the directory is synced: until then a crash may bring
        // back the old file, and with it a state older than what was already sent.
        do { try DurableFile.syncDirectory(directory) } catch let e as DurableFile.Failure {
            throw StorageError(.write, "cannot sync directory \(directory) after renaming \(path): \(e.reason)")
        }
    }
}
