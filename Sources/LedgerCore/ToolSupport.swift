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
