import Consensus
import Foundation
import LedgerCore
import LedgerCrypto

/// Valid inputs of every kind `Fuzz.one` reads, each behind its selector byte: a corpus to start
/// from, so the fuzzer mutates real structure instead of finding it byte by byte.
enum Seeds {
    static func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (genesis, keys) = Fuzz.consortium
        var seeds: [(String, UInt8, [UInt8])] = []
        let samr = genesis.member("samr")!
        let header = TransactionHeader(chainID: genesis.chainID, signer: "samr", keyID: samr.keyID, nonce: 1, issuedAtMillis: 1_795_000_000_000)
        let subject = try USCC("91350100M000100Y43")
        let consent = ConsentBody(action: .grant, subject: subject, grantee: "bank-a", purpose: .loanApplication,
                                  expiresAt: 1_800_000_000, evidence: SHA256.hash([2]))
        let tx = Transaction.sign(header: header, body: .consent(consent), key: keys["samr"]!)
        seeds.append(("transaction", 0, tx.encoded))
        let (_, envelope) = try PayloadSeal.seal(Array(#"{"decision_no":"12"}"#.utf8), to: genesis.custodians)
        seeds.append(("envelope", 1, envelope.encoded))
        let block = BlockBuilder.build(chainID: genesis.chainID, height: 1, timestampMillis: 1_795_000_000_000, previousHash: Hashes.zero,
                                       frontier: MerkleFrontier(), transactions: [tx], proposer: "samr").header
        seeds.append(("block-header", 2, block.encoded))
        let signers = ["samr", "data-bureau", "bank-a"].map { genesis.member($0)! }
        let certificate = CommitCertificate(height: 1, round: 0, blockHash: block.hash, signatures: signers.map {
            BlockBuilder.commitSignature(header: block, round: 0, validator: $0, key: keys[$0.id]!)
        })
        seeds.append(("certificate", 3, certificate.encoded + block.encoded))
        var note = SignedNote(text: Checkpoint(header: block, round: 0).text)
        for m in signers { note.sign(name: m.id, key: keys[m.id]!) }
        seeds.append(("checkpoint", 4, Array(note.serialized.utf8)))
        var request = QueryRequest(chainID: genesis.chainID, requester: "bank-a", keyID: genesis.member("bank-a")!.keyID,
                                   policy: SHA256.hash([7]), subject: subject.code, purpose: "loan_application",
                                   parameters: [(name: "amount_yuan", value: "100000")], nonce: 9, issuedAtMillis: 1_795_000_000_000)
        request.sign(with: keys["bank-a"]!)
        seeds.append(("query-request", 5, request.encoded))
        seeds.append(("safety-state", 6, SafetyState(height: 1).encoded))
        let signing = Vote.signingBytes(chainID: genesis.chainID, type: .prevote, height: 1, round: 0, blockHash: block.hash, voter: "samr")
        var w = ByteWriter()
        Vote(type: .prevote, height: 1, round: 0, blockHash: block.hash, voter: "samr", signature: keys["samr"]!.signature(for: signing)).encode(&w)
        seeds.append(("vote", 7, w.bytes))
        seeds.append(("genesis", 8, genesis.bytes))
        for (folder, selector) in [("Genesis/models", UInt8(9)), ("Genesis/policies", UInt8(10))] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder))?.sorted() ?? [] where name.hasSuffix(".json") {
                seeds.append(("\(folder.split(separator: "/").last!)-\(name)", selector, Array(FileManager.default.contents(atPath: folder + "/" + name) ?? Data())))
            }
        }
        seeds.append(("uscc", 11, Array(subject.code.utf8)))
        for (name, selector, bytes) in seeds {
            try Data([selector] + bytes).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
        }
        print("\(seeds.count) seeds written to \(directory)")
    }
}
