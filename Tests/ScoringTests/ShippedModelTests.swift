import Foundation
import LedgerCore
import LedgerCrypto
@testable import Scoring
import XCTest

/// The models shipped in Genesis/models compile, and their identities are what genesis files name.
final class ShippedModelTests: XCTestCase {
    func testShippedModelsCompile() throws {
        let ib = try Models.individualBusiness()
        XCTAssertEqual(ib.name, "individual-business")
        XCTAssertEqual(ib.kind, .scorecard)
        XCTAssertEqual(ib.dimensions.map(\.code), ["honesty", "lawful", "discipline", "violations", "social", "basic"])
        XCTAssertEqual(ib.subjectKinds, [.individualBusiness])
        let ent = try Models.enterprise()
        XCTAssertEqual(ent.dimensions.map(\.code), ["profile", "operations", "innovation", "compliance", "social", "risk_warning"])
        XCTAssertEqual(ent.industrySets.map(\.id), ["manufacturing", "services"])
        XCTAssertEqual(ent.industrySet(for: "C13")?.id, "manufacturing")
        XCTAssertEqual(ent.industrySet(for: "H62")?.id, "services")
        XCTAssertNil(ent.industrySet(for: "E48"))
        let risk = try Models.riskWarning()
        XCTAssertEqual(risk.kind, .riskWarning)
        XCTAssertEqual(risk.levels.map(\.level), [.green, .yellow, .orange, .red])
        for m in [ib, ent, risk] {
            XCTAssertEqual(m.hash, SHA256.hash(m.document))
            XCTAssertLessThanOrEqual(m.dimensionCodes.count, FieldLimits.dimensions)
        }
    }

    /// docs/SCORING.md names each shipped model by its current hash.
    func testScoringDocumentNamesTheShippedModelHashes() throws {
        let doc = URL(fileURLWithPath: Models.directory).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/SCORING.md").path
        let text = try String(contentsOfFile: doc, encoding: .utf8)
        for file in Models.files {
            let hash = SHA256.hash(try Models.bytes(file)).hexString
            XCTAssertTrue(text.contains(hash), "docs/SCORING.md does not name \(file) by its hash \(hash)")
        }
    }
}
