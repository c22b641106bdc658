import LedgerCore
import LedgerCrypto
import XCTest

final class SignedNoteTests: XCTestCase {
    /// golang.org/x/mod/sumdb/note's published example: our parser and verifier accept Go's note.
    func testVerifiesGoSumdbNoteVector() throws {
        let verifier = try NoteVerifier(verifierKey: "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        XCTAssertEqual(verifier.keyID, 0xc74f20a3)
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n"
            + "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            + "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
        let parsed = try SignedNote(parsing: note)
        XCTAssertEqual(try parsed.verifiedSigners([verifier]).map(\.name), ["PeterNeumann"])
        let enoch = try NoteVerifier(verifierKey: "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop")
        XCTAssertEqual(try parsed.verifiedSigners([verifier, enoch]).count, 2)
        // Re-signing with the published signer key reproduces Go's signature byte for byte.
        let seed = Array([UInt8](base64: "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")!.dropFirst())
        var ours = SignedNote(text: parsed.text)
        ours.sign(name: "PeterNeumann", key: try Ed25519PrivateKey(seed: seed))
        XCTAssertEqual(ours.signatures.first, parsed.signatures.first)
    }

    func testMalformedNotesAreRejected() {
        let text = "a\nb\n"
        for bad in [text, text + "\n", "a\nb\n\n\u{2014} k AAAA", "a\nb\n\n- k AAAAAAAAAA==\n", "a\nb\n\n\u{2014} Bad Name AAAAAAAAAA==\n",
                    "\u{1}a\n\n\u{2014} k AAAAAAAAAA==\n"] {
            XCTAssertThrowsError(try SignedNote(parsing: bad), bad.debugDescription)
        }
    }

    func testVerifierKeyRoundTripAndBadSignatureRejectsNote() throws {
        let key = Ed25519PrivateKey()
        let v = NoteVerifier(name: "samr-330106", publicKey: key.publicKey)
        let parsed = try NoteVerifier(verifierKey: v.verifierKey)
        XCTAssertEqual(parsed, v)
        XCTAssertTrue(v.verifierKey.hasPrefix("samr-330106+"))
        XCTAssertThrowsError(try NoteVerifier(verifierKey: v.verifierKey.replacingOccurrences(of: "+", with: "+0", options: [], range: nil)))

        let checkpoint = Checkpoint(origin: "creditledger.test/x", size: 42, rootHash: SHA256.hash([1]), commit: .init(height: 7, round: 2))
        XCTAssertTrue(checkpoint.text.hasSuffix("\nblock 7 round 2\n"))
        var note = SignedNote(text: checkpoint.text)
        note.sign(name: "samr-330106", key: key)
        let reparsed = try SignedNote(parsing: note.serialized)
        XCTAssertEqual(try Checkpoint(text: reparsed.text), checkpoint)
        XCTAssertEqual(try reparsed.verifiedSigners([v]).count, 1)
        // A known key with a bad signature rejects the note; an unknown key is ignored.
        var forged = note.serialized
        forged = forged.replacingOccurrences(of: "\n42\n", with: "\n43\n")
        XCTAssertThrowsError(try SignedNote(parsing: forged).verifiedSigners([v]))
        let stranger = NoteVerifier(name: "stranger", publicKey: Ed25519PrivateKey().publicKey)
        XCTAssertEqual(try reparsed.verifiedSigners([stranger]).count, 0)
        // A known key's second line rejects the note, whatever its order and whether or not it
        // would verify (as Go's sumdb/note): a line repeated 100 times costs one check.
        let line = try XCTUnwrap(note.serialized.split(separator: "\n").last.map(String.init))
        let repeated = note.serialized + Array(repeating: line + "\n", count: SignedNote.maxSignatures - 1).joined()
        XCTAssertThrowsError(try SignedNote(parsing: repeated).verifiedSigners([v])) {
            XCTAssertTrue("\($0)".contains("more than one signature line by samr-330106 (key id \(String(v.verifierKey.split(separator: "+")[1])))"), "\($0)")
        }
        var other = SignedNote(text: "another text\n")
        other.sign(name: "samr-330106", key: key)
        let badLine = (other.serialized.split(separator: "\n").last.map(String.init) ?? "") + "\n"
        let head = note.serialized.prefix(upTo: note.serialized.range(of: "\n\n")!.upperBound)
        for (order, text) in [("bad line after the good one", note.serialized + badLine), ("bad line before the good one", String(head) + badLine + line + "\n")] {
            XCTAssertThrowsError(try SignedNote(parsing: text).verifiedSigners([v]), order)
        }
        // Unknown keys' lines, repeated or not, are ignored.
        let strangerLine = "\u{2014} stranger " + ([0, 0, 0, 1] + [UInt8](repeating: 7, count: 64)).base64String + "\n"
        XCTAssertEqual(try SignedNote(parsing: note.serialized + strangerLine + strangerLine).verifiedSigners([v]).count, 1)
        XCTAssertThrowsError(try Checkpoint(text: "o\n042\nAAAA\n"))
        // A checkpoint written before the block line, or with another extension line, names no commit.
        let root = SHA256.hash([1]).base64String
        XCTAssertNil(try Checkpoint(text: "o\n42\n\(root)\n").commit)
        XCTAssertNil(try Checkpoint(text: "o\n42\n\(root)\nfoo\n").commit)
        XCTAssertNil(try Checkpoint(text: "o\n42\n\(root)\nblocksize=4096\n").commit, "another tool's line stays opaque")
        // A line that reads as the block line but is not exactly it is refused: read as none, it
        // let the block a trusted checkpoint names go unchecked (found by black-box testing).
        for line in ["block 07 round 2", "Block 7 round 2", "block  7 round 2", "block 7", "block 7 round 2 x", "block 18446744073709551616 round 0"] {
            XCTAssertThrowsError(try Checkpoint(text: "o\n42\n\(root)\n\(line)\n"), line) { XCTAssertTrue("\($0)".contains("is not the block line"), "\($0)") }
        }
        XCTAssertThrowsError(try Checkpoint(text: "o\n42\n\(root)\nfoo\nblock 7 round 2\n"), "a block line after another line")
        XCTAssertEqual(try Checkpoint(text: "o\n42\n\(root)\nblock 7 round 2\nmore\n").commit, .init(height: 7, round: 2))
        // Extension lines are never empty; a note's bytes must be UTF-8, not repaired into it.
        XCTAssertThrowsError(try Checkpoint(text: "o\n42\n\(root)\n\nblock 7 round 2\n")) { XCTAssertTrue("\($0)".contains("empty extension line"), "\($0)") }
        XCTAssertThrowsError(try Checkpoint(text: "o\n42\n\(root)\nblock 7 round 2\n\n"))
        XCTAssertEqual(try SignedNote.text(of: Array(note.serialized.utf8)), note.serialized)
        XCTAssertThrowsError(try SignedNote.text(of: Array(note.serialized.utf8) + [0xC3])) { XCTAssertTrue("\($0)".contains("not valid UTF-8"), "\($0)") }
    }
}
