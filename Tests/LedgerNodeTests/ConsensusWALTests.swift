import Consensus
import Foundation
import LedgerCore
@testable import LedgerNode
import XCTest

final class ConsensusWALTests: XCTestCase {
    /// The rename of the safety state is made durable by syncing its directory; a directory that
    /// cannot be opened for that is an error for the caller, not a silent success.
    func testDirectorySyncFailureIsAnError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/safety-state"
        try ConsensusWAL.writeDurably([1, 2, 3], to: path, directory: directory)
        XCTAssertEqual(FileManager.default.contents(atPath: path).map(Array.init), [1, 2, 3])
        let missing = directory + "/no-such-directory"
        XCTAssertThrowsError(try ConsensusWAL.writeDurably([4, 5, 6], to: path, directory: missing)) { error in
            XCTAssertTrue("\(error)".contains(missing), "the error does not name the directory: \(error)")
        }
    }
}
