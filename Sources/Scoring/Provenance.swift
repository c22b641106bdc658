import Foundation
import LedgerCore
import LedgerCrypto

/// Everything needed to check a score update offline with the genesis file alone
/// (docs/SCORING.md §7.3, `credit-verify provenance`): receipts of the update and of each
/// input, the block that fixes the as-of date, and — for a model installed by governance —
/// the receipt of its install transaction.
public struct ScoreProvenance: Codable, Sendable {
    public static let format = "creditledger-score-provenance/v1"

    public var format: String
    public var chain_id: String
    public var genesis_sha256: String
    public var score_update: Receipt
    /// One receipt per input, in the update's order.
    public var inputs: [Receipt]
    /// The block holding log entry `as_of_log_size − 1`: its timestamp is the as-of date.
    public var as_of_block: Block
    public var model_install: Receipt?

    /// A block header and its commit certificate, base64.
    public struct Block: Codable, Sendable, Equatable {
        public var height: UInt64
        public var header: String
        public var commit_certificate: String
        public init(header: BlockHeader, certificate: CommitCertificate) {
            height = header.height
            self.header = header.encoded.base64String
            commit_certificate = certificate.encoded.base64String
        }
    }

    public init(genesis: Genesis, scoreUpdate: Receipt, inputs: [Receipt], asOfBlock: Block, modelInstall: Receipt?) {
        format = Self.format
        chain_id = genesis.chainID
        genesis_sha256 = genesis.hash.hexString
        score_update = scoreUpdate
        self.inputs = inputs
        as_of_block = asOfBlock
        model_install = modelInstall
    }

    public struct Verified: Sendable {
        public let update: ScoreUpdateBody
        public let updateLogIndex: UInt64
        public let signer: String
        public let inputs: [LoggedTransaction]
        public let asOf: ScoreAsOf
        public let model: InstalledModel
        public let result: ScoreResult
    }

