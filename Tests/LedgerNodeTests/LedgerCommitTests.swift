import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerNode
import LedgerStorage
import LedgerStore
import Hummingbird
import HummingbirdTesting
import XCTest

/// The dev ledger's block producer, driven by hand (`commitPending`) so each block's contents are known.
final class LedgerCommitTests: XCTestCase {
    var directory = ""

    override func setUp() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("commit-\(UUID())").path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    /// A ledger with no producer running, and four attestations of the same size.
    func open() throws -> (Ledger, [Submission]) {
        let opened = try DevNode.open(dataDirectory: directory)
        let ledger = try Ledger(store: opened.store, validatorKeys: opened.keys, clock: { 1_795_000_000_000 })
        let h = APITests.Harness(ledger: ledger, keys: opened.keys)
        let txs = try (1...4).map { try h.attestation(nonce: UInt64($0)) }
        XCTAssertEqual(Set(txs.map(\.byteCount)).count, 1)
        return (ledger, txs)
    }

    func waitUntilQueued(_ ledger: Ledger, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ledger.queuedCount < count {
            guard ContinuousClock.now < deadline else { return XCTFail("\(count) transactions were not queued; \(ledger.queuedCount) are") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The error a submission is refused with; a failure (named by `admitted`) if it is admitted.
    func refusal(_ ledger: Ledger, _ batch: [Submission], _ admitted: String,
                 file: StaticString = #filePath, line: UInt = #line) async throws -> LedgerError? {
        do {
            _ = try await ledger.submit(batch, signedHere: false)
            XCTFail(admitted, file: file, line: line)
            return nil
        } catch let e as LedgerError { return e }
    }

    /// A batch commits in one block or not at all: when the next batch does not fit in what is
    /// left of a block, it waits whole for the next one.
    func testABatchCommitsWholeInOneBlock() async throws {
        let (ledger, txs) = try open()
        ledger.maxBlockBytes = 3 * txs[0].byteCount
        let start = ledger.store.head.height
        let a = Task { try await ledger.submit(Array(txs[0..<2]), signedHere: false) }
        try await waitUntilQueued(ledger, 2)
        let b = Task { try await ledger.submit(Array(txs[2..<4]), signedHere: false) }
        try await waitUntilQueued(ledger, 4)
        ledger.commitPending()
        XCTAssertEqual(ledger.store.head.height, start + 1)
        XCTAssertEqual(ledger.queuedCount, 2, "the second batch waits whole")
        ledger.commitPending()
        let (ra, rb) = (try await a.value, try await b.value)
        XCTAssertEqual(ra.map(\.height), [start + 1, start + 1])
        XCTAssertEqual(rb.map(\.height), [start + 2, start + 2])
        XCTAssertEqual(try ledger.store.blockHeader(height: start + 1)?.transactionCount, 2)
    }

    /// Two installs of one policy (a client retrying with a new nonce, say) are never both
    /// queued: validators check installs against committed state only, and in two blocks the
    /// second would make a chain that `credit-verify chain` refuses.
    func testASecondInstallOfAPolicyIsRefusedWhileTheFirstIsPending() async throws {
        let (ledger, _) = try open()
        let keys = ledger.validatorKeys
        let document = Array(try Data(contentsOf: URL(fileURLWithPath: VerifierCLITests.repository + "/Genesis/policies/my-queries.json")))
        func install(nonce: UInt64) throws -> Submission {
            try QueryClient.installPolicy(genesis: ledger.genesis, document: document, name: "my-queries", version: 2,
                                          submitter: keys, approvers: [keys], nonce: nonce, issuedAtMillis: 1_795_000_000_000)
        }
        // Refused at once, or (the defect) queued, where it would wait for a block: released then.
        func refusedAtOnce(_ batch: [Submission], queuedBefore: Int) async throws -> BatchError? {
            let task = Task { try await ledger.submit(batch, signedHere: false) }
            try await Task.sleep(for: .milliseconds(200))
            if ledger.queuedCount > queuedBefore { XCTFail("a second install of the policy was queued"); ledger.commitPending() }
            do { _ = try await task.value } catch let e as BatchError { return e }
            XCTFail("a second install of the policy was admitted")
            return nil
        }
        let twice = try await refusedAtOnce([try install(nonce: 12), try install(nonce: 13)], queuedBefore: 0)
        XCTAssertEqual(twice?.index, 1, "\(String(describing: twice))")
        let first = Task { try await ledger.submit([try install(nonce: 10)], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        let again = try await refusedAtOnce([try install(nonce: 11)], queuedBefore: 1)
        XCTAssertEqual((again?.error as? LedgerError)?.code, .conflict, "\(String(describing: again))")
        XCTAssertTrue("\(String(describing: again))".contains("policy my-queries version 2 is already being installed"), "\(String(describing: again))")
        ledger.commitPending()
        _ = try await first.value
        // Committed: from now on validation refuses it against committed state.
        do {
            _ = try await ledger.submit([try install(nonce: 14)], signedHere: false)
            XCTFail("the policy was installed twice")
        } catch { XCTAssertTrue("\(error)".contains("already installed"), "\(error)") }
        XCTAssertEqual(ledger.queuedCount, 0)
    }

    /// The same signed bytes sent again while pending (a client resending after a timeout) are a
    /// replay, not a conflict with the pending copy's claims. A second amendment of a record
    /// being revoked is refused while the revocation is pending, in one batch or after it, and
    /// once it commits by the revoked-record rule: both had been committed (black-box testing).
    func testAResentTransactionIsAReplayAndARevokedRecordTakesNoOtherAmendmentInItsBlock() async throws {
        let (ledger, txs) = try open()
        let keys = ledger.validatorKeys
        let record = txs[0]
        _ = try await { let t = Task { try await ledger.submit([record], signedHere: false) }; try await waitUntilQueued(ledger, 1); ledger.commitPending(); return try await t.value }()
        func amendment(_ nonce: UInt64, _ action: AmendmentBody.Action) throws -> Submission {
            if action == .revocation {
                return try AttestationRequest.revocation(of: record.transaction.id, reason: "issued_in_error", genesis: ledger.genesis, keys: keys,
                                                         nonce: nonce, issuedAtMillis: 1)
            }
            return try AttestationRequest(subject: "91350100M000100Y43", subject_kind: nil, category: "license", severity: nil, event_date: "2026-03-14",
                                          industry: "C13", attributes: ["amount_yuan": 5000], payload: .string("licence corrected \(nonce)"))
                .build(genesis: ledger.genesis, keys: keys, nonce: nonce, issuedAtMillis: 1, correcting: record.transaction.id, reason: "data_error")
        }
        func refusal(_ ledger: Ledger, _ batch: [Submission], _ admitted: String) async throws -> LedgerError? {
            do {
                _ = try await ledger.submit(batch, signedHere: false)
                XCTFail(admitted)
                return nil
            } catch let e as BatchError { return e.error as? LedgerError } catch let e as LedgerError { return e }
        }
        let revocation = try amendment(20, .revocation)
        // A correction already committed is a version of the same record: revoking the record
        // beside an amendment of that version is refused too (found in review: only amendments
        // naming the very same version were kept apart).
        let fix = try amendment(19, .correction)
        _ = try await { let t = Task { try await ledger.submit([fix], signedHere: false) }; try await waitUntilQueued(ledger, 1); ledger.commitPending(); return try await t.value }()
        let ofFix = try AttestationRequest(subject: "91350100M000100Y43", subject_kind: nil, category: "license", severity: nil, event_date: "2026-03-14",
                                           industry: "C13", attributes: ["amount_yuan": 5000], payload: .string("licence corrected again"))
            .build(genesis: ledger.genesis, keys: keys, nonce: 18, issuedAtMillis: 1, correcting: fix.transaction.id, reason: "data_error")
        let revokeFix = try AttestationRequest.revocation(of: fix.transaction.id, reason: "issued_in_error", genesis: ledger.genesis, keys: keys,
                                                          nonce: 17, issuedAtMillis: 1)
        for other in [ofFix, revokeFix] {
            do {
                _ = try await ledger.submit([revocation, other], signedHere: false)
                XCTFail("an amendment of a correction beside a revocation of its record")
            } catch let e as BatchError {
                XCTAssertEqual(e.index, 1)
                XCTAssertTrue("\(e)".contains("record \(record.transaction.id.hexString): a pending transaction revokes that record"), "\(e)")
            }
        }
        for other in [try amendment(21, .revocation), try amendment(22, .correction)] {
            do {
                _ = try await ledger.submit([revocation, other], signedHere: false)
                XCTFail("a second amendment beside a revocation of its record")
            } catch let e as BatchError {
                XCTAssertEqual(e.index, 1)
                XCTAssertEqual((e.error as? LedgerError)?.code, .conflict, "\(e)")
            }
        }
        let pending = Task { try await ledger.submit([revocation], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        let resent = try await refusal(ledger, [revocation], "the same bytes admitted twice")
        XCTAssertEqual(resent?.code, .replay, "\(String(describing: resent))")
        XCTAssertTrue(resent?.reason.contains("was already submitted and is pending") == true, "\(String(describing: resent))")
        let attestation = Task { try await ledger.submit([txs[1]], signedHere: false) }
        try await waitUntilQueued(ledger, 2)
        let again = try await refusal(ledger, [txs[1]], "the same attestation admitted twice")
        XCTAssertEqual(again?.code, .replay, "its payload commitment was reported instead: \(String(describing: again))")
        let beside = try await refusal(ledger, [try amendment(23, .correction)], "a correction beside a pending revocation")
        XCTAssertTrue(beside?.reason.contains("a pending transaction corrects, revokes or erases that record") == true, "\(String(describing: beside))")
        ledger.commitPending()
        _ = try await pending.value
        _ = try await attestation.value
        let after = try await refusal(ledger, [try amendment(24, .revocation)], "a second revocation after the first committed")
        XCTAssertTrue(after?.reason.contains("was revoked (by \(revocation.transaction.id.hexString))") == true, "\(String(describing: after))")
        // The revoked record says so where it is looked up: its status and the subject's history.
        try await Application(router: LedgerAPI(ledger: ledger).makeRouter()).test(.router) { client in
            try await client.execute(uri: "/v1/transactions/\(record.transaction.id.hexString)", method: .get) { r in
                XCTAssertEqual(APITests.json(r)["revoked_by"] as? String, revocation.transaction.id.hexString, String(buffer: r.body).prefix(300).description)
                XCTAssertEqual(APITests.json(r)["corrected_by"] as? [String], [fix.transaction.id.hexString])
            }
            // Its correction is a version of the same record: revoked with it.
            try await client.execute(uri: "/v1/transactions/\(fix.transaction.id.hexString)", method: .get) { r in
                XCTAssertEqual(APITests.json(r)["revoked_by"] as? String, revocation.transaction.id.hexString, String(buffer: r.body).prefix(300).description)
            }
            try await client.execute(uri: "/v1/subjects/91350100M000100Y43/history", method: .get) { r in
                let first = (APITests.json(r)["records"] as? [[String: Any]])?.first
                XCTAssertEqual(first?["id"] as? String, record.transaction.id.hexString)
                XCTAssertEqual(first?["revoked_by"] as? String, revocation.transaction.id.hexString, "\(String(describing: first))")
            }
        }
    }

    /// A staging directory from an interrupted first start is removed, unless it holds a store
    /// with committed blocks: only a rename into place undone by a power loss leaves those, and
    /// deleting them (as the first start used to, without a word) would lose what was
    /// acknowledged. The rename is made durable (directory fsync) before any block goes in.
    func testAStagingDirectoryHoldingBlocksIsNotDeleted() async throws {
        let (ledger, txs) = try open()
        let commit = Task { try await ledger.submit([txs[0]], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        ledger.commitPending()
        _ = try await commit.value
        XCTAssertEqual(ledger.store.head.height, 1)
        let target = directory + "-new"
        let staging = target + ".init"
        defer { try? FileManager.default.removeItem(atPath: target); try? FileManager.default.removeItem(atPath: staging) }
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try ledger.store.database.checkpoint(to: staging + "/ledger")
        XCTAssertThrowsError(try DevNode.open(dataDirectory: target)) { error in
            XCTAssertTrue("\(error)".contains("holds a ledger store with committed blocks") && "\(error)".contains("refusing to delete it"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: staging + "/ledger/CURRENT"), "the blocks were deleted")
        // A store whose creation was cut short before all its column families were made (kill -9
        // during a first start) never held a block: it is cleared, not refused for good.
        try FileManager.default.removeItem(atPath: staging + "/ledger")
        _ = try Database(path: staging + "/ledger", columnFamilies: ["meta"])
        XCTAssertFalse(try ChainStore.holdsBlocks(staging + "/ledger"))
        XCTAssertTrue(try DevNode.open(dataDirectory: target).createdGenesis)
        XCTAssertFalse(FileManager.default.fileExists(atPath: staging))
        try FileManager.default.removeItem(atPath: target)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        // A staging directory with no blocks (a first start cut short) is cleared and the start goes on.
        try FileManager.default.createDirectory(atPath: staging + "/keys", withIntermediateDirectories: true)
        XCTAssertTrue(try DevNode.open(dataDirectory: target).createdGenesis)
        XCTAssertFalse(FileManager.default.fileExists(atPath: staging))
    }

    /// A data directory given with a trailing slash starts a dev ledger, and opens it again.
    func testADevLedgerStartsInADirectoryNamedWithATrailingSlash() throws {
        let first = try DevNode.open(dataDirectory: directory + "/")
        XCTAssertTrue(first.createdGenesis)
        let genesis = first.store.genesis.hash
        _ = consume first
        let again = try DevNode.open(dataDirectory: directory + "/")
        XCTAssertFalse(again.createdGenesis)
        XCTAssertEqual(again.store.genesis.hash, genesis)
    }

    /// `--models` go into the genesis made on first start. Given again for an existing ledger
    /// whose genesis lacks them, opening is refused with what is missing (they used to be
    /// ignored without a word, and the README's scoring steps then failed further on); a
    /// restart with the models the genesis already installs opens as before.
    func testModelsForAnExistingDevLedgerAreRefusedUnlessItsGenesisHasThem() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: VerifierCLITests.repository + "/Genesis/models/individual-business.json")))
        let model = InstalledModel(name: "individual-business", version: 1, document: bytes, logIndex: nil)
        _ = try DevNode.open(dataDirectory: directory)
        XCTAssertThrowsError(try DevNode.open(dataDirectory: directory, models: [model])) {
            XCTAssertTrue("\($0)".contains("does not install model individual-business version 1"), "\($0)")
            XCTAssertTrue("\($0)".contains("use a new --data-dir"), "\($0)")
        }
        let other = directory + "-models"
        defer { try? FileManager.default.removeItem(atPath: other) }
        let first = try DevNode.open(dataDirectory: other, models: [model])
        XCTAssertTrue(first.createdGenesis)
        _ = consume first
        let again = try DevNode.open(dataDirectory: other, models: [model])
        XCTAssertFalse(again.createdGenesis)
        XCTAssertEqual(again.store.genesis.models.map { $0.name }, ["individual-business"])
        _ = consume again
        // Policies likewise: a policy file the genesis does not hold (edited since) is named.
        let policy = (source: "credit-grade.json", bytes: Array(try Data(contentsOf: URL(fileURLWithPath: VerifierCLITests.repository + "/Genesis/policies/credit-grade.json"))))
        XCTAssertThrowsError(try DevNode.open(dataDirectory: other, models: [model], policies: [policy])) {
            XCTAssertTrue("\($0)".contains("does not install policy credit-grade.json"), "\($0)")
        }
        let withPolicy = directory + "-policies"
        defer { try? FileManager.default.removeItem(atPath: withPolicy) }
        _ = try DevNode.open(dataDirectory: withPolicy, policies: [policy])
        XCTAssertFalse(try DevNode.open(dataDirectory: withPolicy, policies: [policy]).createdGenesis, "a restart with the same policy opens")
        // A first start that fails leaves nothing behind: no ledger, and no staged secret key.
        let refused = directory + "-refused"
        let leaky = (source: "leaky.json", bytes: Array(#"{"format": "creditledger-policy/v1", "name": "bank-raw", "version": 1, "scope": "subject", "callers": {"roles": ["bank"]}, "purposes": ["loan_application"], "consent": {"required": true}, "outputs": [{"name": "records", "from": "records"}]}"#.utf8))
        XCTAssertThrowsError(try DevNode.open(dataDirectory: refused, policies: [leaky])) {
            XCTAssertTrue("\($0)".contains("raw payload"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: refused))
        XCTAssertFalse(FileManager.default.fileExists(atPath: refused + ".init"), "the failed first start left its staging directory and key")
        // A symbolic link to an empty directory: the ledger goes into the directory it names, and the link stays.
        let target = directory + "-target", link = directory + "-link"
        defer { try? FileManager.default.removeItem(atPath: target); try? FileManager.default.removeItem(atPath: link) }
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        XCTAssertTrue(try DevNode.open(dataDirectory: link).createdGenesis)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target)
        XCTAssertTrue(FileManager.default.fileExists(atPath: target + "/genesis.json"))
        XCTAssertFalse(try DevNode.open(dataDirectory: link).createdGenesis, "reopened through the link")
        // A link to nothing is refused and left as it is.
        let dangling = directory + "-dangling"
        defer { try? FileManager.default.removeItem(atPath: dangling) }
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: directory + "-nowhere")
        XCTAssertThrowsError(try DevNode.open(dataDirectory: dangling)) { XCTAssertTrue("\($0)".contains("which does not exist"), "\($0)") }
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dangling), directory + "-nowhere")
    }

    /// Only a missing path or an empty directory becomes a new dev ledger: a file given by
    /// mistake is refused and left as it was (it used to be replaced), as is a directory with files.
    func testADevLedgerIsNotCreatedOverAFileOrAFullDirectory() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/notes.txt"
        try Data("my notes\n".utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try DevNode.open(dataDirectory: file)) { XCTAssertTrue("\($0)".contains("is a file"), "\($0)") }
        XCTAssertEqual(FileManager.default.contents(atPath: file), Data("my notes\n".utf8))
        XCTAssertThrowsError(try DevNode.open(dataDirectory: directory)) { XCTAssertTrue("\($0)".contains("is not empty"), "\($0)") }
        XCTAssertEqual(FileManager.default.contents(atPath: file), Data("my notes\n".utf8))
    }

    /// A batch larger than a block is refused at once, and bytes waiting for blocks are bounded:
    /// a batch past the bound is refused with the figures and nothing of it is queued.
    func testBatchAndQueueBytesAreBounded() async throws {
        let (ledger, txs) = try open()
        let size = txs[0].byteCount
        ledger.maxBlockBytes = size
        let tooLarge = try await refusal(ledger, Array(txs[0..<2]), "a batch over the block's bytes was admitted")
        XCTAssertEqual(tooLarge?.code, .fieldTooLarge)
        XCTAssertTrue(tooLarge?.reason.contains("\(2 * size) bytes") == true && tooLarge?.reason.contains("at most \(size)") == true, "\(String(describing: tooLarge))")
        ledger.maxBlockBytes = 24 << 20
        ledger.maxQueuedBytes = 3 * size
        let a = Task { try await ledger.submit(Array(txs[0..<2]), signedHere: false) }
        try await waitUntilQueued(ledger, 2)
        let full = try await refusal(ledger, Array(txs[2..<4]), "a batch past the queue's bytes was admitted")
        XCTAssertEqual(full?.code, .mempoolFull)
        XCTAssertTrue(full?.reason.contains("\(2 * size) bytes") == true && full?.reason.contains("limit \(3 * size)") == true, "\(String(describing: full))")
        XCTAssertEqual(ledger.queuedCount, 2)
        ledger.commitPending()
        _ = try await a.value
        // The bytes were given back with the block: the refused batch now fits.
        let b = Task { try await ledger.submit(Array(txs[2..<4]), signedHere: false) }
        try await waitUntilQueued(ledger, 2)
        ledger.commitPending()
        let committed = try await b.value
        XCTAssertEqual(committed.count, 2)
    }

    /// After a block's synced write fails (a full disk, an I/O error) the node writes nothing more:
    /// the block's submitters are told it may or may not be on disk, those queued behind it that it
    /// was not written, newcomers that the node must be restarted. Status shows why.
    func testAFailedWriteStopsTheNodeTakingTransactions() async throws {
        let (ledger, txs) = try open()
        let start = ledger.store.head.height
        ledger.maxBlockBytes = txs[0].byteCount
        ledger.writeBlock = { _, _ in throw StorageError(.write, "IO error: No space left on device") }
        let a = Task { try await ledger.submit([txs[0]], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        let b = Task { try await ledger.submit([txs[1]], signedHere: false) }
        try await waitUntilQueued(ledger, 2)
        ledger.commitPending()
        do { _ = try await a.value; XCTFail("the failed block's submitter was told it committed") } catch let e as StorageError {
            XCTAssertEqual(e.code, .write)
            XCTAssertTrue(e.reason.contains("block \(start + 1) could not be written") && e.reason.contains("No space left on device")
                          && e.reason.contains("after the node restarts"), e.reason)
        }
        do { _ = try await b.value; XCTFail("a transaction queued behind the failed block was told it committed") } catch let e as LedgerError {
            XCTAssertEqual(e.code, .mempoolFull)
            XCTAssertTrue(e.reason.contains("not committed") && e.reason.contains("submit again once it is restarted"), e.reason)
        }
        XCTAssertEqual(ledger.queuedCount, 0)
        // Nothing more is written, even if the disk came back, and newcomers are refused.
        ledger.writeBlock = { _, _ in XCTFail("a block was written after a failed write"); throw StorageError(.write, "unreachable") }
        do { _ = try await ledger.submit([txs[2]], signedHere: false); XCTFail("a submission was admitted after a failed write") } catch let e as StorageError {
            XCTAssertTrue(e.reason.contains("must be restarted"), e.reason)
        }
        ledger.commitPending()
        XCTAssertEqual(ledger.store.head.height, start)
        XCTAssertTrue((ledger.status()["write_failure"] as? String)?.contains("No space left on device") == true)
        XCTAssertEqual(HTTPStatusProbe.status(of: StorageError(.write, "x")), 503)
        // Health says so too (it said "ok"): a monitor polling it stops sending the node work.
        let app = Application(router: LedgerAPI(ledger: ledger).makeRouter())
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/v1/health", method: .get)
            XCTAssertEqual(health.status, .serviceUnavailable)
            let text = String(buffer: health.body)
            XCTAssertTrue(text.contains("\"status\":\"write_failure\"") && text.contains("No space left on device"), text)
        }
    }

    /// A block refused for lack of space before the store saw it (nothing written) fails its
    /// submitters with 503 `storageNoSpace`, health says so, and the node goes on: once space is
    /// freed the next block is written and health is "ok" again. It stopped taking transactions
    /// until restarted (found by black-box testing, 2026-12-07).
    func testABlockRefusedForLackOfSpaceLeavesTheNodeTakingTransactions() async throws {
        let (ledger, txs) = try open()
        let start = ledger.store.head.height
        ledger.store.database.writeReserveBytes = .max
        let refused = Task { try await ledger.submit([txs[0]], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        ledger.commitPending()
        do { _ = try await refused.value; XCTFail("committed without space") } catch let e as StorageError {
            XCTAssertEqual(e.code, .noSpace)
            XCTAssertTrue(e.reason.contains("block \(start + 1) could not be written: no space left on the device")
                          && e.reason.contains("send them again once space is freed"), e.reason)
            XCTAssertEqual(HTTPStatusProbe.status(of: e), 503)
        }
        XCTAssertTrue(ledger.writeFailureReason?.contains("no space left on the device") == true, ledger.writeFailureReason ?? "nil")
        XCTAssertEqual(ledger.store.head.height, start)
        ledger.store.database.writeReserveBytes = Database.minimumFreeBytesToOpen
        // Lifted as soon as there is space, before any block is written (queries, whose records
        // write the next block, are turned away while it holds).
        XCTAssertNil(ledger.writeFailureReason)
        let again = Task { try await ledger.submit([txs[0]], signedHere: false) }
        try await waitUntilQueued(ledger, 1)
        ledger.commitPending()
        let committed = try await again.value
        XCTAssertEqual(committed.first?.height, start + 1)
        XCTAssertNil(ledger.writeFailureReason)
    }

    /// Bodies being read at once are bounded over all connections: with the budget taken, a
    /// request is turned away with 503 before its body is read; once given back, it is read.
    func testRequestBodiesInFlightAreBounded() async throws {
        let (ledger, txs) = try open()
        let api = LedgerAPI(ledger: ledger)
        XCTAssertEqual(api.bodies.limit, 256 << 20)
        let app = Application(router: api.makeRouter())
        let body = APITests.body(APITests.wire(txs[0].transaction, txs[0].envelope))
        try await app.test(.router) { client in
            XCTAssertTrue(api.bodies.take(api.bodies.limit - 100))
            let refused = try await client.execute(uri: "/v1/transactions", method: .post, body: body)
            XCTAssertEqual(refused.status, .serviceUnavailable)
            XCTAssertTrue(String(buffer: refused.body).contains("bytes of request bodies, limit \(256 << 20)"), String(buffer: refused.body))
            api.bodies.give(api.bodies.limit - 100)
            let producer = Task { await ledger.runBlockProducer() }
            defer { producer.cancel() }
            let accepted = try await client.execute(uri: "/v1/transactions", method: .post, body: body)
            XCTAssertEqual(accepted.status, .ok, String(buffer: accepted.body))
            XCTAssertEqual(api.bodies.used, 0)
        }
    }

    /// What a request decodes from its body (a batch's transactions) is made while the body
    /// still counts against the budget, so requests past the budget cannot each hold a parsed
    /// and a decoded copy; the bytes go back once it is done.
    func testABodyCountsAgainstTheBudgetUntilItIsDecoded() async throws {
        let (ledger, _) = try open()
        let api = LedgerAPI(ledger: ledger)
        let router = Router(context: APIRequestContext.self)
        router.post("/probe") { request, context -> String in
            try await api.readBody(request, context, as: [String: String].self, limit: 1_000) { _ in "\(api.bodies.used)" }
        }
        let app = Application(router: router)
        let body = ByteBuffer(string: #"{"a":"0123456789"}"#)
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/probe", method: .post, body: body)
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(String(buffer: response.body), "\(body.readableBytes)", "the body was given back before it was decoded")
            XCTAssertEqual(api.bodies.used, 0)
        }
    }

    /// Genesis limits must let a batch fit in one block and in the mempool.
    func testLimitsRefuseABatchLargerThanABlock() {
        var limits = Limits()
        limits.maxBatchTransactions = limits.maxBlockTransactions + 1
        XCTAssertThrowsError(try limits.check()) { error in
            XCTAssertTrue("\(error)".contains("max_batch_transactions") && "\(error)".contains("max_block_transactions"), "\(error)")
        }
        limits = Limits()
        limits.maxMempoolTransactions = limits.maxBatchTransactions - 1
        XCTAssertThrowsError(try limits.check())
        XCTAssertNoThrow(try Limits().check())
    }
}

/// The HTTP status an error maps to, as the API answers it.
enum HTTPStatusProbe {
    static func status(of error: any Error) -> Int { LedgerAPI.errorResponse(error).status.code }
}
