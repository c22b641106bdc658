import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes the process exit with status 1, saying so on standard error, when what it printed to
/// standard output could not all be written (a full disk, a closed pipe, `/dev/full`). Without
/// it the tools exited 0 after `credit-node checkpoint > cp.txt` left an empty file on a full
/// disk (found by black-box testing, 2026-12-06). Call once, first thing in `main`.
public func failExitWhenStandardOutputIsLost() {
    atexit {
        // `print` goes through C stdio, which keeps what it could not write and tries again on
        // the next flush: flushing every stream here fails if any of it is still unwritten.
        // (Swift 6 does not let this code name `stdout` or `stderr`, C globals.)
        if fflush(nil) != 0 {
            let message = "error: the output could not be written to standard output (\(String(cString: strerror(errno)))); it is incomplete\n"
            _ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
            _exit(1)
        }
    }
}

/// "cannot read PATH" with the reason, for the command-line tools' errors: no such file,
/// permission denied, a directory.
public func unreadable(_ path: String) -> String {
    var info = stat()
    if stat(path, &info) != 0 { return "cannot read \(path): \(String(cString: strerror(errno)))" }
    if info.st_mode & S_IFMT == S_IFDIR { return "cannot read \(path): it is a directory" }
    if access(path, R_OK) != 0 { return "cannot read \(path): \(String(cString: strerror(errno)))" }
    return "cannot read \(path)"
}

/// Why a request to a node failed in transport, in words an operator can act on, for the
/// tools' messages: Foundation's own (`Error Domain=NSURLErrorDomain Code=-1004 "(null)"…`)
/// names neither the node nor the cause (found by black-box testing).
public func transportProblem(_ error: any Error, timeout: Double) -> String {
    switch (error as? URLError)?.code ?? URLError.Code(rawValue: (error as NSError).code) {
    case .cannotConnectToHost: return "connection refused (is the node running, and is this its --http address?)"
    case .cannotFindHost, .dnsLookupFailed: return "no such host"
    case .timedOut: return "no answer within \(Int(timeout)) s"
    case .networkConnectionLost: return "the connection closed before the answer"
    case .notConnectedToInternet: return "no network"
    case .unsupportedURL, .badURL: return "not an http:// URL"
    default: return (error as NSError).localizedDescription
    }
}

/// The bytes of the file at `path`, refused with a message naming the file and the limit when it
/// holds more than `limit` bytes. It reads at most `limit + 1` bytes, so a huge file or an endless
/// one (`/dev/zero`, a pipe) is refused without being held in memory. The verifier reads files an
/// auditor was handed by others; without a limit such a file exhausted the machine's memory
/// before any message (found in review, 2026-12-07).
public func readInputFile(_ path: String, limit: Int, what: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ToolInputError(unreadable(path)) }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { throw ToolInputError("cannot read \(path): it is a directory") }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while bytes.count <= limit {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit + 1 - bytes.count)) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ToolInputError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if n == 0 { return bytes }
        bytes.append(contentsOf: chunk[..<n])
    }
    let size = limit % (1 << 20) == 0 ? "\(limit >> 20) MiB" : limit % 1024 == 0 ? "\(limit >> 10) KiB" : "\(limit) bytes"
    throw ToolInputError("\(path) is larger than any \(what) can be (over \(size)); check that it is the right file")
}

/// A file a tool was given that it cannot take; the description is the whole message.
public struct ToolInputError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    /// The first `limit` characters, with "…" when there were more, for quoting a value in a
    /// message: a value cut short used to read as the whole of it (found by black-box testing).
    public func clipped(_ limit: Int = 32) -> String { count > limit ? prefix(limit) + "…" : String(self) }

    /// For a log line or a terminal: control characters, line and paragraph separators and format
    /// characters (bidi overrides among them) become spaces, and replacement characters (left by
    /// a cut or invalid UTF-8) go. Text from a peer or a server could otherwise forge log lines or
    /// send terminal escapes (found in review).
    public var printable: String {
        String(String.UnicodeScalarView(unicodeScalars.filter { $0 != "\u{FFFD}" }.map { scalar in
            switch scalar.properties.generalCategory {
            case .control, .lineSeparator, .paragraphSeparator, .format: return " "
            default: return scalar
            }
        }))
    }
}
