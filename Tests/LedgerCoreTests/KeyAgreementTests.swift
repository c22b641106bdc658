import LedgerCore
import LedgerCrypto
import XCTest

/// The primitives the P2P handshake and frames use, against published vectors.
final class KeyAgreementTests: XCTestCase {
    /// RFC 7748 §6.1.
    func testX25519SharedSecretRFC7748() throws {
        let alice = try X25519PrivateKey(rawRepresentation: [UInt8](hex: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")!)
        let bob = try X25519PrivateKey(rawRepresentation: [UInt8](hex: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")!)
        XCTAssertEqual(alice.publicKey.bytes.hexString, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        XCTAssertEqual(bob.publicKey.bytes.hexString, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let expected = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        XCTAssertEqual(try alice.sharedSecret(with: bob.publicKey).copiedBytes.hexString, expected)
        XCTAssertEqual(try bob.sharedSecret(with: alice.publicKey).copiedBytes.hexString, expected)
    }

    func testX25519RefusesLowOrderPoints() throws {
        let key = X25519PrivateKey()
        // The identity and a point of order 8 (RFC 7748 §7 / libsodium's blacklist).
        for point in ["0000000000000000000000000000000000000000000000000000000000000000",
                      "0100000000000000000000000000000000000000000000000000000000000000",
                      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"] {
            XCTAssertThrowsError(try key.sharedSecret(with: X25519PublicKey(bytes: [UInt8](hex: point)!)), point)
        }
    }

    /// BLAKE2b reference KAT (keyed, empty input, 64-byte output) and a 32-byte keyed value checked with Python's hashlib.
    func testKeyedBLAKE2b() throws {
        let kat = try BLAKE2b.keyedHash([], key: SecretBytes(Array(0..<64)), outputByteCount: 64)
        XCTAssertEqual(kat.copiedBytes.hexString,
                       "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568")
        let short = try BLAKE2b.keyedHash(Array("CreditLedger".utf8), key: SecretBytes(Array(0..<32)))
        XCTAssertEqual(short.copiedBytes.hexString, "dbed3fae8b4ef42ef897a18f77168d6f6bc492c230f2b57ab73ed90a868a6559")
        XCTAssertThrowsError(try BLAKE2b.keyedHash([], key: SecretBytes([1, 2, 3])))
        XCTAssertThrowsError(try BLAKE2b.keyedHash([], key: SecretBytes(Array(0..<32)), outputByteCount: 8))
    }

    /// The buffer variants agree with the array API and fail closed.
    func testXChaCha20Poly1305IntoBuffers() throws {
        let key = SecureRandom.bytes(32), nonce = SecureRandom.bytes(24), ad: [UInt8] = [0, 0, 0, 42]
        let plaintext = Array("frame payload".utf8)
        var sealed = [UInt8](repeating: 0, count: plaintext.count + 16)
        try plaintext.withUnsafeBytes { p in
            try sealed.withUnsafeMutableBytes { try XChaCha20Poly1305.seal(p, key: SecretBytes(key), nonce: nonce, associatedData: ad, into: $0) }
        }
        XCTAssertEqual(sealed, try XChaCha20Poly1305.seal(plaintext, key: key, nonce: nonce, associatedData: ad))
        var opened = [UInt8](repeating: 0, count: plaintext.count)
        try sealed.withUnsafeBytes { c in
            try opened.withUnsafeMutableBytes { try XChaCha20Poly1305.open(c, key: SecretBytes(key), nonce: nonce, associatedData: ad, into: $0) }
        }
        XCTAssertEqual(opened, plaintext)
        var tampered = sealed
        tampered[3] ^= 1
        for (ciphertext, associatedData) in [(tampered, ad), (sealed, [0, 0, 0, 43])] {
            XCTAssertThrowsError(try ciphertext.withUnsafeBytes { c in
                try opened.withUnsafeMutableBytes { try XChaCha20Poly1305.open(c, key: SecretBytes(key), nonce: nonce, associatedData: associatedData, into: $0) }
            })
        }
    }
}
