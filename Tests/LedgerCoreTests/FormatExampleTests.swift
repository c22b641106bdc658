import LedgerCore
import LedgerCrypto
import XCTest

/// docs/FORMAT.md §11 was computed by an independent Python implementation from the document
/// alone; the Swift encoder must produce exactly those bytes, id and signatures.
final class FormatExampleTests: XCTestCase {
    func testWorkedExampleFromFormatDocument() throws {
        let c = try TestConsortium()
        let bankA = c.member("bank-a")
        XCTAssertEqual(bankA.signingKey.bytes.hexString, "114ecd1cf8cc2328778df83c2512a3a0420d88cc91217c7d58cdec228ab2048d")
        XCTAssertEqual(String(format: "%08x", bankA.keyID), "65ffb312")
        XCTAssertEqual(bankA.verifierKey, "bank-a+65ffb312+ARFOzRz4zCMod434PCUSo6BCDYjMkSF8fVjN7CKKsgSN")

        let body = ConsentBody(action: .grant, subject: try USCC("91350100M000100Y43"), grantee: "bank-a",
                               purpose: .loanApplication, expiresAt: 1_800_000_000, evidence: SHA256.hash([0x02]))
        let tx = Transaction.sign(header: c.header("bank-a", nonce: 1), body: .consent(body), key: c.keys["bank-a"]!.signing)
        let expected = "0104" + "18" + "6372656469746c65646765722e746573742f636f756e7479" + "06" + "62616e6b2d61" + "65ffb312"
            + "0000000000000001" + "000001a1ee565e00" + "00000063" + "01" + "39313335303130304d303030313030593433"
            + "06" + "62616e6b2d61" + "01" + "000000006b49d200"
            + "dbc1b4c900ffe48d575b5da5c638040125f65db0fe3e24494b76ea986457d986" + String(repeating: "00", count: 32)
            + "948b60e4795b15392a1f0e548ba7e5b88e11f39c6bdff16194cae45573189bf0"
            + "ff977171dc4a12ae001a133e1318d02ba0572c52aaeed37a83234c8d4f199702"
        XCTAssertEqual(tx.encoded.count, 221)
        XCTAssertEqual(tx.encoded.hexString, expected)
        XCTAssertEqual(tx.id.hexString, "e920b304ca738b24f16074e81fb13cbd6b3114cb08a7abfbfcdfa342b8e9ac89")

        let checkpoint = Checkpoint(origin: c.genesis.chainID, size: 1, rootHash: tx.id, commit: .init(height: 1, round: 0))
        var note = SignedNote(text: checkpoint.text)
        note.sign(name: "bank-a", key: c.keys["bank-a"]!.signing)
        XCTAssertEqual(note.serialized, "creditledger.test/county\n1\n6SCzBMpziyTxYHToH7E8vWsxFMsIp6v7/N+jQrjprIk=\nblock 1 round 0\n\n"
            + "\u{2014} bank-a Zf+zEqpa3vuSCqfLaQ6OW+R9q6nE8ZySUAeTycg3+CkWaPhX81dDIov0QmuLBOVlaYDKmlc5f24QpsM+bK1S4wGr6gk=\n")
        XCTAssertEqual(try Checkpoint(text: checkpoint.text), checkpoint)
    }
}
