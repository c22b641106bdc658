import Foundation
import LedgerCore
import LedgerCrypto
import XCTest

final class CryptoTests: XCTestCase {
    /// RFC 8032 §7.1, tests 1-3.
    func testEd25519RFC8032Vectors() throws {
        let vectors: [(seed: String, publicKey: String, message: String, signature: String)] = [
            ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
             "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
            ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
             "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
             "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
            ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
             "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
             "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        ]
        for v in vectors {
            let key = try Ed25519PrivateKey(seed: [UInt8](hex: v.seed)!)
            XCTAssertEqual(key.publicKey.bytes.hexString, v.publicKey)
            let message = [UInt8](hex: v.message)!
            let signature = key.signature(for: message)
            XCTAssertEqual(signature.hexString, v.signature)
            XCTAssertTrue(key.publicKey.isValidSignature(signature, for: message))
            var forged = signature
            forged[10] ^= 0x01
            XCTAssertFalse(key.publicKey.isValidSignature(forged, for: message))
            XCTAssertFalse(key.publicKey.isValidSignature(signature, for: message + [0]))
            XCTAssertFalse(key.publicKey.isValidSignature(Array(signature.prefix(63)), for: message))
        }
    }

    func testHashKeysCompareAndHashByTheirBytes() {
        let a = SHA256.hash(Array("a".utf8)), b = SHA256.hash(Array("b".utf8))
        XCTAssertEqual(HashKey(a), HashKey(Array(a)))
        XCTAssertEqual(HashKey(a).hashValue, HashKey(Array(a)).hashValue)
        XCTAssertNotEqual(HashKey(a), HashKey(b))
        // Same bytes up to a prefix are different keys.
        XCTAssertNotEqual(HashKey(a), HashKey(Array(a.prefix(31))))
        var set: Set<HashKey> = [HashKey(a)]
        XCTAssertFalse(set.insert(HashKey(Array(a))).inserted)
        XCTAssertTrue(set.insert(HashKey(b)).inserted)
        XCTAssertEqual(set.count, 2)
    }

    func testSHA256KnownAnswer() {
        XCTAssertEqual(SHA256.hash(Array("abc".utf8)).hexString,
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash(parts: [Array("a".utf8), Array("bc".utf8)]), SHA256.hash(Array("abc".utf8)))
    }

    func testSealedBoxRoundTripAndWrongKey() throws {
        let recipient = X25519PrivateKey()
        let other = X25519PrivateKey()
        let box = try SealedBox.seal(Array("payload key".utf8), to: recipient.publicKey)
        XCTAssertEqual(try SealedBox.open(box, with: recipient), Array("payload key".utf8))
        XCTAssertThrowsError(try SealedBox.open(box, with: other)) { error in
            XCTAssertEqual((error as? CryptoError)?.code, .decryptionFailed)
        }
        XCTAssertThrowsError(try SealedBox.open(Array(box.prefix(10)), with: recipient))
    }

    func testXChaCha20Poly1305DetectsTampering() throws {
        let key = SecureRandom.bytes(32), nonce = SecureRandom.bytes(24)
        let sealed = try XChaCha20Poly1305.seal(Array("record".utf8), key: key, nonce: nonce, associatedData: [1, 2])
        XCTAssertEqual(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: [1, 2]), Array("record".utf8))
        var tampered = sealed
        tampered[0] ^= 1
        XCTAssertThrowsError(try XChaCha20Poly1305.open(tampered, key: key, nonce: nonce, associatedData: [1, 2]))
        XCTAssertThrowsError(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: [1, 3]))
        XCTAssertThrowsError(try XChaCha20Poly1305.seal([], key: [1], nonce: nonce))
    }

    func testConstantTimeEqualsAndZeroing() {
        XCTAssertTrue(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        XCTAssertFalse(ConstantTime.equals([1, 2, 3], [1, 2]))
        var secret: [UInt8] = [9, 9, 9]
        secureZero(&secret)
        XCTAssertEqual(secret, [0, 0, 0])
        XCTAssertNotEqual(SecureRandom.bytes(32), SecureRandom.bytes(32))
    }

    func testKeyFileIsWrittenPrivateAndRefusedWhenReadableByOthers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/m.key"
        let keys = MemberSecretKeys(memberID: "bank-a")
        try keys.write(to: path)
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
        XCTAssertEqual(mode, 0o600)
        let loaded = try MemberSecretKeys.load(from: path)
        XCTAssertEqual(loaded.memberID, "bank-a")
        XCTAssertEqual(loaded.signing.publicKey, keys.signing.publicKey)
        XCTAssertEqual(loaded.encryption.publicKey, keys.encryption.publicKey)
        XCTAssertThrowsError(try keys.write(to: path), "must not overwrite an existing key file")
        XCTAssertEqual(try MemberSecretKeys.load(from: path).signing.publicKey, keys.signing.publicKey, "the refused write changed the file")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["m.key"], "a temporary file was left beside the key")

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        XCTAssertThrowsError(try MemberSecretKeys.load(from: path)) { error in
            let e = error as? CryptoError
            XCTAssertEqual(e?.code, .keyFilePermissions)
            XCTAssertTrue(e?.reason.contains("chmod 600") ?? false, "\(error)")
        }
        // Only a regular file is read as a key.
        XCTAssertThrowsError(try MemberSecretKeys.load(from: dir)) { error in
            XCTAssertTrue("\(error)".contains("not a regular file"), "\(error)")
        }
    }
}
