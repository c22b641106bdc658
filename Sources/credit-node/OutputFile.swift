import Foundation
import LedgerCore
import LedgerCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Checks where a command will write, before it does any work: not over one of the command's
/// own input files, not over a secret key file, and not over an answer receipt. Other existing files
/// are replaced: outputs such as `demo-records.jsonl` are written again on every run of a
/// script. A custodian who typed `--out` where `--key` belonged lost the X25519 secret that
/// every governance change needs (found in review); a bank that ran `query --out` twice with
/// one name lost the first answer's receipt, the only copy of its result and salt (found by
/// black-box testing).
func checkOutput(_ out: String, inputs: [String?] = [], dataDirectory: String? = nil) throws {
    // Not over what a node keeps in the data directory the command reads: `export --out
    // DIR/genesis.json` or `DIR/ledger/CURRENT` "exported", and the node could not start again
    // (found by black-box testing). Its own entries are named; other files there (an export
    // written there before, say) are replaced as anywhere else.
    if let dataDirectory, let home = resolvedPath(dataDirectory), let target = resolvedPath(out), target.hasPrefix(home + "/") {
        let entry = target.dropFirst(home.count + 1).split(separator: "/").first.map(String.init) ?? ""
        if nodeEntries.contains(entry) {
            throw fail("--out \(out) is \(entry == (target as NSString).lastPathComponent ? "" : "inside ")\(entry) in the data directory \(dataDirectory), which the node keeps; write it elsewhere; nothing was written")
        }
    }
    var link = stat()
    guard lstat(out, &link) == 0 else {
        // Nothing there yet: its directory must be, or the write fails after the work with a
        // Foundation error code (found by black-box testing).
        let parent = (out as NSString).deletingLastPathComponent
        var dir = stat()
        guard parent.isEmpty || (stat(parent, &dir) == 0 && dir.st_mode & S_IFMT == S_IFDIR) else {
            throw fail("--out \(out): directory \(parent) does not exist (or is not a directory); nothing was written")
        }
        try checkWritableDirectory(of: out)
        return
    }
    // The output is written to a temporary file renamed into place, which would replace a
    // device, a pipe or a symbolic link with a plain file and report success (found by
    // black-box testing: `--out /dev/full` "wrote" and left a file where the device was).
    guard link.st_mode & S_IFMT == S_IFREG else {
        let kind = link.st_mode & S_IFMT == S_IFLNK ? "a symbolic link" : link.st_mode & S_IFMT == S_IFDIR ? "a directory" : "a device or pipe"
        throw fail("--out \(out) is \(kind), not a regular file; name a file to write; nothing was written")
    }
    var target = stat()
    guard stat(out, &target) == 0 else { return }
    for case let input? in inputs {
        var other = stat()
        if stat(input, &other) == 0, other.st_dev == target.st_dev, other.st_ino == target.st_ino {
            throw fail("--out \(out) is \(input), an input of this command; nothing was written")
        }
    }
    if target.st_mode & S_IFMT == S_IFREG, holdsSecretKey(out) {
        throw fail("--out \(out) holds a secret key (\(MemberSecretKeys.format)); refusing to write over it, nothing was written")
    }
    // An answer receipt is the only copy of its result and salt (a transaction's receipt can be
    // fetched again). Known by its top-level format field.
    if target.st_size <= 16 << 20, let data = FileManager.default.contents(atPath: out),
       let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["format"] as? String == AnswerReceipt.format {
        throw fail("--out \(out) holds an answer receipt (\(AnswerReceipt.format)), the only copy of its result and salt; refusing to write over it: name a new file, or move that one first; nothing was written")
    }
    try checkWritableDirectory(of: out)
}

/// The output goes to a temporary file in its directory, renamed into place: that directory
/// must take a new file. Tried with a file created and removed at once, since permission bits
/// do not tell (root, read-only mounts, immutable directories). A directory that took none was
/// found only after the work: `query --out` then lost an answer that was already recorded on
/// the ledger (found by black-box testing).
private func checkWritableDirectory(of out: String) throws {
    let parent = (out as NSString).deletingLastPathComponent
    let probe = (parent.isEmpty ? "." : parent) + "/.credit-node-probe-" + SecureRandom.bytes(8).hexString
    let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
        throw fail("--out \(out): cannot create a file in \(parent.isEmpty ? "the current directory" : parent) (\(String(cString: strerror(errno)))); name a writable place; nothing was written")
    }
    close(fd)
    unlink(probe)
}

/// What a node keeps at the top of its data directory (dev and consortium nodes).
private let nodeEntries: Set = ["ledger", "keys", "consensus", "genesis.json", "member", "http.addr", "member-http.addr", "rescore-done"]

/// `path` with its directory's symbolic links and `..` resolved (the file itself need not
/// exist), or nil when its directory does not exist.
private func resolvedPath(_ path: String) -> String? {
    // Not normalised as text first: `link/../x` is where the kernel writes, not `x` (found in review).
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    if let whole = realpath(absolute, nil) {
        defer { free(whole) }
        return String(cString: whole)
    }
    let parent = (absolute as NSString).deletingLastPathComponent
    guard let dir = realpath(parent, nil) else { return nil }
    defer { free(dir) }
    let base = String(cString: dir)
    return (base == "/" ? "" : base) + "/" + (absolute as NSString).lastPathComponent
}

/// Whether the file at `path` looks like a CreditLedger secret key file (its first 64 KiB
/// name the format). A file that cannot be read is treated as one: better refused than lost.
private func holdsSecretKey(_ path: String) -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path) else { return true }
    defer { try? handle.close() }
    let head = (try? handle.read(upToCount: 64 << 10)) ?? Data()
    // The format's name up to its "/v1" (which JSONEncoder writes as "\/v1").
    let name = MemberSecretKeys.format.split(separator: "/").first.map(String.init) ?? MemberSecretKeys.format
    return head.range(of: Data("\"\(name)".utf8)) != nil
}

/// Writes a command's output file whole or not at all (a temporary file renamed into place),
/// after `checkOutput`.
func writeOutput(_ data: Data, to path: String, inputs: [String?] = []) throws {
    try checkOutput(path, inputs: inputs)
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw fail("cannot write --out \(path): \((error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription); nothing was written")
    }
}
