import LedgerCore
import LedgerCrypto
import XCTest

/// A commit certificate holds the precommits of one round (docs/CONSENSUS.md §4). Tendermint lets
/// an honest validator precommit a block in one round and lock and commit another later, so
/// signatures on a block from different rounds must never add up to a quorum.
final class CommitCertificateTests: XCTestCase {
    let c = try! TestConsortium()

    func block() throws -> BlockHeader {
        let tx = try c.attestation(nonce: 1).transaction
        return BlockBuilder.build(chainID: c.genesis.chainID, height: 1, timestampMillis: 1_795_000_000_000, previousHash: Hash(repeating: 0, count: 32),
                                  frontier: MerkleFrontier(), transactions: [tx], proposer: "samr").header
    }

    func signature(_ id: String, _ header: BlockHeader, round: UInt32) -> MemberSignature {
        BlockBuilder.commitSignature(header: header, round: round, validator: c.member(id), key: c.keys[id]!.signing)
    }

    func testSignaturesGivenInDifferentRoundsDoNotCertifyABlock() throws {
        let header = try block()
        // bank-a precommitted the block in round 1 (then locked another); samr and bank-b in round 3.
        let mixed = [signature("bank-a", header, round: 1), signature("samr", header, round: 3), signature("bank-b", header, round: 3)]
        for round: UInt32 in [1, 3] {
            let certificate = CommitCertificate(height: 1, round: round, blockHash: header.hash, signatures: mixed)
            XCTAssertThrowsError(try certificate.verify(header: header, genesis: c.genesis), "round \(round)") { error in
                XCTAssertEqual((error as? LedgerError)?.code, .badSignature)
                XCTAssertTrue("\(error)".contains("bank-a") || round == 1, "\(error)")
            }
        }
        let oneRound = ["bank-a", "samr", "bank-b"].map { signature($0, header, round: 3) }
        let certificate = CommitCertificate(height: 1, round: 3, blockHash: header.hash, signatures: oneRound)
        XCTAssertNoThrow(try certificate.verify(header: header, genesis: c.genesis))
        let decoded = try CommitCertificate.decode(certificate.encoded)
        XCTAssertEqual(decoded, certificate)
        XCTAssertEqual(certificate.encoded.first, 2, "version byte")
        XCTAssertNoThrow(try decoded.verify(header: header, genesis: c.genesis))
    }

