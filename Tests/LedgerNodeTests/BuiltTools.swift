import Foundation
import LedgerCore
import LedgerNode

/// A real `credit-node dev` process on a free loopback port, with its log beside the data directory.
final class DevNodeProcess {
    let process = Process()
    let dataDir: String
    let log: String

    init(dataDir: String, arguments: [String] = []) throws {
        self.dataDir = dataDir
        log = dataDir + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        try? FileManager.default.removeItem(atPath: dataDir + "/http.addr")
        process.executableURL = URL(fileURLWithPath: BuiltTools.path("credit-node") ?? "credit-node")
        process.arguments = ["dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--block-interval-ms", "20"] + arguments
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func waitForAddress() throws -> String {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: dataDir + "/http.addr", encoding: .utf8), text.hasSuffix("\n") {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw LedgerError(.notFound, "node did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}
