import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Database {
    /// Brings the store's table files into the page cache, so that after a restart or a reboot
    /// the first reads do not each wait for the disk (reads run on the threads that answer
    /// requests): one sequential pass is many times faster than the random reads it saves.
    /// `posix_fadvise(WILLNEED)` alone was measured to bring in only 535 of 1,398 MiB.
    /// Each file is mapped and faulted in with `madvise(MADV_POPULATE_READ)` (Linux 5.14),
    /// which reads it without copying it anywhere: on the 4.5 GB query-bench store, 1.5 s of
    /// system CPU against 2.2–5.1 s for `read` into a buffer, in the same 4 s. (`read` is the
    /// fallback on older kernels.)
    ///
    /// The files of `first` come first, family by family in that order, then the others: a
    /// serving node's queries read a few families at random. Files are read while their total
    /// stays within `budgetBytes` (the default: half of the memory available now), so a store
    /// larger than memory gets its first families cached without pushing everything else out.
    /// Blocks until done: call it on a thread of its own. Returns the files and bytes read, or
    /// nil when none was.
    public func warmPageCache(first: [String] = [], budgetBytes: Int? = nil) -> (files: Int, bytes: Int)? {
        #if os(Linux)
        let rank = Dictionary(first.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let tables = liveTableFiles().sorted {
            (rank[$0.family] ?? first.count, $0.family, $0.path) < (rank[$1.family] ?? first.count, $1.family, $1.path)
        }
        var budget = budgetBytes ?? Self.availableMemoryBytes() / 2
        var files = 0, bytes = 0
        for table in tables {
            guard table.bytes <= budget else { break }
            budget -= table.bytes
            let fd = open(table.path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }   // compacted away meanwhile
            bytes += Self.populate(fd)
            close(fd)
            files += 1
        }
        return files > 0 ? (files, bytes) : nil
        #else
        return nil
        #endif
    }

    #if os(Linux)
    /// MADV_POPULATE_READ (Linux 5.14): fault the range in, reading it, without mapping it writable.
    static let madvisePopulateRead: Int32 = 22

    /// Brings one open file into the page cache; returns its size in bytes.
    static func populate(_ fd: Int32) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 0 else { return 0 }
        let size = Int(info.st_size)
        // A table file is never truncated (compaction unlinks it, which leaves the mapping valid).
        if let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED {
            defer { munmap(map, size) }
            var offset = 0
            while offset < size {
                let length = min(64 << 20, size - offset)
                guard madvise(map + offset, length, madvisePopulateRead) == 0 else { break }
                offset += length
            }
            if offset >= size { return size }
        }
        // An older kernel: read it through a buffer.
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = pread(fd, buffer, 1 << 20, off_t(total))
            if n <= 0 { break }
            total += n
        }
        return total
    }
    #endif

    /// Runs `warmPageCache(first:budgetBytes:)` on a thread of its own, then hands `report`
    /// what it read and how long it took, on that thread. At normal priority: under a load
    /// that keeps both cores busy a lowered pass (nice 19) barely ran, and the node stayed
    /// cold, doing the random reads the pass saves, for as long as the load lasted (a query
    /// run after a build and a compaction at open fell 4.7 s behind with it, 2.4 s with the
    /// pass at normal priority reading into a buffer; docs/BENCHMARKS.md). The pass is cheap
    /// enough now to finish in a few seconds beside the load.
    public func warmPageCacheInBackground(first: [String], budgetBytes: Int? = nil,
                                          then report: @escaping @Sendable ((files: Int, bytes: Int)?, Duration) -> Void) {
        Thread.detachNewThread {
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
