import Foundation
import LedgerCore
import LedgerCrypto
@testable import Scoring

/// The repository's Genesis/models directory, found from this file's path.
enum Models {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Genesis/models").path

    static func bytes(_ file: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(file)") else {
            throw LedgerError(.notFound, "cannot read \(directory)/\(file)")
        }
        return Array(data)
    }

    static func individualBusiness() throws -> ScoringModel { try ScoringModel(document: bytes("individual-business.json")) }
    static func enterprise() throws -> ScoringModel { try ScoringModel(document: bytes("enterprise.json")) }
    static func riskWarning() throws -> ScoringModel { try ScoringModel(document: bytes("risk-warning.json")) }

    static func installed(_ file: String) throws -> InstalledModel {
        let m = try ScoringModel(document: bytes(file))
        return InstalledModel(name: m.name, version: m.version, document: m.document, logIndex: nil)
    }
}
