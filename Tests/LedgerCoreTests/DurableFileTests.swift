import Foundation
import LedgerCrypto
import LedgerStore
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
        let upperCase = try plant("member.key.tmp-0123456789ABCDEF", ageSeconds: 600)
        // A link under a leftover's name is not one of create's files: it stays, and so does what it names.
        let outside = try plant("elsewhere.txt", ageSeconds: 600)
        let link = directory + "/member.key.tmp-aaaaaaaaaaaaaaaa"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: outside)

        try DurableFile.create(atPath: path, contents: Data("new".utf8), mode: 0o600)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("new".utf8))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "the crash's leftover stayed")
        for kept in [young, otherFile, notOurs, upperCase, outside, link] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: kept), "\(kept) was removed")
        }
        // Nothing else is left beside the file.
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: directory)),
                       Set(["member.key", "member.key.tmp-fedcba9876543210", "other.key.tmp-0123456789abcdef", "member.key.tmp-notours",
                            "member.key.tmp-0123456789ABCDEF", "elsewhere.txt", "member.key.tmp-aaaaaaaaaaaaaaaa"]))
    }

    /// An export killed part-way leaves its `.partial-` file beside the output: the next export
    /// to that path removes one a minute old or more (100-286 MB each stayed; found by black-box
    /// testing), and leaves a young one, another export's under way.
    func testTheNextExportRemovesAPartialFileAKilledExportLeft() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ChainStore.create(path: directory + "/ledger", genesis: try TestConsortium().genesis)
        let out = directory + "/chain.export"
        let stale = out + ".partial-0123456789abcdef", young = out + ".partial-fedcba9876543210"
        for (file, age) in [(stale, 600.0), (young, 5.0)] {
            XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("part".utf8)))
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-age)], ofItemAtPath: file)
        }
        _ = try ChainExport.write(store: store, to: out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "the killed export's file stayed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: young))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    /// A crash after the link and before the temporary name is removed leaves the file under
    /// both names: a later create of it is refused (the file exists), and still removes the
    /// second name once it is old.
    func testARefusedCreateStillRemovesASecondNameACrashLeft() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("durable-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/member.key"
        try DurableFile.create(atPath: path, contents: Data("secret".utf8), mode: 0o600)
        let second = directory + "/member.key.tmp-00112233445566ff"
        XCTAssertEqual(link(path, second), 0)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-600)], ofItemAtPath: second)
        XCTAssertThrowsError(try DurableFile.create(atPath: path, contents: Data("other".utf8), mode: 0o600))
        XCTAssertFalse(FileManager.default.fileExists(atPath: second), "the second name stayed")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data("secret".utf8))
    }
}
