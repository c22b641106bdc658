import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import Policy
import Scoring

/// `credit-node approve`: a custodian approves a governance transaction on its own machine,
/// with its own key, and sends only the approval file to the custodian who submits it.
struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve a governance transaction as one custodian, with your own key; writes an approval file to send to the submitter.",
        discussion: """
        Every custodian must approve each governance transaction. Each bureau runs this on its
        own machine, with its own key file and the chain's genesis file. It sends the approval
        file (no secret in it) to the custodian who submits the transaction with
        `credit-node install-policy --approval FILE`, `credit-node install-model --approval FILE` or
        `credit-node erase --approval FILE`.
        The approval signs the chain id, the action, the name, the version and the document.
        Examples:
          credit-node approve policy --genesis genesis.json --key keys/data-330106.key \\
            --file my-policy.json --out data-330106.approval.json
          credit-node approve model --genesis genesis.json --key keys/data-330106.key \\
            --file individual-business-v2.json --out data-330106.approval.json
          credit-node approve erase --genesis genesis.json --key keys/data-330106.key \\
            --id RECORD_ID --out data-330106.approval.json
        """,
        subcommands: [ApprovePolicy.self, ApproveModel.self, ApproveErase.self])
}

/// What every approval needs: the approver's key, the chain, and where to write the file.
struct ApprovalOptions: ParsableArguments {
    @Option(help: "The chain's genesis file (recommended: you see exactly which chain you approve for).") var genesis: String?
    @Option(help: "Fetch the genesis from this node instead of --genesis.") var node: String?
    @Option(help: "Your own secret key file (a custodian's).") var key: String
    @Option(help: "Where to write the approval file.") var out: String

    func loadGenesis() throws -> Genesis {
        switch (genesis, node) {
        case (let path?, nil): return try Genesis(file: path)
        case (nil, let url?): return try LedgerClient(baseURL: url).genesis()
        default: throw fail("name the chain with exactly one of --genesis FILE or --node URL")
        }
    }

    /// Signs `proposal`, prints what was approved, writes the file.
    func approve(_ proposal: GovernanceBody, genesis g: Genesis, details: [String], document: String? = nil) throws {
        try checkOutput(out, inputs: [key, genesis, document])
        let keys = try MemberSecretKeys.load(from: key)
        let approval = try GovernanceApproval.approve(proposal, genesis: g, keys: keys)
        try approval.write(to: out)
        print("approved \(proposal.action.name): \(approval.subject)")
        for line in details { print("  \(line)") }
        print("  document sha256 \(proposal.documentHash.hexString)")
        print("  chain \(g.chainID) (genesis sha256 \(g.hash.hexString)\(node.map { ", fetched from \($0)" } ?? ""))")
        print("  approver \(approval.member) (key id \(GovernanceApproval.keyIDText(approval.keyID)))")
        print("wrote \(out); send it to the custodian who submits the transaction")
    }
}

struct ApprovePolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Approve installing a query policy document (the same file `credit-node install-policy --file` sends).")
    @Option(help: "Policy document.") var file: String
    @OptionGroup var options: ApprovalOptions

    func run() throws {
        do {
            let g = try options.loadGenesis()
            let (proposal, policy) = try QueryClient.policyProposal(genesis: g, document: try readFile(file))
            let callers = (policy.callerRoles.map(\.rawValue).sorted().map { "role \($0)" } + policy.callerMembers.sorted().map { "member \($0)" })
            try options.approve(proposal, genesis: g, details: [
                "title: \(policy.title)",
                "purposes: \(policy.purposes.map(\.name).joined(separator: ", "))",
                "scope \(policy.scope.rawValue); callers: \(callers.joined(separator: ", ")); consent required: \(policy.consentRequired)",
                "outputs: \(policy.outputs.map(\.name).joined(separator: ", "))",
            ], document: file)
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct ApproveModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Approve installing a scoring model document (the same file `credit-node install-model --file` sends).",
        discussion: """
        A new version must keep the kind of its name's latest version. With --node the model is
        checked against every model that node holds, installed by governance too; with --genesis,
        against the genesis models only (validators still refuse a kind change when it is sent).
        """)
    @Option(help: "Model document.") var file: String
    @OptionGroup var options: ApprovalOptions

    func run() throws {
        do {
            let g = try options.loadGenesis()
            // Against the models the node holds when the chain is fetched from one (installs by
            // governance included), else the genesis models (a genesis file holds no later installs).
            let rules = ScoringRules()
            let known = try options.node.map(installedModels(node:)) ?? g.models.map { ($0.name, $0.version, rules.modelKind($0.document)) }
            let (proposal, model) = try QueryClient.modelProposal(document: try readFile(file), installed: known)
            try options.approve(proposal, genesis: g, details: [
                "title: \(model.title)",
                "kind \(model.kind.rawValue); subjects: \(model.subjectKinds.map(\.name).joined(separator: ", "))",
                "once installed, the scorers re-score every subject it covers (docs/SCORING.md §8)",
            ], document: file)
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct ApproveErase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Approve crypto-shredding these records (the same ids `credit-node erase --id` names, in any order).")
    @Option(name: .customLong("id"), help: "Transaction id of a record to erase (repeatable).") var ids: [String] = []
    @OptionGroup var options: ApprovalOptions

    func run() throws {
        do {
            let g = try options.loadGenesis()
            let proposal = QueryClient.erasureProposal(records: try recordIDs(ids))
            try options.approve(proposal, genesis: g, details: proposal.erasedRecords.map { "record \($0.hexString)" })
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}
