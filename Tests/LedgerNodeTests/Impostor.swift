import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import Logging
import P2P

extension LocalConsortium {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    convenience init(name: String, withModels: Bool = false, withPolicies: Bool = false) throws {
        let repo = Self.repository
        let models = withModels ? ["individual-business", "enterprise", "risk-warning"].map { repo.appendingPathComponent("Genesis/models/\($0).json").path } : []
        let policies = withPolicies
            ? ["credit-grade", "loan-pre-check", "risk-flags", "full-profile", "industry-statistics", "my-queries"].map { repo.appendingPathComponent("Genesis/policies/\($0).json").path }
            : []
        try self.init(name: name, tool: BuiltTools.path("credit-node") ?? "credit-node", models: models, policies: policies)
    }

    /// Dials `port` as `claiming`, but with a fresh key that genesis does not know. Returns
    /// whether a session was established (it must not be).
    static func impostorHandshake(port: Int, genesis: Genesis, claiming: String) throws -> Bool {
        let key = Ed25519PrivateKey()
        var allowed: [String: Ed25519PublicKey] = [:]
        for m in genesis.members { allowed[m.id] = m.signingKey }
        let config = P2PConfig(chainID: genesis.chainID, genesisHash: genesis.hash, localMemberID: claiming, signingKey: key,
                               listenHost: "127.0.0.1", listenPort: 0,
                               peers: [PeerAddress(memberID: "samr-330106", host: "127.0.0.1", port: port)], allowedPeers: allowed)
        let node = P2PNode(config: config, logger: Logger(label: "impostor"), onMessage: { _, _ in }, onPeer: { _, _ in })
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var connected = false
        Task {
            _ = try? await node.start()
            try? await Task.sleep(for: .seconds(2))
            connected = !node.connectedPeers.isEmpty
            await node.stop()
            done.signal()
        }
        done.wait()
        return connected
    }
}
