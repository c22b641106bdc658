import Consensus
import Foundation
import LedgerCore
import LedgerCrypto
import Policy
import Scoring

// Every decoder that reads bytes a peer, a client or a file can send: a transaction, an envelope,
// a block header, a commit certificate, a signed checkpoint, a query request, the consensus
// safety state, proposals and votes, a genesis, a scoring model, a query policy, a USCC. The
// first input byte picks the decoder. None may crash or hang on any input, and each canonical
// binary decoder must give back exactly the bytes it accepted (one encoding, one id).
//
// Fuzzing (README, "Test it"):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING --product credit-fuzz
//   .build/release/credit-fuzz -max_total_time=300 CORPUS_DIR
// Without -DFUZZING the same code is a replayer: `credit-fuzz FILE|DIR…` runs each input once
// (a crash found by the fuzzer, or the corpus), and `credit-fuzz --seeds DIR` writes valid
// inputs of every kind to start a corpus from.

enum Fuzz {
    static let decoders = 12

    /// A four-validator consortium with keys derived from names, for the decoders that check
    /// against a genesis (policies).
    static let consortium: (genesis: Genesis, keys: [String: Ed25519PrivateKey]) = {
        var keys: [String: Ed25519PrivateKey] = [:]
        var members: [Member] = []
        let roles: [(String, Set<Role>)] = [("samr", [.validator, .custodian, .governmentIssuer, .scorer]),
                                            ("data-bureau", [.validator, .custodian, .governmentIssuer, .scorer]),
                                            ("bank-a", [.validator, .bank]), ("bank-b", [.validator, .bank])]
        for (id, r) in roles {
            let signing = try! Ed25519PrivateKey(seed: SHA256.hash(Array("sign:\(id)".utf8)))
            let encryption = try! X25519PrivateKey(rawRepresentation: SHA256.hash(Array("enc:\(id)".utf8)))
            keys[id] = signing
            members.append(Member(id: id, name: id, roles: r, signingKey: signing.publicKey, encryptionKey: encryption.publicKey))
        }
        let genesis = try! Genesis(bytes: Genesis.render(chainID: "creditledger.fuzz/county", genesisTime: "2026-11-21T00:00:00Z", members: members))
        return (genesis, keys)
    }()

    static func canonical(_ what: String, _ accepted: [UInt8], _ encoded: [UInt8]) {
        if accepted != encoded {
            fatalError("\(what) decoded from \(accepted.count) bytes re-encodes to \(encoded.count) different bytes: two encodings of one value")
        }
    }

    static func one(_ data: [UInt8]) {
        guard let selector = data.first else { return }
        let input = Array(data.dropFirst())
        let genesis = consortium.genesis
        switch Int(selector) % decoders {
        case 0:
            if let tx = try? Transaction.decode(input, maxBytes: genesis.limits.maxTransactionBytes) {
                canonical("transaction", input, tx.encoded)
                _ = TransactionValidator.standard(genesis: genesis).checkStatelessResult(tx)
            }
        case 1:
            if let e = try? Envelope.decode(input, maxBytes: genesis.limits.maxEnvelopeBytes) { canonical("envelope", input, e.encoded) }
        case 2:
            if let h = try? BlockHeader.decode(input) { canonical("block header", input, h.encoded) }
        case 3:
            if let c = try? CommitCertificate.decode(input) {
                canonical("commit certificate", input, c.encoded)
                if let h = try? BlockHeader.decode(Array(input.prefix(200))) { _ = try? c.verify(header: h, genesis: genesis) }
            }
        case 4:
            guard let text = String(validating: input, as: UTF8.self) else { return }
            if let note = try? SignedNote(parsing: text) { _ = try? Checkpoint(text: note.text) }
            _ = try? Checkpoint.verify(signedNote: text, genesis: genesis)
        case 5:
            if let q = try? QueryRequest.decode(input) { canonical("query request", input, q.encoded) }
        case 6:
            _ = try? SafetyState.decode(input)
        case 7:
            var r = ByteReader(input, context: "fuzz")
            if input.first.map({ $0 & 1 == 0 }) ?? true { _ = try? Proposal.decode(&r) } else { _ = try? Vote.decode(&r) }
        case 8:
            _ = try? Genesis(bytes: input)
        case 9:
            _ = try? ScoringModel(document: input)
        case 10:
            _ = try? PolicyDocument(bytes: input, genesis: genesis)
        default:
            if let text = String(validating: input, as: UTF8.self) { _ = try? USCC(text) }
            _ = try? StrictJSONParser.parse(input)
        }
    }
}

extension TransactionValidator {
    /// The stateless checks' verdict (signature, role, limits), which must not crash either.
    func checkStatelessResult(_ tx: Transaction) -> Bool {
        (try? checkStateless(Submission(transaction: tx, envelope: nil), envelopeMayBeShredded: true)) != nil
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.one(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point as `<module>_main` and points `main` at it, so
/// libFuzzer's own `main` is not used: this one hands the command line to libFuzzer's driver.
@_cdecl("credit_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzTestOneInput)
}
#else
@main
struct Replay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--seeds", arguments.count == 2 {
            try Seeds.write(to: arguments[1])
            return
        }
        guard !arguments.isEmpty else {
            FileHandle.standardError.write(Data("usage: credit-fuzz FILE|DIR…   (replays inputs)\n       credit-fuzz --seeds DIR   (writes a starting corpus)\n".utf8))
            exit(2)
        }
        var count = 0
        let fm = FileManager.default
        for path in arguments {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(path): no such file or directory\n".utf8))
                exit(2)
            }
            let files = isDirectory.boolValue ? try fm.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 } : [path]
            for file in files {
                guard let data = fm.contents(atPath: file) else { continue }
                Fuzz.one(Array(data))
                count += 1
            }
        }
        print("\(count) inputs replayed, none crashed")
    }
}
#endif
