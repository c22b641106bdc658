import Foundation

/// A member's secret keys as stored on disk: an Ed25519 signing seed and an X25519 secret.
///
/// The file is JSON, written with mode 0600. Loading refuses a file that group or others
/// can read, as OpenSSH does, because a leaked signing key lets anyone sign as the member.
public struct MemberSecretKeys: Sendable {
    public static let format = "creditledger-secret-key/v1"
    public let memberID: String
    public let signing: Ed25519PrivateKey
    public let encryption: X25519PrivateKey

    public init(memberID: String, signing: Ed25519PrivateKey = Ed25519PrivateKey(), encryption: X25519PrivateKey = X25519PrivateKey()) {
        self.memberID = memberID
        self.signing = signing
        self.encryption = encryption
    }

    private struct Stored: Codable {
        var format: String
        var member: String
        var ed25519_seed: String
        var x25519_secret: String
    }

    /// Writes the key file with mode 0600, refusing to overwrite an existing file. The key is
    /// written and synced under a temporary name beside it, then linked into place (which fails
    /// if the name exists) and the directory synced: a crash leaves either no key file or the
    /// whole one, never an empty file that blocks every retry.
    public func write(to path: String) throws {
        var seed = signing.seed
        var xsk = encryption.rawRepresentation
        defer { secureZero(&seed); secureZero(&xsk) }
        let stored = Stored(format: Self.format, member: memberID,
                            ed25519_seed: Data(seed).base64EncodedString(),
                            x25519_secret: Data(xsk).base64EncodedString())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(stored)
        data.append(0x0A)
        defer { data.resetBytes(in: 0..<data.count) }
        do { try DurableFile.create(atPath: path, contents: data, mode: 0o600) } catch let e as DurableFile.Failure {
            throw CryptoError(.keyFileIO, "cannot \(e.step) key file \(path): \(e.reason)\(e.step == "write" ? "; nothing was kept" : "")")
        }
    }

    /// Loads a key file, refusing one that is readable or writable by group or others.
    public static func load(from path: String) throws -> MemberSecretKeys {
        // One descriptor for the checks and the read: the file checked is the file read.
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw CryptoError(.keyFileIO, "cannot read key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw CryptoError(.keyFileIO, "cannot read key file \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFREG, info.st_size <= 64 << 10 else {
            throw CryptoError(.keyFileMalformed, "key file \(path) is not a regular file of at most 64 KiB")
        }
        let mode = info.st_mode & 0o777
        // A public key file is readable by all on purpose: told what it is, not to chmod it
        // (found by black-box testing: the chmod advice came first, the mix-up only after it).
        if path.hasSuffix(".pub.json") {
            throw CryptoError(.keyFileMalformed, "\(path) is a public key file (MEMBER.pub.json): give the secret MEMBER.key written beside it")
        }
        guard mode & 0o077 == 0 else {
            throw CryptoError(.keyFilePermissions,
                "key file \(path) has mode \(String(mode, radix: 8)); secret keys must not be accessible to group or others (run: chmod 600 \(path))")
        }
        var data = Data(count: Int(info.st_size))
        let read = data.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
        guard read == data.count else {
            throw CryptoError(.keyFileIO, "cannot read key file \(path): \(read < 0 ? String(cString: strerror(errno)) : "short read")")
        }
        defer { data.resetBytes(in: 0..<data.count) }
        let stored: Stored
        do { stored = try JSONDecoder().decode(Stored.self, from: data) } catch {
            // Said in words, not as a DecodingError dump; a public key file is the likely mix-up
            // (found by black-box testing).
            let publicFile = data.range(of: Data("\"verifier_key\"".utf8)) != nil
            throw CryptoError(.keyFileMalformed, "key file \(path) is not a CreditLedger secret key file: \(DecodingProblem.describe(error))"
                + (publicFile ? "; it looks like a public key file (MEMBER.pub.json): give the secret MEMBER.key written beside it" : ""))
        }
        guard stored.format == format else {
            throw CryptoError(.keyFileMalformed, "key file \(path) has format \(stored.format), expected \(format)")
        }
        guard var seed = Data(base64Encoded: stored.ed25519_seed).map(Array.init),
              var xsk = Data(base64Encoded: stored.x25519_secret).map(Array.init) else {
            throw CryptoError(.keyFileMalformed, "key file \(path) holds keys that are not valid base64")
        }
        defer { secureZero(&seed); secureZero(&xsk) }
        return MemberSecretKeys(memberID: stored.member,
                                signing: try Ed25519PrivateKey(seed: seed),
                                encryption: try X25519PrivateKey(rawRepresentation: xsk))
    }
}

/// Creates a file whole or not at all, and never over an existing one.
public enum DurableFile {
    /// Makes a rename into (or out of) `directory` durable: without it a power loss can undo
    /// the rename while keeping what was written under the new name since. An empty path is
    /// the current directory (`deletingLastPathComponent` of a bare file name).
    public static func syncDirectory(_ directory: String) throws {
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw Failure(step: "sync", path: directory, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure(step: "sync", path: directory, reason: String(cString: strerror(errno))) }
    }

