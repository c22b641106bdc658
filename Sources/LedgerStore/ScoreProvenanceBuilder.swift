import Foundation
import LedgerCore
import LedgerCrypto
import Scoring

extension ChainStore {
    /// The provenance of a committed score update: receipts of it and of each input, all proven
    /// against the same (latest) checkpoint, the as-of block, and the model's install receipt
    /// when the model came by governance (docs/SCORING.md §7.3).
    public func scoreProvenance(for id: Hash) throws -> ScoreProvenance {
        guard let loc = try location(of: id), let tx = try transaction(at: loc.logIndex) else {
            throw LedgerError(.notFound, "transaction \(id.hexString) is not committed on this node")
        }
        guard case .scoreUpdate(let u) = tx.body else {
            throw LedgerError(.invalidValue, "transaction \(id.hexString) is \(tx.kind.withArticle), not a score update")
        }
        let h = head
        guard let note = try checkpoint(height: h.height) else { throw LedgerError(.notFound, "no checkpoint at height \(h.height)") }
        // Verified once for all the receipts (up to 1,026), not once each.
        let (cp, _) = try Checkpoint.verify(signedNote: note, genesis: genesis)
        func receipt(_ id: Hash) throws -> Receipt {
            guard let loc = try location(of: id), let tx = try transaction(at: loc.logIndex),
                  let header = try blockHeader(height: loc.height), let cert = try certificate(height: loc.height) else {
                throw LedgerError(.notFound, "transaction \(id.hexString) is not committed on this node")
            }
            return Receipt(genesis: genesis, transaction: tx, logIndex: loc.logIndex,
                           proof: try inclusionProof(index: loc.logIndex, size: cp.size), checkpoint: note,
                           verifiedTreeSize: cp.size, header: header, certificate: cert)
        }
        guard let asOfHeight = try height(coveringLogSize: u.asOfLogSize), u.asOfLogSize >= 1,
              let header = try blockHeader(height: asOfHeight), let cert = try certificate(height: asOfHeight) else {
            throw LedgerError(.notFound, "no block holds log entry \(u.asOfLogSize) − 1")
        }
        var install: Receipt? = nil
        if genesis.model(hash: u.modelHash) == nil {
            guard let m = try installedModel(hash: u.modelHash), let index = m.logIndex, let t = try transaction(at: index) else {
                throw LedgerError(.notFound, "model \(u.modelHash.hexString) is not installed on this node")
            }
            install = try receipt(t.id)
        }
        return ScoreProvenance(genesis: genesis, scoreUpdate: try receipt(id), inputs: try u.inputs.map(receipt),
                               asOfBlock: ScoreProvenance.Block(header: header, certificate: cert),
                               modelInstall: install)
    }
}
