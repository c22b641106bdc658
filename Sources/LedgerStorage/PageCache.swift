import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Database {
    /// Reads the store's table files once, front to back, so that the page cache holds them.
    /// After a restart or a reboot the first reads would otherwise each wait for the disk, and
    /// reads run on the threads that answer requests; one sequential pass is many times faster
    /// than the random reads it saves (1.4 GB in under 2 s on the benchmark machine's virtual
    /// disk). `posix_fadvise(WILLNEED)` alone was measured to bring in only 535 of 1,398 MiB, so
    /// the files are read.
    ///
    /// The files of `first` are read first, family by family in that order, then the others:
    /// a serving node's queries read a few families at random, and on a 3.9 GB store the whole
    /// pass takes about 8 s. Files are read while their total stays within `budgetBytes` (the
    /// default: half of the memory available now), so a store larger than memory gets its first
    /// families cached without pushing everything else out. Blocks until done: call it on a
    /// thread of its own. Returns the files and bytes read, or nil when none was.
    public func warmPageCache(first: [String] = [], budgetBytes: Int? = nil) -> (files: Int, bytes: Int)? {
        #if os(Linux)
        let rank = Dictionary(first.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let tables = liveTableFiles().sorted {
            (rank[$0.family] ?? first.count, $0.family, $0.path) < (rank[$1.family] ?? first.count, $1.family, $1.path)
        }
        var budget = budgetBytes ?? Self.availableMemoryBytes() / 2
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var files = 0, bytes = 0
        for table in tables {
            guard table.bytes <= budget else { break }
            budget -= table.bytes
            let fd = open(table.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }   // compacted away meanwhile
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
            while true {
                let n = read(fd, buffer, 1 << 20)
                if n <= 0 { break }
                bytes += n
            }
            close(fd)
            files += 1
        }
        return files > 0 ? (files, bytes) : nil
        #else
        return nil
        #endif
    }

    /// Runs `warmPageCache(first:budgetBytes:)` on a thread of its own at the lowest CPU
    /// priority (nice 19), then hands `report` what it read and how long it took, on that
    /// thread. The pass only saves later reads, so it runs on idle time: at normal priority it
    /// took a core from a node answering 1,000 queries/s on 2 cores, whose answers fell behind
    /// by up to 2.4 s (docs/BENCHMARKS.md).
    public func warmPageCacheInBackground(first: [String], budgetBytes: Int? = nil,
                                          then report: @escaping @Sendable ((files: Int, bytes: Int)?, Duration) -> Void) {
        Thread.detachNewThread {
            #if os(Linux)
            // Who 0 is the calling thread: Linux keeps nice per thread (setpriority(2), "Bugs"),
            // and this one is the pass's own.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            #endif
            let clock = ContinuousClock()
            let started = clock.now
            let read = self.warmPageCache(first: first, budgetBytes: budgetBytes)
            report(read, clock.now - started)
        }
    }

    /// MemAvailable from /proc/meminfo, or 0 when it cannot be read.
    static func availableMemoryBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kib * 1024
    }
}