    /// Checks every receipt, that the inputs are the update's, are records whose issuers may
    /// attest them, precede the as-of size, which precedes the update; that the model is in
    /// genesis or installed before the update; and recomputes the score exactly.
    public func verify(genesis: Genesis, engine: ScoreEngine? = nil) throws -> Verified {
        func bad(_ s: String) -> LedgerError { LedgerError(.invalidProof, "score provenance: \(s)") }
        guard format == Self.format else { throw bad("format is \(format), expected \(Self.format)") }
        guard chain_id == genesis.chainID, genesis_sha256 == genesis.hash.hexString else {
            throw bad("it is for chain \(chain_id) with genesis \(genesis_sha256.prefix(64)), not this genesis (\(genesis.chainID), \(genesis.hash.hexString))")
        }
        let top: Receipt.Verified
        do { top = try score_update.verify(genesis: genesis) } catch { throw bad("score update: \(error)") }
        guard case .scoreUpdate(let u) = top.transaction.body else { throw bad("the receipt is for a \(top.transaction.kind.name), not a score update") }
        let updateIndex = score_update.log_index
        guard u.asOfLogSize >= 1, u.asOfLogSize <= updateIndex else {
            throw bad("as_of_log_size \(u.asOfLogSize) does not precede the update at log index \(updateIndex)")
        }
        guard inputs.count == u.inputs.count else { throw bad("\(inputs.count) input receipts for \(u.inputs.count) inputs") }
        var logged: [LoggedTransaction] = []
        var signers: [Hash: String] = [:]
        for (i, receipt) in inputs.enumerated() {
            let v: Receipt.Verified
            do { v = try receipt.verify(genesis: genesis) } catch { throw bad("input \(i): \(error)") }
            let tx = v.transaction
            guard tx.id == u.inputs[i] else { throw bad("input \(i) is \(tx.id.hexString), the update names \(u.inputs[i].hexString)") }
            guard receipt.log_index < u.asOfLogSize else {
                throw bad("input \(i) at log index \(receipt.log_index) does not precede as_of_log_size \(u.asOfLogSize)")
            }
            if let previous = logged.last, receipt.log_index <= previous.logIndex { throw bad("inputs are not in log order") }
            switch tx.body {
            case .attestation: break
            case .amendment(let a):
                guard let issuer = signers[a.target], issuer == tx.header.signer else {
                    throw bad("input \(i) amends \(a.target.hexString), which is not an earlier input by the same issuer")
                }
            default:
                throw bad("input \(i) is \(tx.kind.withArticle), not a record")
            }
            signers[tx.id] = tx.header.signer
            logged.append(LoggedTransaction(logIndex: receipt.log_index, transaction: tx))
        }
        let header: BlockHeader
        do {
            guard let h = [UInt8](base64: as_of_block.header), let c = [UInt8](base64: as_of_block.commit_certificate) else {
                throw bad("as-of block is not base64")
            }
            header = try BlockHeader.decode(h)
            try CommitCertificate.decode(c).verify(header: header, genesis: genesis)
        } catch let e as LedgerError where e.code == .invalidProof { throw e } catch { throw bad("as-of block: \(error)") }
        // The file's own height of the block is read by people and tools: it must be the header's
        // (it was not checked; found by black-box testing, 2026-12-06).
        guard as_of_block.height == header.height else {
            throw bad("as_of_block.height is \(as_of_block.height), but its header is of block \(header.height)")
        }
        guard header.firstLogIndex < u.asOfLogSize, u.asOfLogSize <= header.logSize else {
            throw bad("block \(header.height) does not hold log entry \(u.asOfLogSize - 1)")
        }
        let model: InstalledModel
        if let m = genesis.model(hash: u.modelHash) {
            // An install receipt beside a genesis model proves nothing and would be shown as if it
            // did (it was ignored unchecked; found by black-box testing, 2026-12-06).
            guard model_install == nil else { throw bad("the model is in genesis, yet the file holds a model_install receipt; a genesis model has none") }
            model = m
        } else {
            guard let install = model_install else { throw bad("model \(u.modelHash.hexString) is not in genesis and no install receipt is given") }
            let v: Receipt.Verified
            do { v = try install.verify(genesis: genesis) } catch { throw bad("model install: \(error)") }
            guard case .governance(let g) = v.transaction.body, g.action == .installModel, g.documentHash == u.modelHash else {
                throw bad("the model install receipt does not install model \(u.modelHash.hexString)")
            }
            guard install.log_index < updateIndex else { throw bad("the model was installed after the update") }
            model = InstalledModel(name: g.name, version: g.version, document: g.document, logIndex: install.log_index)
        }
        let e = engine ?? ScoreEngine(genesis: genesis)
        let compiled = try e.model(model)
        let asOf = ScoreAsOf(logSize: u.asOfLogSize, date: try LedgerDate(chinaStandardTimeMillis: header.timestampMillis))
        let inputsTx = logged.map(\.transaction)
        let result = try e.score(subject: u.subject, inputs: inputsTx, model: compiled, asOf: asOf, explain: true)
        try ScoreEngine.compare(u, with: result, inputs: inputsTx, asOf: asOf, model: compiled)
        return Verified(update: u, updateLogIndex: updateIndex, signer: top.transaction.header.signer, inputs: logged,
                        asOf: asOf, model: model, result: result)
    }
}

/// A custodian's check that the clear metadata a score is computed from matches the raw
/// record (docs/SCORING.md §7.4): every clear attribute that the decrypted payload (a JSON
/// object) also holds as an integer must have the same value there.
public enum PayloadAgreement {
    /// The attributes whose payload value differs. A payload that is not a JSON object, or
    /// does not hold an attribute, has nothing to compare there: that is not a disagreement.
    public static func mismatches(record: AttestationBody, payload: [UInt8]) -> [(name: String, clear: Int64, payload: String)] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else { return [] }
        var out: [(String, Int64, String)] = []
        for a in record.attributes {
            guard let value = object[a.name] else { continue }
            if let n = value as? NSNumber {
                // Compared as integers: a double holds integers exactly only up to 2^53, so
                // 9007199254740993 and 9007199254740992 would pass as equal. A fraction, or
                // true and false, disagree with any integer.
                let type = String(cString: n.objCType)
                let integral = !["c", "B", "d", "f"].contains(type)
                if !integral || n.int64Value != a.value { out.append((a.name, a.value, "\(n)")) }
            } else if let s = value as? String, let v = Int64(s) {
                if v != a.value { out.append((a.name, a.value, s)) }
            }
        }
        return out
    }
}