    /// Who signed is judged before any signature is checked: one validator's signature repeated a
    /// hundred times, or too few signers, is refused without a check per entry (a certificate of
    /// 110 copies cost 110 Ed25519 checks, which let one validator keep a peer's consensus queue
    /// busy; found in review, 2026-12-06).
    func testRepeatedOrTooFewSignersAreRefusedBeforeTheSignaturesAreChecked() throws {
        let header = try block()
        let samr = signature("samr", header, round: 2)
        let repeated = CommitCertificate(height: 1, round: 2, blockHash: header.hash, signatures: Array(repeating: samr, count: 110))
        XCTAssertThrowsError(try repeated.verify(header: header, genesis: c.genesis)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .invalidBlock)
            XCTAssertTrue("\(error)".contains("more than one signature by samr"), "\(error)")
        }
        // A repeat whose signature is garbage is refused as a repeat: its signature was never checked.
        let forged = MemberSignature(member: "samr", keyID: samr.keyID, signature: [UInt8](repeating: 7, count: 64))
        let withForgedRepeat = CommitCertificate(height: 1, round: 2, blockHash: header.hash,
                                                 signatures: [samr, forged] + ["bank-a", "bank-b"].map { signature($0, header, round: 2) })
        XCTAssertThrowsError(try withForgedRepeat.verify(header: header, genesis: c.genesis)) { error in
            XCTAssertEqual((error as? LedgerError)?.code, .invalidBlock, "\(error)")
        }
        // Too few signers, one of them forged: refused for the count, not the signature.
        let few = CommitCertificate(height: 1, round: 2, blockHash: header.hash, signatures: [forged, signature("bank-a", header, round: 2)])
        XCTAssertThrowsError(try few.verify(header: header, genesis: c.genesis)) { XCTAssertTrue("\($0)".contains("needs 3"), "\($0)") }
        // Distinct signers, one forged: the signature is still checked.
        let oneForged = CommitCertificate(height: 1, round: 2, blockHash: header.hash,
                                          signatures: [forged] + ["bank-a", "bank-b"].map { signature($0, header, round: 2) })
        XCTAssertThrowsError(try oneForged.verify(header: header, genesis: c.genesis)) { XCTAssertEqual(($0 as? LedgerError)?.code, .badSignature) }
    }

    func testCheckpointCosignaturesOfDifferentRoundsAreOverDifferentTexts() throws {
        let header = try block()
        let r1 = Checkpoint(header: header, round: 1).text, r3 = Checkpoint(header: header, round: 3).text
        XCTAssertNotEqual(r1, r3)
        func cosign(_ id: String, _ text: String) -> SignedNote.Signature {
            SignedNote.Signature(name: id, keyID: c.member(id).keyID, signature: c.keys[id]!.signing.signature(for: Array(text.utf8)))
        }
        let mixed = SignedNote(text: r3, signatures: [cosign("bank-a", r1), cosign("samr", r3), cosign("bank-b", r3)])
        XCTAssertThrowsError(try Checkpoint.verify(signedNote: mixed.serialized, genesis: c.genesis))
        let note = SignedNote(text: r3, signatures: [cosign("bank-a", r3), cosign("samr", r3), cosign("bank-b", r3)])
        let (checkpoint, signers) = try Checkpoint.verify(signedNote: note.serialized, genesis: c.genesis)
        XCTAssertEqual(checkpoint.commit, .init(height: 1, round: 3))
        XCTAssertEqual(Set(signers), ["bank-a", "samr", "bank-b"])
    }

    /// Stores written before the round was signed keep their certificates: they decode with no
    /// round and verify against the old statement, which this version never signs.
    func testLegacyCertificatesStillVerify() throws {
        let header = try block()
        let message = CommitCertificate.message(chainID: c.genesis.chainID, height: 1, round: nil, blockHash: header.hash)
        XCTAssertEqual(Array(message.prefix(23)), Array("CreditLedger/v1/commit\n".utf8))
        var w = ByteWriter()
        w.u64(1); w.raw(header.hash); w.u8(3)
        for id in ["samr", "bank-a", "bank-b"] {
            w.string8(id); w.u32(c.member(id).keyID); w.raw(c.keys[id]!.signing.signature(for: message))
        }
        let legacy = try CommitCertificate.decode(w.bytes)
        XCTAssertNil(legacy.round)
        XCTAssertEqual(legacy.encoded, w.bytes)
        XCTAssertNoThrow(try legacy.verify(header: header, genesis: c.genesis))
        // The same signatures do not verify as a round-0 certificate, nor a round-0 one as legacy.
        let asRound0 = CommitCertificate(height: 1, round: 0, blockHash: header.hash, signatures: legacy.signatures)
        XCTAssertThrowsError(try asRound0.verify(header: header, genesis: c.genesis))
        let round0 = CommitCertificate(height: 1, round: 0, blockHash: header.hash,
                                       signatures: ["samr", "bank-a", "bank-b"].map { signature($0, header, round: 0) })
        XCTAssertThrowsError(try CommitCertificate(height: 1, round: nil, blockHash: header.hash, signatures: round0.signatures)
            .verify(header: header, genesis: c.genesis))
        var unknown = round0.encoded
        unknown[0] = 7
        XCTAssertThrowsError(try CommitCertificate.decode(unknown)) { XCTAssertTrue("\($0)".contains("version"), "\($0)") }
    }
}
