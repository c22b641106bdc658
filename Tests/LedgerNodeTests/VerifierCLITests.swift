import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStorage
import LedgerStore
import XCTest

/// `credit-node` and `credit-verify` as people run them: real processes, exit codes, messages.
final class VerifierCLITests: XCTestCase {
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], standardOutput: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BuiltTools.path(tool) ?? tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = try standardOutput.map { try XCTUnwrap(FileHandle(forWritingAtPath: $0), $0) } ?? pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Operators and auditors compare builds: each tool names its version and the formats it reads.
    func testBothToolsNameTheirVersionAndFormats() throws {
        for tool in ["credit-node", "credit-verify"] {
            let (status, output) = try Self.run(tool, ["--version"])
            XCTAssertEqual(status, 0, output)
            XCTAssertTrue(output.hasPrefix("\(tool) \(Release.version) (transaction v1, block v1, envelope v1, genesis creditledger-genesis/v1, "
                                           + "store \(ChainStore.storeFormat), receipt creditledger-receipt/v1, answer creditledger-answer/v1)"), output)
        }
        // A usage mistake with --json is answered in JSON too (it was usage text on stderr alone).
        let (status, output) = try Self.run("credit-verify", ["chain", "--json"])
        XCTAssertEqual(status, 64, output)
        XCTAssertTrue(output.contains(#"{"ok":false,"reason":"give exactly one of --data-dir or --export"}"#), output)
    }

    func testVerifyChainReceiptAndConsistencyFromTheCommandLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: dir + ".log") }
        let node = try DevNodeProcess(dataDir: dir)
        defer { node.terminate() }
        let url = try node.waitForAddress()
        let client = LedgerClient(baseURL: url)
        let genesis = dir + "/genesis.json"

        let penalty = Self.repository + "/Genesis/examples/penalty.json"
        let submit = ["submit", "--node", url, "--key", dir + "/keys/dev.key", "--file", penalty]
        // The payload is sealed to the custodians of a genesis the member holds, never to whoever the node names.
        let unpinned = try Self.run("credit-node", submit)
        XCTAssertEqual(unpinned.status, 1, unpinned.output)
        XCTAssertTrue(unpinned.output.contains("--genesis FILE is required"), unpinned.output)
        var other = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: genesis))) as? [String: Any])
        other["chain_id"] = "creditledger.dev/another"
        try JSONSerialization.data(withJSONObject: other).write(to: URL(fileURLWithPath: dir + "/other-genesis.json"))
        let foreign = try Self.run("credit-node", submit + ["--genesis", dir + "/other-genesis.json"])
        XCTAssertEqual(foreign.status, 1, foreign.output)
        XCTAssertTrue(foreign.output.contains("nothing was sent"), foreign.output)
        XCTAssertEqual(try client.getJSON("/v1/health")["log_size"] as? Int, 0, "nothing reached the ledger")

        let first = try Self.run("credit-node", submit + ["--genesis", genesis])
        XCTAssertEqual(first.status, 0, first.output)
        // Sent again (a retry after a timeout, say): the derived nonce makes it a replay, not a second
        // penalty, and the command says where the first copy committed.
        let firstID = try XCTUnwrap(first.output.split(separator: "\n").first { $0.hasPrefix("{") }
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["id"] as? String, first.output)
        let again = try Self.run("credit-node", submit + ["--genesis", genesis])
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.output.contains("already on the ledger: this file was sent before and committed as transaction \(firstID)"), again.output)
        XCTAssertTrue(again.output.contains("\"sent_before\":true"), again.output)
        // With a nonce given by hand, another transaction holding it is an error that names it.
        let nonceText = try XCTUnwrap(again.output.range(of: #"nonce (\d+)"#, options: .regularExpression).map { again.output[$0].dropFirst(6) })
        let byHand = try Self.run("credit-node", submit + ["--genesis", genesis, "--nonce", String(nonceText)])
        XCTAssertEqual(byHand.status, 1, byHand.output)
        XCTAssertTrue(byHand.output.contains("409") && byHand.output.contains("transaction \(firstID) holds that nonce"), byHand.output)
        XCTAssertTrue(byHand.output.contains("--nonce \(nonceText) was used before by dev: if that transaction is an earlier send of this file"), byHand.output)
        XCTAssertFalse(byHand.output.contains("if this file was sent before"), byHand.output)
        let history = try client.getJSON("/v1/subjects/91350100M000100Y43/history")
        XCTAssertEqual((history["records"] as? [Any])?.count, 1, "\(history)")
        try client.checkpoint().write(toFile: dir + "/old.checkpoint", atomically: true, encoding: .utf8)
        // An export of the chain as it is now, beside the running node: later it is a copy cut short.
        XCTAssertEqual(try Self.run("credit-node", ["export", "--data-dir", dir, "--out", dir + "/old.export"]).status, 0)
        let demo = try Self.run("credit-node", ["demo", "--node", url, "--genesis", genesis, "--key", dir + "/keys/dev.key", "--count", "40"])
        XCTAssertEqual(demo.status, 0, demo.output)
        XCTAssertTrue(demo.output.contains("inclusion proof verifies"), demo.output)
        try client.checkpoint().write(toFile: dir + "/new.checkpoint", atomically: true, encoding: .utf8)

        // The whole chain, read-only beside the running node.
        let chain = try Self.run("credit-verify", ["chain", "--data-dir", dir + "/ledger", "--genesis", genesis, "--json"])
        XCTAssertEqual(chain.status, 0, chain.output)
        let summary = try JSONSerialization.jsonObject(with: Data(chain.output.utf8)) as? [String: Any]
        XCTAssertEqual(summary?["transactions"] as? Int, 41)
        XCTAssertEqual(summary?["envelopes_erased"] as? Int, 0)
        XCTAssertEqual(summary?["envelopes_missing"] as? Int, 0)
        XCTAssertEqual(summary?["indexes_checked"] as? String, "all")
        XCTAssertEqual(summary?["indexes_unchecked"] as? String, "")

        // A receipt for one transaction, checked with the genesis file alone.
        let id = (try client.getJSON("/v1/blocks/1")["transactions"] as! [String])[0]
        XCTAssertEqual(try Self.run("credit-node", ["receipt", id, "--node", url, "--out", dir + "/receipt.json"]).status, 0)
        let receipt = try Self.run("credit-verify", ["receipt", dir + "/receipt.json", "--genesis", genesis])
        XCTAssertEqual(receipt.status, 0, receipt.output)
        XCTAssertTrue(receipt.output.contains("OK: transaction \(id)"), receipt.output)
        let genesisHash = SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: genesis)))).hexString
        XCTAssertTrue(receipt.output.contains("under the genesis you trust, SHA-256 \(genesisHash)"), receipt.output)

        // Consistency between the two checkpoints, fetched, and from a proof file.
        let consistency = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                         "--genesis", genesis, "--from", url])
        XCTAssertEqual(consistency.status, 0, consistency.output)
        // A node that cannot be reached, and an export that is a directory, are said in words
        // (both were Foundation error dumps; found by black-box testing).
        let unreachable = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                         "--genesis", genesis, "--from", "http://127.0.0.1:1"])
        XCTAssertEqual(unreachable.status, 1, unreachable.output)
        XCTAssertTrue(unreachable.output.contains("connection refused") && !unreachable.output.contains("NSURLErrorDomain"), unreachable.output)
        let directory = try Self.run("credit-verify", ["chain", "--export", dir, "--genesis", genesis])
        XCTAssertEqual(directory.status, 1, directory.output)
        XCTAssertTrue(directory.output.contains("is a directory; name the export file"), directory.output)
        // The same proof saved as a file with Windows line ends.
        let sizes = try [dir + "/old.checkpoint", dir + "/new.checkpoint"].map {
            try String(contentsOfFile: $0, encoding: .utf8).split(separator: "\n")[1]
        }
        let hashes = try XCTUnwrap(try client.getJSON("/v1/proofs/consistency?old=\(sizes[0])&new=\(sizes[1])")["hashes"] as? [String])
        XCTAssertFalse(hashes.isEmpty)
        try hashes.map { $0 + "\r\n" }.joined().write(toFile: dir + "/crlf.proof", atomically: true, encoding: .utf8)
        let crlf = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                  "--genesis", genesis, "--proof", dir + "/crlf.proof"])
        XCTAssertEqual(crlf.status, 0, crlf.output)
        try "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".write(toFile: dir + "/bad.proof", atomically: true, encoding: .utf8)
        let rewritten = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                       "--genesis", genesis, "--proof", dir + "/bad.proof"])
        XCTAssertEqual(rewritten.status, 1)
        XCTAssertTrue(rewritten.output.contains("does NOT verify"), rewritten.output)
        // An empty proof file is that, not a rewritten log.
        try "".write(toFile: dir + "/empty.proof", atomically: true, encoding: .utf8)
        let empty = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                   "--genesis", genesis, "--proof", dir + "/empty.proof"])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.output.contains("empty.proof holds no proof hashes"), empty.output)
        let both = try Self.run("credit-verify", ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint",
                                                  "--genesis", genesis, "--proof", dir + "/crlf.proof", "--from", url])
        XCTAssertEqual(both.status, 1)
        XCTAssertTrue(both.output.contains("give --proof FILE or --from URL, not both"), both.output)
        // A reply is read within limits: an error status is said as one, and a reply without end,
        // or one trickled, is cut off (the verifier read a 4 GiB reply into memory, and waited on
        // a trickle for good; found by black-box testing, 2026-12-07).
        let consistencyFrom = ["consistency", dir + "/old.checkpoint", dir + "/new.checkpoint", "--genesis", genesis, "--from"]
        let missing = try Self.run("credit-verify", consistencyFrom + [url + "/v1/nope"])
        XCTAssertEqual(missing.status, 1, missing.output)
        XCTAssertTrue(missing.output.contains("answered HTTP 404, not a consistency proof"), missing.output)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        let unending = try HostileHTTPServer { send in
            guard send(head + "\r\n{\"hashes\":[") else { return }
            let chunk = String(repeating: "\"AAAA\",", count: 8_192)
            for _ in 0..<4_096 where send(chunk) {}   // 256 MiB at most, if nothing cuts it off
        }
        let declared = try HostileHTTPServer { send in _ = send(head + "Content-Length: 4294967296\r\n\r\n{") }
        let trickled = try HostileHTTPServer { send in
            guard send(head + "\r\n") else { return }
            for _ in 0..<120 { guard send(" ") else { return }; Thread.sleep(forTimeInterval: 0.25) }
        }
        // A reply that repeats a key, or names other sizes than asked, is named as such.
        let proofJSON = "[" + hashes.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        let repeated = try HostileHTTPServer { send in _ = send(head + "\r\n{\"hashes\":[],\"hashes\":\(proofJSON)}") }
        let otherSizes = try HostileHTTPServer { send in _ = send(head + "\r\n{\"old_size\":\(Int(sizes[0])! + 1),\"new_size\":\(sizes[1]),\"hashes\":\(proofJSON)}") }
        defer { [unending, declared, trickled, repeated, otherSizes].forEach { $0.stop() } }
        for (server, said) in [(repeated, "did not return a consistency proof any tool reads alike"), (otherSizes, "answered with old_size \(Int(sizes[0])! + 1), not the \(sizes[0]) asked for")] {
            let odd = try Self.run("credit-verify", consistencyFrom + ["http://127.0.0.1:\(server.port)"])
            XCTAssertEqual(odd.status, 1, odd.output)
            XCTAssertTrue(odd.output.contains(said), odd.output)
        }
        for (server, said) in [(unending, "sent more than 1 MiB"), (declared, "declared 4294967296 bytes, over 1 MiB")] {
            let flooded = try Self.run("credit-verify", consistencyFrom + ["http://127.0.0.1:\(server.port)"])
            XCTAssertEqual(flooded.status, 1, flooded.output)
            XCTAssertTrue(flooded.output.contains(said + "; a consistency proof is a few kilobytes"), flooded.output)
        }
        let started = Date()
        let slow = try Self.run("credit-verify", consistencyFrom + ["http://127.0.0.1:\(trickled.port)", "--timeout-seconds", "2"])
        XCTAssertEqual(slow.status, 1, slow.output)
        XCTAssertTrue(slow.output.contains("within 2 s"), slow.output)
        XCTAssertLessThan(Date().timeIntervalSince(started), 15, "the trickle held the verifier past its deadline")

        // Output that cannot be written fails the command: to standard output (here /dev/full)…
        let lost = try Self.run("credit-verify", ["chain", "--data-dir", dir + "/ledger", "--genesis", genesis, "--json"], standardOutput: "/dev/full")
        XCTAssertEqual(lost.status, 1, lost.output)
        XCTAssertTrue(lost.output.contains("could not be written to standard output"), lost.output)
        XCTAssertEqual(try Self.run("credit-node", ["verifier-keys", "--genesis", genesis], standardOutput: "/dev/full").status, 1)
        // …or with --out naming something other than a file, which a renamed temporary file would replace.
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.export", withDestinationPath: dir + "/target.export")
        for out in [dir + "/link.export", "/dev/full", dir] {
            let refused = try Self.run("credit-node", ["export", "--data-dir", dir, "--out", out])
            XCTAssertEqual(refused.status, 1, refused.output)
            XCTAssertTrue(refused.output.contains("not a regular file") && refused.output.contains("nothing was written"), refused.output)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/target.export"))
        // …or into the data directory it reads, over the node's own files or into its store (an
        // export over ledger/CURRENT or genesis.json "exported", and the node could not start).
        let current = try Data(contentsOf: URL(fileURLWithPath: dir + "/ledger/CURRENT"))
        for out in [dir + "/ledger/CURRENT", dir + "/genesis.json", dir + "/../" + (dir as NSString).lastPathComponent + "/genesis.json", dir + "/ledger/new.export"] {
            let refused = try Self.run("credit-node", ["export", "--data-dir", dir, "--out", out])
            XCTAssertEqual(refused.status, 1, refused.output)
            XCTAssertTrue(refused.output.contains("in the data directory \(dir), which the node keeps") && refused.output.contains("nothing was written"), refused.output)
        }
        let rescored = try Self.run("credit-node", ["rescore", "--data-dir", dir, "--model", "enterprise", "--out", dir + "/genesis.json"])
        XCTAssertEqual(rescored.status, 1, rescored.output)
        XCTAssertTrue(rescored.output.contains("is genesis.json in the data directory"), rescored.output)
        // Other files there are the operator's: an export written there is written again (a nightly backup, say).
        for _ in 0..<2 { XCTAssertEqual(try Self.run("credit-node", ["export", "--data-dir", dir, "--out", dir + "/nightly.export"]).status, 0) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/ledger/CURRENT")), current)
        XCTAssertNoThrow(try Genesis(file: genesis))
        // A second node on an address in use is told which address; a misspelt log level is named.
        let busy = try Self.run("credit-node", ["dev", "--data-dir", dir + "-busy", "--http", String(url.dropFirst("http://".count))])
        XCTAssertEqual(busy.status, 1, busy.output)
        XCTAssertTrue(busy.output.contains("--http \(url.dropFirst("http://".count)) is in use by another process") && busy.output.contains("nothing was started"), busy.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "-busy"), "a dev ledger was made before the refusal")
        let loud = try Self.run("credit-node", ["dev", "--data-dir", dir + "-loud", "--log-level", "loud"])
        XCTAssertEqual(loud.status, 1, loud.output)
        XCTAssertTrue(loud.output.contains("--log-level must be one of trace, debug, info"), loud.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "-loud"), "nothing was created")
        // A query with a malformed subject or purpose is not sent (its refusal would be on the ledger for good).
        for (subject, purpose, words) in [("91350100M000100Y44", "loan_application", "--subject"), ("91350100M000100Y43", "lending", "--purpose lending")] {
            let query = try Self.run("credit-node", ["query", "--node", url, "--key", dir + "/keys/dev.key", "--policy", "credit-grade",
                                                     "--subject", subject, "--purpose", purpose])
            XCTAssertEqual(query.status, 1, query.output)
            XCTAssertTrue(query.output.contains(words) && query.output.contains("nothing was sent"), query.output)
        }
        // A parameter too long for the request is named; it stopped the command on a precondition (exit 132).
        let long = try Self.run("credit-node", ["query", "--node", url, "--key", dir + "/keys/dev.key", "--policy", "loan-pre-check",
                                                "--subject", "91350100M000100Y43", "--purpose", "loan_application",
                                                "--param", "amount_yuan=" + String(repeating: "9", count: 300)])
        XCTAssertEqual(long.status, 1, long.output)
        XCTAssertTrue(long.output.contains("the value of parameter amount_yuan is 300 bytes; a query request takes at most 255; nothing was sent"), long.output)

        // A tampered receipt fails with a reason and a non-zero exit.
        var text = try String(contentsOfFile: dir + "/receipt.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"log_index\" : ", with: "\"log_index\" : 1")
        try text.write(toFile: dir + "/bad-receipt.json", atomically: true, encoding: .utf8)
        let bad = try Self.run("credit-verify", ["receipt", dir + "/bad-receipt.json", "--genesis", genesis])
        XCTAssertEqual(bad.status, 1, bad.output)
        XCTAssertTrue(bad.output.contains("FAILED"), bad.output)
        // A negative log index is a number out of range, not JSON that does not parse.
        try (try String(contentsOfFile: dir + "/receipt.json", encoding: .utf8)).replacingOccurrences(of: "\"log_index\" : ", with: "\"log_index\" : -1")
            .write(toFile: dir + "/negative-receipt.json", atomically: true, encoding: .utf8)
        let negative = try Self.run("credit-verify", ["receipt", dir + "/negative-receipt.json", "--genesis", genesis])
        XCTAssertEqual(negative.status, 1, negative.output)
        XCTAssertTrue(negative.output.contains("a number is out of range for its field"), negative.output)
        // A genuine receipt with a key given again after it (read first here, last by most other
        // tools, which would see another log index) is refused, as is a genesis with one.
        let genuine = try String(contentsOfFile: dir + "/receipt.json", encoding: .utf8)
        let end = try XCTUnwrap(genuine.lastIndex(of: "}"))
        try (genuine[..<end] + ", \"log_index\" : 999 }").write(toFile: dir + "/twice-receipt.json", atomically: true, encoding: .utf8)
        let twice = try Self.run("credit-verify", ["receipt", dir + "/twice-receipt.json", "--genesis", genesis])
        XCTAssertEqual(twice.status, 1, twice.output)
        XCTAssertTrue(twice.output.contains("\"log_index\" appears twice in one object (at log_index)"), twice.output)
        // The same log index written as 443.0 (or 4.43e2) read as the integer: refused, naming it.
        let index = try XCTUnwrap(genuine.range(of: #""log_index" : [0-9]+"#, options: .regularExpression).map { String(genuine[$0]) })
        for written in [".0", "e0"] {
            try genuine.replacingOccurrences(of: index, with: index + written).write(toFile: dir + "/fraction-receipt.json", atomically: true, encoding: .utf8)
            let fraction = try Self.run("credit-verify", ["receipt", dir + "/fraction-receipt.json", "--genesis", genesis])
            XCTAssertEqual(fraction.status, 1, fraction.output)
            XCTAssertTrue(fraction.output.contains("is not written as an integer"), fraction.output)
        }
        let genesisText = try String(contentsOfFile: genesis, encoding: .utf8)
        let genesisEnd = try XCTUnwrap(genesisText.lastIndex(of: "}"))
        try (genesisText[..<genesisEnd] + ", \"chain_id\" : \"other\" }").write(toFile: dir + "/twice-genesis.json", atomically: true, encoding: .utf8)
        let twiceGenesis = try Self.run("credit-verify", ["receipt", dir + "/receipt.json", "--genesis", dir + "/twice-genesis.json"])
        XCTAssertEqual(twiceGenesis.status, 1, twiceGenesis.output)
        XCTAssertTrue(twiceGenesis.output.contains("genesis is not one every tool reads alike: \"chain_id\" appears twice"), twiceGenesis.output)
        // Inputs are read within a limit: a file past it, or an endless one, is refused by name
        // rather than read into memory whole.
        _ = FileManager.default.createFile(atPath: dir + "/huge-receipt.json", contents: nil)
        try FileHandle(forWritingAtPath: dir + "/huge-receipt.json")!.truncate(atOffset: (256 << 20) + 1)   // sparse
        let huge = try Self.run("credit-verify", ["receipt", dir + "/huge-receipt.json", "--genesis", genesis])
        XCTAssertEqual(huge.status, 1, huge.output)
        XCTAssertTrue(huge.output.contains("huge-receipt.json is larger than any receipt can be (over 256 MiB)"), huge.output)
        try? FileManager.default.removeItem(atPath: dir + "/huge-receipt.json")
        // A receipt from a pipe is read once (it was read twice, and the second read found nothing).
        let piped = Process()
        piped.executableURL = URL(fileURLWithPath: try XCTUnwrap(BuiltTools.path("credit-verify")))
        piped.arguments = ["receipt", "/dev/stdin", "--genesis", genesis]
        let input = Pipe(), output = Pipe()
        piped.standardInput = input
        piped.standardOutput = output
        piped.standardError = output
        try piped.run()
        input.fileHandleForWriting.write(try Data(contentsOf: URL(fileURLWithPath: dir + "/receipt.json")))
        try input.fileHandleForWriting.close()
        let pipedOut = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        piped.waitUntilExit()
        XCTAssertEqual(piped.terminationStatus, 0, pipedOut)
        XCTAssertTrue(pipedOut.contains("OK: transaction"), pipedOut)
        let endless = try Self.run("credit-verify", ["receipt", dir + "/receipt.json", "--genesis", "/dev/zero"])
        XCTAssertEqual(endless.status, 1, endless.output)
        XCTAssertTrue(endless.output.contains("/dev/zero is larger than any genesis file can be (over 16 MiB)"), endless.output)
        let endlessNote = try Self.run("credit-verify", ["consistency", "/dev/zero", dir + "/new.checkpoint", "--genesis", genesis, "--from", url])
        XCTAssertEqual(endlessNote.status, 1, endlessNote.output)
        XCTAssertTrue(endlessNote.output.contains("/dev/zero is larger than any checkpoint can be (over 16 KiB)"), endlessNote.output)
        // A receipt of a format this verifier does not read is named as such.
        text = try String(contentsOfFile: dir + "/receipt.json", encoding: .utf8)
            .replacingOccurrences(of: "creditledger-receipt/v1", with: "creditledger-answer/v2")
        try text.write(toFile: dir + "/v2-receipt.json", atomically: true, encoding: .utf8)
        let v2 = try Self.run("credit-verify", ["receipt", dir + "/v2-receipt.json", "--genesis", genesis])
        XCTAssertEqual(v2.status, 1, v2.output)
        XCTAssertTrue(v2.output.contains("has format \"creditledger-answer/v2\"; this verifier reads creditledger-receipt/v1 and creditledger-answer/v1"), v2.output)

        // Export, verify the export; then a trusted genesis that is not this chain's is refused.
        node.terminate()
        // The two tools take different directories; each says which when given the other.
        let dataDirGiven = try Self.run("credit-verify", ["chain", "--data-dir", dir, "--genesis", genesis])
        XCTAssertEqual(dataDirGiven.status, 1)
        XCTAssertTrue(dataDirGiven.output.contains("but \(dir)/ledger does: this command takes the ledger directory itself"), dataDirGiven.output)
        let ledgerDirGiven = try Self.run("credit-node", ["export", "--data-dir", dir + "/ledger", "--out", dir + "/x.export"])
        XCTAssertEqual(ledgerDirGiven.status, 1)
        XCTAssertTrue(ledgerDirGiven.output.contains("this command takes the node's data directory, the one holding ledger/ (--data-dir \(dir))"), ledgerDirGiven.output)
        XCTAssertEqual(try Self.run("credit-node", ["export", "--data-dir", dir, "--out", dir + "/chain.export"]).status, 0)
        XCTAssertEqual(try Self.run("credit-verify", ["chain", "--export", dir + "/chain.export", "--genesis", genesis]).status, 0)
        // Completeness against trusted checkpoints: the whole chain reaches both; the copy cut
        // short at a block boundary verifies alone but not against the newer checkpoint.
        let complete = try Self.run("credit-verify", ["chain", "--export", dir + "/chain.export", "--genesis", genesis,
                                                      "--checkpoint", dir + "/old.checkpoint", "--checkpoint", dir + "/new.checkpoint"])
        XCTAssertEqual(complete.status, 0, complete.output)
        XCTAssertTrue(complete.output.contains("reaches 2 trusted checkpoints with the same root"), complete.output)
        XCTAssertTrue(complete.output.contains("(the trusted file)"), complete.output)
        let short = try Self.run("credit-verify", ["chain", "--export", dir + "/old.export", "--genesis", genesis])
        XCTAssertEqual(short.status, 0, short.output)
        XCTAssertTrue(short.output.contains("not checked: give --checkpoint"), short.output)
        let cut = try Self.run("credit-verify", ["chain", "--export", dir + "/old.export", "--genesis", genesis, "--checkpoint", dir + "/new.checkpoint", "--json"])
        XCTAssertEqual(cut.status, 1, cut.output)
        XCTAssertTrue(cut.output.contains("short of the trusted checkpoint of size 41: blocks are missing from its end"), cut.output)
        let upToOld = try Self.run("credit-verify", ["chain", "--export", dir + "/old.export", "--genesis", genesis, "--checkpoint", dir + "/old.checkpoint", "--json"])
        XCTAssertEqual(upToOld.status, 0, upToOld.output)
        let reached = try JSONSerialization.jsonObject(with: Data(upToOld.output.utf8)) as? [String: Any]
        XCTAssertEqual(reached?["checkpoints_reached"] as? Int, 1)
        XCTAssertEqual(reached?["genesis_trusted"] as? Bool, true)
        let untrusted = try Self.run("credit-verify", ["chain", "--export", dir + "/chain.export"])
        XCTAssertEqual(untrusted.status, 0, untrusted.output)
        XCTAssertTrue(untrusted.output.contains("WARNING: not checked against a genesis you hold"), untrusted.output)
        let otherDir = dir + "-other"
        defer { try? FileManager.default.removeItem(atPath: otherDir) }
        _ = try DevNode.open(dataDirectory: otherDir)
        let wrong = try Self.run("credit-verify", ["chain", "--data-dir", dir + "/ledger", "--genesis", otherDir + "/genesis.json"])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.output.contains("not the trusted genesis"), wrong.output)
        // A validly signed checkpoint naming another block than the chain's at its size (one
        // before, one after the last) is not this chain's: its block line is checked too.
        let signedNew = try SignedNote(parsing: try String(contentsOfFile: dir + "/new.checkpoint", encoding: .utf8))
        let newCheckpoint = try Checkpoint(text: signedNew.text)
        let named = try XCTUnwrap(newCheckpoint.commit)
        let devKeys = try MemberSecretKeys.load(from: dir + "/keys/dev.key")
        let root = newCheckpoint.rootHash.hexString.prefix(16)
        for (height, words) in [(named.height - 1, "of log size \(newCheckpoint.size) and root \(root)… names block \(named.height - 1), but this chain's block \(named.height - 1) ends at log size"),
                                (named.height + 1, "names block \(named.height + 1), but this chain reaches that size, with that root, at another block and ends at block \(named.height): the checkpoint's block line contradicts its size")] {
            var note = SignedNote(text: Checkpoint(origin: newCheckpoint.origin, size: newCheckpoint.size, rootHash: newCheckpoint.rootHash,
                                                   commit: .init(height: height, round: named.round)).text)
            note.sign(name: devKeys.memberID, key: devKeys.signing)
            try note.serialized.write(toFile: dir + "/other-block.checkpoint", atomically: true, encoding: .utf8)
            let otherBlock = try Self.run("credit-verify", ["chain", "--export", dir + "/chain.export", "--genesis", genesis, "--checkpoint", dir + "/other-block.checkpoint"])
            XCTAssertEqual(otherBlock.status, 1, otherBlock.output)
            XCTAssertTrue(otherBlock.output.contains(words), otherBlock.output)
        }
        // A checkpoint whose size was altered no longer carries its signers' signatures.
        let lines = try String(contentsOfFile: dir + "/new.checkpoint", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        try ([lines[0], "40"] + lines.dropFirst(2)).joined(separator: "\n").write(toFile: dir + "/forged.checkpoint", atomically: true, encoding: .utf8)
        let forged = try Self.run("credit-verify", ["chain", "--export", dir + "/chain.export", "--genesis", genesis, "--checkpoint", dir + "/forged.checkpoint"])
        XCTAssertEqual(forged.status, 1, forged.output)
        XCTAssertTrue(forged.output.contains("forged.checkpoint does not verify against the genesis"), forged.output)

        // Tamper with one stored transaction: the verifier names block and transaction.
        do {
            let db = try Database(path: dir + "/ledger", columnFamilies: ChainStore.columnFamilies)
            var w = ByteWriter(); w.u64(5)
            var value = try db.get("transactions", w.bytes)!
            value[value.count - 10] ^= 0x40
            let batch = WriteBatch(for: db)
            try batch.put("transactions", w.bytes, value)
            try db.write(batch)
        }
        let tampered = try Self.run("credit-verify", ["chain", "--data-dir", dir + "/ledger", "--json"])
        XCTAssertEqual(tampered.status, 1)
        let failure = try JSONSerialization.jsonObject(with: Data(tampered.output.utf8)) as? [String: Any]
        XCTAssertEqual(failure?["ok"] as? Bool, false)
        XCTAssertEqual(failure?["height"] as? Int, 2)
        XCTAssertEqual(failure?["log_index"] as? Int, 5)
    }

    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The member listener serves what other members need (queries, policies, proofs,
    /// submissions) and nothing that reads the ledger's contents; the operator's listener
    /// serves everything. A bank must reach a bureau's node to query, and blocks, transactions,
    /// receipts and histories (exact points, record attributes, every bank's query records)
    /// were on the same port (docs/PRIVACY.md §1).
    func testTheMemberListenerServesQueriesButNotTheLedgersContents() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("members-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: dir + ".log") }
        let node = try DevNodeProcess(dataDir: dir, arguments: ["--member-http", "127.0.0.1:0"])
        defer { node.terminate() }
        let operatorURL = try node.waitForAddress()
        var memberURL = ""
        for _ in 0..<200 where memberURL.isEmpty {
            if let t = try? String(contentsOfFile: dir + "/member-http.addr", encoding: .utf8), t.hasSuffix("\n") {
                memberURL = t.trimmingCharacters(in: .whitespacesAndNewlines)
            } else { Thread.sleep(forTimeInterval: 0.05) }
        }
        XCTAssertFalse(memberURL.isEmpty, "no member-http.addr")
        XCTAssertNotEqual(memberURL, operatorURL)
        let genesis = dir + "/genesis.json"
        // A record submitted through the member listener (signed; the listener needs no more).
        let submitted = try Self.run("credit-node", ["submit", "--node", memberURL, "--key", dir + "/keys/dev.key", "--genesis", genesis,
                                                     "--file", Self.repository + "/Genesis/examples/penalty.json"])
        XCTAssertEqual(submitted.status, 0, submitted.output)
        let id = try XCTUnwrap(submitted.output.split(separator: "\n").first { $0.hasPrefix("{") }
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["id"] as? String, submitted.output)
        let member = LedgerClient(baseURL: memberURL), operatorClient = LedgerClient(baseURL: operatorURL)
        for path in ["/v1/health", "/v1/genesis", "/v1/members", "/v1/models", "/v1/policies", "/v1/checkpoint"] {
            XCTAssertEqual(try member.send("GET", path).0, 200, path)
        }
        XCTAssertEqual(try member.send("POST", "/v1/queries", body: Data("{}".utf8)).0, 400, "queries are served (and this one is malformed)")
        for path in ["/v1/status", "/metrics", "/v1/blocks/1", "/v1/transactions/\(id)", "/v1/transactions/\(id)/receipt",
                     "/v1/transactions/\(id)/provenance", "/v1/subjects/91350100M000100Y43/history"] {
            let (status, body) = try member.send("GET", path)
            XCTAssertEqual(status, 404, "\(path) is served to members")
            XCTAssertEqual((try JSONSerialization.jsonObject(with: body) as? [String: Any]).flatMap { $0["error"] as? [String: Any] }?["code"] as? String,
                           "operatorOnly", path)
            XCTAssertTrue(String(decoding: body, as: UTF8.self).contains("served on the node operator's address only"), "\(path): \(String(decoding: body, as: UTF8.self))")
        }
        for path in ["/v1/status", "/metrics", "/v1/blocks/1", "/v1/transactions/\(id)", "/v1/transactions/\(id)/receipt", "/v1/subjects/91350100M000100Y43/history"] {
            XCTAssertEqual(try operatorClient.send("GET", path).0, 200, "\(path) on the operator's listener")
        }

        // Many submissions, split to the chain's limits (here lowered to three a batch), through
        // the member listener; a batch that fails says how many committed before it.
        let devKeys = try MemberSecretKeys.load(from: dir + "/keys/dev.key")
        let chain = try Genesis(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: genesis))))
        let many = try (0..<7).map { i in
            try AttestationRequest(subject: "91350100M000100Y43", subject_kind: nil, category: "license", severity: nil, event_date: "2026-03-14",
                                   industry: "C13", attributes: nil, payload: .string("licence split-\(i)"))
                .build(genesis: chain, keys: devKeys, nonce: 9_000 + UInt64(i), issuedAtMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        }
        var lowered = chain.limits
        lowered.maxBatchTransactions = 3
        var seen: [Int] = []
        let results = try member.submit(all: many, limits: lowered) { seen.append($0) }
        XCTAssertEqual(results.compactMap { $0["id"] as? String }, many.map(\.transaction.id.hexString))
        XCTAssertEqual(seen, [3, 6, 7])
        let fresh = try (0..<5).map { i in
            try AttestationRequest(subject: "91350100M000100Y43", subject_kind: nil, category: "license", severity: nil, event_date: "2026-03-14",
                                   industry: "C13", attributes: nil, payload: .string("licence split-again-\(i)"))
                .build(genesis: chain, keys: devKeys, nonce: 9_100 + UInt64(i), issuedAtMillis: UInt64(Date().timeIntervalSince1970 * 1000))
        }
        XCTAssertThrowsError(try member.submit(all: fresh[0..<3] + [many[0]] + fresh[3..<5], limits: lowered)) { error in
            let partly = error as? LedgerClient.PartlySubmitted
            XCTAssertEqual(partly?.committed, 3, "\(error)")
            XCTAssertEqual(partly?.of, 6, "\(error)")
            XCTAssertTrue("\(error)".contains("3 of 6 submissions committed (in whole batches) before this failure"), "\(error)")
        }

        // A bank records and revokes a consent through the member listener: the revocation's
        // check of its grant goes to the ledger, which refuses another purpose than the grant's
        // (the CLI fetched the grant from an operator-only route and failed).
        try "consent form of 91350100M000100Y43 for dev\n".write(toFile: dir + "/consent-form.txt", atomically: true, encoding: .utf8)
        let consent = ["consent", "--node", memberURL, "--key", dir + "/keys/dev.key", "--genesis", genesis, "--evidence", dir + "/consent-form.txt",
                       "--subject", "91350100M000100Y43", "--grantee", "dev"]
        // A grantee too long to be a member id is named (it stopped the command on a precondition).
        let longGrantee = try Self.run("credit-node", Array(consent.dropLast()) + [String(repeating: "b", count: 300), "--purpose", "loan_application"])
        XCTAssertEqual(longGrantee.status, 1, longGrantee.output)
        XCTAssertTrue(longGrantee.output.contains("--grantee is 300 bytes; a member id is at most"), longGrantee.output)
        let hourBefore = Int(Date().timeIntervalSince1970) / 3600
        let granted = try Self.run("credit-node", consent + ["--purpose", "loan_application", "--days", "30"])
        XCTAssertEqual(granted.status, 0, granted.output)
        let grantID = try XCTUnwrap(granted.output.split(separator: "\n").first { $0.hasPrefix("{") }
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["id"] as? String, granted.output)
        XCTAssertTrue(granted.output.contains("submitting transaction \(grantID)"), "the id is printed before sending: \(granted.output)")
        // Run again (after a timeout, say): recorded once, the first copy named. The nonce takes
        // the hour it is signed in: a run that crossed an hour records a second grant instead.
        let again = try Self.run("credit-node", consent + ["--purpose", "loan_application", "--days", "30"])
        XCTAssertEqual(again.status, 0, again.output)
        if Int(Date().timeIntervalSince1970) / 3600 == hourBefore {
            XCTAssertTrue(again.output.contains("\"standing\":\"not checked"), again.output)
            XCTAssertTrue(again.output.contains("warning: this grant was recorded before (\(grantID)); whether it was revoked since could not be checked here"), again.output)
            XCTAssertFalse(again.output.contains("expires_at"), again.output)
            XCTAssertTrue(again.output.contains("\"sent_before\":true") && again.output.contains("\"id\":\"\(grantID)\""), again.output)
        }
        let wrong = try Self.run("credit-node", consent + ["--purpose", "post_loan_monitoring", "--revoke", grantID])
        XCTAssertNotEqual(wrong.status, 0, wrong.output)
        XCTAssertTrue(wrong.output.contains("names purpose post_loan_monitoring, but grant \(grantID) is for loan_application"), wrong.output)
        let revoked = try Self.run("credit-node", consent + ["--purpose", "loan_application", "--revoke", grantID])
        XCTAssertEqual(revoked.status, 0, revoked.output)
        XCTAssertTrue(revoked.output.contains("\"consent\":\"revoke\""), revoked.output)
        XCTAssertFalse(revoked.output.contains("expires_at"), "a revocation has no expiry: \(revoked.output)")
        let revokedAgain = try Self.run("credit-node", consent + ["--purpose", "loan_application", "--revoke", grantID])
        XCTAssertEqual(revokedAgain.status, 0, revokedAgain.output)
        XCTAssertTrue(revokedAgain.output.contains("\"sent_before\":true"), revokedAgain.output)
        // The grant run again after its revocation, on the operator's address (which serves the
        // subject's history): recorded again, once. It answered "already on the ledger" and
        // recorded nothing (found by black-box testing).
        let regrant = ["consent", "--node", operatorURL, "--key", dir + "/keys/dev.key", "--genesis", genesis, "--evidence", dir + "/consent-form.txt",
                       "--subject", "91350100M000100Y43", "--grantee", "dev", "--purpose", "loan_application", "--days", "30"]
        let renewed = try Self.run("credit-node", regrant)
        XCTAssertEqual(renewed.status, 0, renewed.output)
        let renewedID = try XCTUnwrap(renewed.output.split(separator: "\n").first { $0.hasPrefix("{") }
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["id"] as? String, renewed.output)
        let renewedAgain = try Self.run("credit-node", regrant)
        XCTAssertEqual(renewedAgain.status, 0, renewedAgain.output)
        if Int(Date().timeIntervalSince1970) / 3600 == hourBefore {
            XCTAssertTrue(renewed.output.contains("revoked since by"), renewed.output)
            XCTAssertNotEqual(renewedID, grantID)
            XCTAssertFalse(renewed.output.contains("sent_before"), renewed.output)
            XCTAssertTrue(renewedAgain.output.contains("\"sent_before\":true") && renewedAgain.output.contains("\"id\":\"\(renewedID)\""), renewedAgain.output)
            XCTAssertTrue(renewedAgain.output.contains("\"standing\":\"stands\""), renewedAgain.output)
        }
        // The first grant revoked again, after the grant recorded since: a new "stop", recorded
        // once, that ends the later grant too. It answered "already on the ledger" and the later
        // grant went on answering (found by black-box testing, 2026-12-07).
        let stopAgain = ["consent", "--node", operatorURL, "--key", dir + "/keys/dev.key", "--genesis", genesis, "--subject", "91350100M000100Y43",
                         "--grantee", "dev", "--purpose", "loan_application", "--revoke", grantID]
        let second = try Self.run("credit-node", stopAgain)
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("and dev recorded grant \(renewedID) since; revoking again"), second.output)
        XCTAssertFalse(second.output.contains("sent_before"), second.output)
        let secondID = try XCTUnwrap(second.output.split(separator: "\n").first { $0.hasPrefix("{") }
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }?["id"] as? String, second.output)
        let secondAgain = try Self.run("credit-node", stopAgain)
        XCTAssertEqual(secondAgain.status, 0, secondAgain.output)
        XCTAssertTrue(secondAgain.output.contains("\"sent_before\":true") && secondAgain.output.contains("\"id\":\"\(secondID)\""), secondAgain.output)
        // The bank's grant run again now finds it ended by that revocation (which names the first
        // grant): recorded again, not said to stand (found in review, 2026-12-07).
        if Int(Date().timeIntervalSince1970) / 3600 == hourBefore {
            let afterStop = try Self.run("credit-node", regrant)
            XCTAssertEqual(afterStop.status, 0, afterStop.output)
            XCTAssertTrue(afterStop.output.contains("revoked since by \(secondID)"), afterStop.output)
            XCTAssertFalse(afterStop.output.contains("\"standing\":\"stands\""), afterStop.output)
        }
        // Through the operator's address the CLI checks the grant before sending anything.
        let early = try Self.run("credit-node", ["consent", "--node", operatorURL, "--key", dir + "/keys/dev.key", "--subject", "91350100M000100Y43",
                                                 "--grantee", "dev", "--purpose", "loan_application", "--revoke", id])
        XCTAssertNotEqual(early.status, 0, early.output)
        XCTAssertTrue(early.output.contains("\(id) is not a committed consent grant"), early.output)

        // `credit-node receipt` checks the id and writes only a receipt that verifies: not the
        // member listener's refusal, not a malformed id's.
        let receiptFile = dir + "/receipt.json"
        let malformed = try Self.run("credit-node", ["receipt", "../status", "--node", operatorURL, "--out", receiptFile])
        XCTAssertNotEqual(malformed.status, 0, malformed.output)
        XCTAssertTrue(malformed.output.contains("must be 64 hex digits"), malformed.output)
        let viaMember = try Self.run("credit-node", ["receipt", id, "--node", memberURL, "--out", receiptFile])
        XCTAssertNotEqual(viaMember.status, 0, viaMember.output)
        XCTAssertTrue(viaMember.output.contains("operator's address only"), viaMember.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: receiptFile), "a refusal was written as a receipt")
        // A server that answers 200 with something else (here, by a base URL ending in a
        // fragment: the genesis), or with another transaction's receipt: nothing is written.
        let notAReceipt = try Self.run("credit-node", ["receipt", id, "--node", operatorURL + "/v1/genesis#", "--out", receiptFile])
        XCTAssertNotEqual(notAReceipt.status, 0, notAReceipt.output)
        XCTAssertTrue(notAReceipt.output.contains("did not answer with a receipt"), notAReceipt.output)
        let otherReceipt = try Self.run("credit-node", ["receipt", id, "--node", operatorURL + "/v1/transactions/\(grantID)/receipt#", "--out", receiptFile])
        XCTAssertNotEqual(otherReceipt.status, 0, otherReceipt.output)
        XCTAssertTrue(otherReceipt.output.contains("served a receipt for transaction \(grantID), not \(id)"), otherReceipt.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: receiptFile), "a wrong answer was written as a receipt")
        let written = try Self.run("credit-node", ["receipt", id.uppercased(), "--node", operatorURL, "--out", receiptFile, "--genesis", genesis])
        XCTAssertEqual(written.status, 0, written.output)
        XCTAssertEqual(try Self.run("credit-verify", ["receipt", receiptFile, "--genesis", genesis]).status, 0)
        // Restarted without the member listener, the node leaves no file naming its old address.
        node.terminate()
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/member-http.addr"))
        try? FileManager.default.removeItem(atPath: dir + "/http.addr")   // to wait for the new run's
        let plain = try DevNodeProcess(dataDir: dir)
        defer { plain.terminate() }
        _ = try plain.waitForAddress()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/member-http.addr"), "member-http.addr names a listener this run does not have")
    }

}
