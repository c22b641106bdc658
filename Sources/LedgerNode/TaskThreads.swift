import Foundation
import NIOCore
import NIOPosix

/// Where Swift concurrency runs its tasks in the node process.
public enum TaskThreads {
    /// Makes NIO's event loops (one per core, the same ones that serve HTTP and P2P) Swift's
    /// global executor, instead of its own cooperative pool. A request handler then resumes on
    /// the loop that read the request, and writes the answer there, instead of hopping to a
    /// pool thread and back. Set `CREDIT_NODE_COOPERATIVE_POOL=1` to keep Swift's pool.
    /// Call once, from the main thread, before any task starts.
    public static func runOnEventLoops() {
        if ProcessInfo.processInfo.environment["CREDIT_NODE_COOPERATIVE_POOL"] == "1" { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// Where the calling task runs: "event-loops" or "swift-pool" (reported in `/v1/status`).
    public static var current: String {
        MultiThreadedEventLoopGroup.currentEventLoop != nil ? "event-loops" : "swift-pool"
    }
}
