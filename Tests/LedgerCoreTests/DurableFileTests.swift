import Foundation
import LedgerCrypto
import XCTest

final class DurableFileTests: XCTestCase {
    /// A create killed between writing its temporary file and linking it leaves that file, which
    /// holds what was being written (a secret key, a consent form's salt). The next create of the
    /// same path removes it once it is old enough to be no one's create under way; a young one,
    /// and files that only look alike, stay.
    func testTheNextCreateRemovesATemporaryFileACrashLeftBehind() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("durable-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/member.key"
        func plant(_ name: String, ageSeconds: Int) throws -> String {
            let file = directory + "/" + name
            XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("secret".utf8)))
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-Double(ageSeconds))], ofItemAtPath: file)
            return file
        }
        let stale = try plant("member.key.tmp-0123456789abcdef", ageSeconds: 600)
        let young = try plant("member.key.tmp-fedcba9876543210", ageSeconds: 5)
        let otherFile = try plant("other.key.tmp-0123456789abcdef", ageSeconds: 600)
        let notOurs = try plant("member.key.tmp-notours", ageSeconds: 600)

        try DurableFile.create(atPath: path, contents: Data("new".utf8), mode: 0o600)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("new".utf8))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "the crash's leftover stayed")
        for kept in [young, otherFile, notOurs] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: kept), "\(kept) was removed")
        }
        // Nothing else is left beside the file.
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: directory)),
                       Set(["member.key", "member.key.tmp-fedcba9876543210", "other.key.tmp-0123456789abcdef", "member.key.tmp-notours"]))
    }
}
