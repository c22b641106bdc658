import Foundation
import LedgerCore
import LedgerStore
import Logging
import Synchronization

/// Takes the envelopes that committed blocks erased off the disk (`ChainStore.purgeErasedEnvelopes`),
/// one purge at a time on a background queue, so the commit path never waits for the
/// compaction. Ids erased while a purge runs wait for the next one, which takes them all: at
/// most one purge is queued, whatever the number of erasing blocks.
final class EnvelopePurger: Sendable {
    let store: ChainStore
    let logger: Logger
    private let queue = DispatchQueue(label: "creditledger.envelope-purge", qos: .utility)
    private let pending = Mutex<(ids: [Hash], scheduled: Bool)>(([], false))

    init(store: ChainStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// After `submissions` were written in a block: schedules the purge of what they erased.
    func committed(_ submissions: [Submission]) {
        var erased: [Hash] = []
        for s in submissions { if case .governance(let g) = s.transaction.body { erased += g.erasedRecords } }
        guard !erased.isEmpty else { return }
        let schedule = pending.withLock { p -> Bool in
            p.ids += erased
            defer { p.scheduled = true }
            return !p.scheduled
        }
        guard schedule else { return }
        queue.async { [self] in
            // Once each among the erasures pending together (an erasure may name a record twice;
            // one purged for an earlier erasure is purged again, harmlessly, and counted).
            let ids = pending.withLock { p -> [Hash] in
                defer { p = ([], false) }
                var seen = Set<HashKey>()
                return p.ids.filter { seen.insert(HashKey($0)).inserted }
            }
            let started = ContinuousClock.now
            do {
                try store.purgeErasedEnvelopes(ids)
                logger.notice("erased envelopes of \(ids.count) record(s) purged from the store's files in \(ContinuousClock.now - started)")
            } catch {
                logger.error("cannot purge the erased envelopes of \(ids.count) record(s) from the store's files: \(error); they stay hidden, and go at the store's next compactions")
            }
        }
    }

    /// Waits for the purges scheduled so far (tests; a stopping node does not wait for one).
    func waitUntilIdle() { queue.sync {} }
}
