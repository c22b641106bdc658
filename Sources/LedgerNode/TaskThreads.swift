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

/// How the C library's allocator hands freed memory back to the kernel.
public enum Allocator {
    /// glibc gives freed memory at the top of a malloc arena back to the kernel once 128 KiB
    /// pile up, and grows an arena 128 KiB at a time. A node answering queries allocates and
    /// frees megabytes a second (request bodies, proofs, receipts, RocksDB reads), so the same
    /// pages went back and forth: the kernel zeroing fresh pages was 5 % of the node's CPU at
    /// 1,000 queries/s. This keeps up to 32 MiB free per arena, grows arenas 16 MiB at a time,
    /// and still maps blocks of 4 MiB or more on their own (returned whole when freed).
    /// The cost: each malloc arena (at most 8 per core) may hold up to 32 MiB it could have
    /// returned. Left alone when the operator tunes malloc (`GLIBC_TUNABLES` naming malloc, or
    /// any `MALLOC_*` variable), or sets `CREDIT_NODE_DEFAULT_MALLOC=1`. For the serving
    /// commands (`run`, `dev`), at start.
    public static func keepFreedMemory() {
        #if canImport(Glibc)
        let environment = ProcessInfo.processInfo.environment
        if environment["CREDIT_NODE_DEFAULT_MALLOC"] == "1" || (environment["GLIBC_TUNABLES"] ?? "").contains("malloc")
            || environment.keys.contains(where: { $0.hasPrefix("MALLOC_") }) { return }
        // mallopt(3) is declared in <malloc.h>, which Swift's Glibc module leaves out; the
        // parameter numbers are glibc's: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_THRESHOLD -3.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(-1, 32 << 20)
        _ = mallopt(-2, 16 << 20)
        _ = mallopt(-3, 4 << 20)
        #endif
    }
}
