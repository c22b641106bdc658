import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An HTTP server on loopback that answers each request with whatever `reply` writes to the
/// connection: for clients that must bound how long and how much they read.
final class HostileHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    /// What each connection sent first (the request's head, as one read got it).
    final class Heads: Sendable { let list = Mutex<[String]>([]) }
    let received = Heads()

    init(reply: @escaping @Sendable (_ send: (String) -> Bool) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        var length = size
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }) == 0,
              listen(fd, 8) == 0,
              withUnsafeMutablePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0 else {
            close(fd)
            throw POSIXError(.EADDRNOTAVAIL)
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let heads = received
        Thread {
            while true {
                let connection = accept(fd, nil, nil)
                // Stopped. The listener is closed here, not in `stop`: closed there, its number
                // could go to the next server's socket while this loop still accepted on it, and
                // answer that server's client with this reply (found when a test failed so).
                guard connection >= 0 else { close(fd); return }
                // The request's head, then the reply; a send that fails (the client gave up) ends it.
                var head = [UInt8](repeating: 0, count: 65_536)
                let n = recv(connection, &head, head.count, 0)
                heads.list.withLock { $0.append(String(decoding: head[..<max(0, n)], as: UTF8.self)) }
                reply { text in
                    let bytes = Array(text.utf8)
                    return bytes.withUnsafeBytes { send(connection, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } == bytes.count
                }
                close(connection)
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))   // wakes the accept loop, which closes it
    }
}