    /// Whether `path` exists: false only when it is missing (ENOENT). Any other failure to look
    /// (EACCES, EIO, ESTALE) throws: `FileManager.fileExists` reads every failure as "missing",
    /// and a node that takes its saved votes for missing can sign twice (found in review, 2026-12-06).
    public static func exists(_ path: String) throws -> Bool {
        var info = stat()
        if stat(path, &info) == 0 { return true }
        let code = errno
        if code == ENOENT { return false }
        throw Failure(step: "look up", path: path, reason: String(cString: strerror(code)))
    }

    /// Creates `directory` and any missing parents (mode `permissions`), and syncs the parent of
    /// each one it created, so that none of their names is lost on a power loss (syncing only
    /// the last one's parent left the levels above it to the file system's mercy). Returns
    /// whether anything was created.
    @discardableResult
    public static func createDirectories(_ directory: String, permissions: Int = 0o700) throws -> Bool {
        var missing: [String] = []
        var path = (directory as NSString).standardizingPath
        while !path.isEmpty, path != "/", try !exists(path) {
            missing.append(path)
            path = (path as NSString).deletingLastPathComponent
        }
        guard !missing.isEmpty else { return false }
        // mkdir itself, outermost first, so a failure names the directory and the system's reason
        // ("Read-only file system"), not a Foundation error dump (found by black-box testing).
        for created in missing.reversed() where mkdir(created, mode_t(permissions)) != 0 && errno != EEXIST {
            throw Failure(step: "create", path: created, reason: String(cString: strerror(errno)))
        }
        for created in missing { try syncDirectory((created as NSString).deletingLastPathComponent) }
        return true
    }

    /// Removes a staging directory left by an interrupted first start, unless it holds a ledger
    /// store with blocks: those can only come from a start that got further than a crash of
    /// the first start leaves (a rename into place undone by a power loss), and deleting them
    /// would lose what was acknowledged. `hasBlocks` tells, given the store's path; when it
    /// throws (the store does not open: damaged, or another version's), nothing is deleted.
    public static func removeStaging(_ staging: String, store: String, hasBlocks: (String) throws -> Bool) throws {
        guard FileManager.default.fileExists(atPath: staging) else { return }
        if FileManager.default.fileExists(atPath: store + "/CURRENT") {
            let kept: String?
            do { kept = try hasBlocks(store) ? "with committed blocks (\(store))" : nil } catch {
                kept = "(\(store)) that does not open (\(error)), so it may hold committed blocks"
            }
            if let kept {
                throw Failure(step: "remove", path: staging,
                              reason: "it holds a ledger store \(kept); refusing to delete it. Move it into place if it is this node's ledger, or remove it by hand")
            }
        }
        try FileManager.default.removeItem(atPath: staging)
    }
    public struct Failure: Error, CustomStringConvertible {
        /// "create", "write", "sync" or "remove".
        public let step: String
        public let path: String
        public let reason: String
        public var description: String { "cannot \(step) \(path): \(reason)\(step == "write" ? "; nothing was kept" : "")" }
    }

