import Foundation
import LedgerCore
import LedgerCrypto

/// A local consortium of real `credit-node run` processes: four validators (two bureaus, two
/// banks) and an auditor follower, on free loopback ports, in a temporary directory. Used by the
/// end-to-end tests and the network benchmark.
public final class LocalConsortium {
    public static let validators = ["samr-330106", "data-330106", "bank-a", "bank-b"]
    public static let members = validators + ["auditor"]

    public let root: String
    public let tool: String
    public let logLevel: String
    public private(set) var processes: [String: Process] = [:]
    public private(set) var p2pPorts: [String: Int] = [:]
    public private(set) var genesis: Genesis!

    /// - Parameter tool: the `credit-node` executable.
    /// - Parameter models: scoring model files (absolute paths) to install in genesis.
    /// - Parameter policies: query policy files (absolute paths) to install in genesis.
    public init(name: String, tool: String, logLevel: String = "info", models: [String] = [], policies: [String] = []) throws {
        self.tool = tool
        self.logLevel = logLevel
        root = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for m in Self.members {
            p2pPorts[m] = try Self.freePort()
            try Self.runTool(tool, ["keygen", "--member", m, "--out", root + "/keys"])
        }
        var entries: [[String: Any]] = []
        for m in Self.members {
            let roles: [String]
            switch m {
            case "samr-330106", "data-330106": roles = ["validator", "custodian", "government_issuer", "scorer"]
            case "auditor": roles = ["auditor"]
            default: roles = ["validator", "bank"]
            }
            entries.append(["id": m, "name": m, "roles": roles, "p2p_address": "127.0.0.1:\(p2pPorts[m]!)"])
        }
        let membersFile: [String: Any] = ["chain_id": "test.\(name)/v1", "genesis_time": "2026-11-21T00:00:00Z",
                                          "score_endorsements_required": 1, "members": entries, "models": models,
                                          "policies": policies]
        try JSONSerialization.data(withJSONObject: membersFile).write(to: URL(fileURLWithPath: root + "/members.json"))
        try Self.runTool(tool, ["genesis", "--members", root + "/members.json", "--keys-dir", root + "/keys", "--out", root + "/genesis.json"])
        genesis = try Genesis(bytes: Array(FileManager.default.contents(atPath: root + "/genesis.json")!))
        for m in Self.members {
            try FileManager.default.createDirectory(atPath: "\(root)/\(m)", withIntermediateDirectories: true)
            let config: [String: Any] = ["genesis": "../genesis.json", "key": "../keys/\(m).key", "data_dir": "data",
                                         "http": "127.0.0.1:0", "p2p": "127.0.0.1:\(p2pPorts[m]!)", "log_level": logLevel,
                                         "timeouts": ["propose_ms": 600, "prevote_ms": 300, "precommit_ms": 300, "rebroadcast_ms": 500]]
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: "\(root)/\(m)/node.json"))
        }
    }

    /// A free loopback port below the kernel's ephemeral range. A port the kernel picks for
    /// bind(0) comes from that range, and until the node given it listens, an outgoing connection
    /// of a node already started (they dial their peers) can take it as its source port: the
    /// node then fails with "address already in use" (seen in CI).
    public static func freePort() throws -> Int {
        let ephemeral = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32_768
        let ports = 10_000..<max(10_001, ephemeral)
        for _ in 0..<256 {
            let port = Int.random(in: ports)
            if isFree(port) { return port }
        }
        throw LedgerError(.notFound, "no free loopback port in \(ports.lowerBound)-\(ports.upperBound - 1)")
    }

    static func isFree(_ port: Int) -> Bool {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    public static func runTool(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw LedgerError(.invalidValue, "\(tool) \(args.joined(separator: " ")) failed: \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        }
    }

    public func log(_ m: String) -> String { "\(root)/\(m)/node.log" }
    public func keyPath(_ m: String) -> String { "\(root)/keys/\(m).key" }
    public func dataDir(_ m: String) -> String { "\(root)/\(m)/data" }

    public func start(_ m: String) throws {
        try? FileManager.default.removeItem(atPath: dataDir(m) + "/http.addr")
        if !FileManager.default.fileExists(atPath: log(m)) { _ = FileManager.default.createFile(atPath: log(m), contents: nil) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = ["run", "--config", "\(root)/\(m)/node.json"]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log(m)))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        processes[m] = p
    }

    public func startAll(_ members: [String] = LocalConsortium.members) throws {
        for m in members { try start(m) }
        for m in members { _ = try address(m) }
    }

    public func address(_ m: String, timeout: TimeInterval = 60) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: dataDir(m) + "/http.addr", encoding: .utf8), text.hasSuffix("\n") {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard processes[m]?.isRunning == true else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw LedgerError(.notFound, "\(m) did not start: \((try? String(contentsOfFile: log(m), encoding: .utf8))?.suffix(2000) ?? "")")
    }

    public func client(_ m: String, timeout: TimeInterval = 30) throws -> LedgerClient {
        LedgerClient(baseURL: try address(m), timeout: timeout)
    }

    public func kill9(_ m: String) {
        guard let p = processes[m] else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        processes[m] = nil
    }

    /// Stops every running node with SIGTERM, and with SIGKILL one still running after
    /// `timeout` (longer than a node's own limit on waiting for its store's background work, so
    /// a node that hangs on stop does not hang its caller too). Returns the exit status of each
    /// node that stopped by itself, and the nodes that had to be killed.
    @discardableResult
    public func stopAll(timeout: TimeInterval = 40) -> (statuses: [String: Int32], killed: [String]) {
        for (_, p) in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(timeout)
        var statuses: [String: Int32] = [:], killed: [String] = []
        for (m, p) in processes.sorted(by: { $0.key < $1.key }) {
            while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                killed.append(m)
            } else {
                p.waitUntilExit()
                statuses[m] = p.terminationStatus
            }
        }
        processes = [:]
        return (statuses, killed)
    }

    /// (height, head hash) of a running node.
    public func head(_ m: String) -> (UInt64, String)? {
        guard let c = try? client(m, timeout: 3), let s = try? c.getJSON("/v1/status"),
              let h = (s["height"] as? NSNumber)?.uint64Value, let hash = s["head_hash"] as? String else { return nil }
        return (h, hash)
    }

    /// Waits until every listed node reports the same head at least `minHeight`; returns it.
    public func waitForAgreement(_ members: [String], minHeight: UInt64 = 1, timeout: TimeInterval = 60) -> (UInt64, String)? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let heads = members.map(head)
            if heads.allSatisfy({ $0 != nil }), Set(heads.map { $0!.1 }).count == 1, heads[0]!.0 >= minHeight { return heads[0] }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return nil
    }

    deinit {
        stopAll()
        if ProcessInfo.processInfo.environment["CREDITLEDGER_KEEP_TEST_DIRS"] == nil { try? FileManager.default.removeItem(atPath: root) }
    }
}