    /// Writes `contents` under a temporary name beside `path` (mode `mode`), syncs it, links it
    /// to `path` (which fails if the name exists) and syncs the directory. A crash leaves either
    /// no file or the whole one, never an empty or partial file that blocks every retry. The
    /// temporary file a crash left behind is removed by the next create of the same path, once
    /// it is a minute old (`removeLeftovers`).
    public static func create(atPath path: String, contents data: Data, mode: mode_t) throws {
        func failure(_ step: String, _ code: Int32) -> Failure { Failure(step: step, path: path, reason: String(cString: strerror(code))) }
        // Before the existence check: a crash after the link and before the unlink leaves the
        // file and a second name for it, which a later create, refused, must still remove.
        removeLeftovers(of: path)
        guard access(path, F_OK) != 0 else { throw failure("create", EEXIST) }
        // A random name: a crash can leave one behind, and a rerun with the same pid (PID 1 in
        // a container) must not trip over it.
        let temporary = path + ".tmp-" + SecureRandom.bytes(8).map { String(format: "%02x", $0) }.joined()
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard fd >= 0 else { throw failure("create", errno) }
        // The temporary name never outlives this call: once linked, the contents are under `path`.
        defer { unlink(temporary) }
        let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = written == data.count && fsync(fd) == 0
        let reason = written < 0 || written == data.count ? String(cString: strerror(errno)) : "short write (disk full?)"
        close(fd)
        guard synced else { throw Failure(step: "write", path: path, reason: reason) }
        if link(temporary, path) != 0 {
            // A file system without hard links (vfat, some network mounts): rename, which would
            // replace a file created meanwhile, so the name is checked again just before.
            let linkError = errno
            guard linkError == EPERM || linkError == ENOTSUP || linkError == EOPNOTSUPP else { throw failure("create", linkError) }
            guard access(path, F_OK) != 0 else { throw failure("create", EEXIST) }
            guard rename(temporary, path) == 0 else { throw failure("create", errno) }
        }
        unlink(temporary)
        // Not `try?`: a key handed out, or a genesis file sent, whose name a power loss could
        // still undo is not created.
        try syncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// A temporary file of `create` older than this is a crash's leftover, not one being written.
    static let leftoverAgeSeconds = 60

    /// Removes the temporary files (`path.tmp-` and 16 lower-case hex digits) that a `create`
    /// of `path` killed before its end left behind, once they are `leftoverAgeSeconds` old by
    /// their modification time (a younger one may be another process's create under way). They
    /// hold what was being written, a secret key or a consent form's salt, at the file's mode;
    /// they stayed for good (noticed 2026-12-07). Only regular files this user owns, never
    /// followed. Best effort: a name that cannot be read or removed is left.
    /// `marker`: what comes between `path` and the 16 hex digits (`.tmp-` here, `.partial-` for
    /// an export, whose leftovers from a killed export of 100-286 MB were never removed; found by
    /// black-box testing, 2026-12-08).
    public static func removeLeftovers(of path: String, marker: String = ".tmp-") {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + marker
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory) else { return }
        let now = time(nil)
        for name in names where name.hasPrefix(prefix) {
            let suffix = name.utf8.dropFirst(prefix.utf8.count)
            guard suffix.count == 16, suffix.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { continue }
            let leftover = directory.isEmpty ? name : directory + "/" + name
            var info = stat()
            guard lstat(leftover, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_uid == geteuid() else { continue }
            #if canImport(Darwin)
            let modified = info.st_mtimespec.tv_sec
            #else
            let modified = info.st_mtim.tv_sec
            #endif
            guard now - modified >= leftoverAgeSeconds else { continue }
            unlink(leftover)
        }
    }
}
