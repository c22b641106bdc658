import Foundation
import LedgerCore
import LedgerCrypto

/// Synthetic, plausible credit records for demos, tests and benchmarks.
public struct DemoRecords {
    /// A seeded SplitMix64 generator, so demo data replays exactly.
    public struct Generator: RandomNumberGenerator, Sendable {
        var state: UInt64
        public init(seed: UInt64) { state = seed }
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let industries = ["C13", "C18", "F51", "F52", "H61", "H62", "I65", "E48", "O80", "M73"]
    static let names = ["西湖茶叶店", "文三路便利店", "城西小吃", "钱塘五金机电", "滨江软件工作室", "之江纺织", "余杭建材商行", "拱墅家电维修"]

    /// Attestation requests for `count` records over `subjects` subjects, with plausible category mix.
    public static func requests(count: Int, subjects: Int, seed: UInt64) -> [AttestationRequest] {
        var rng = Generator(seed: seed)
        let codes: [(USCC, SubjectKind)] = (0..<max(1, subjects)).map { i in
            let kind: SubjectKind = i % 3 == 0 ? .enterprise : .individualBusiness
            return (USCCGenerator.make(kind: kind, random: { rng.below($0) }), kind)
        }
        // Weights roughly as county platforms see them: many routine records, few negative ones.
        let mix: [(Category, Int)] = [(.registration, 10), (.license, 12), (.taxGrade, 14), (.socialInsurance, 14),
                                      (.utilitiesPayment, 20), (.annualReport, 10), (.penalty, 6), (.honor, 3),
                                      (.courtJudgment, 2), (.abnormalOperationList, 2), (.seriousViolationList, 1),
                                      (.dishonestJudgmentDebtor, 1), (.intellectualProperty, 2), (.creditRepair, 1)]
        let total = mix.reduce(0) { $0 + $1.1 }
        return (0..<count).map { i in
            let (subject, kind) = codes[i % codes.count]
            var pick = rng.below(total)
            var category = Category.registration
            for (c, w) in mix { if pick < w { category = c; break }; pick -= w }
            let severity: String? = category.hasSeverity ? ["minor", "general", "serious"][rng.below(3)] : nil
            let date = String(format: "%04d-%02d-%02d", 2020 + rng.below(7), 1 + rng.below(12), 1 + rng.below(28))
            var attributes: [String: Int64] = [:]
            var payload: [String: JSONValue] = ["name": .string(names[rng.below(names.count)]),
                                                "record_no": .string("REC-\(seed)-\(i)")]
            switch category {
            case .penalty:
                let amount = Int64(500 * (1 + rng.below(100)))
                attributes["amount_yuan"] = amount
                payload["decision"] = .string("行政处罚决定书 第\(1000 + rng.below(9000))号")
            case .taxGrade:
                attributes["tax_grade"] = Int64(1 + rng.below(5))
            case .utilitiesPayment:
                attributes["months_on_time"] = Int64(rng.below(13))
                attributes["months_overdue"] = Int64(rng.below(3))
            case .socialInsurance:
                attributes["employees_insured"] = Int64(1 + rng.below(40))
            default:
                break
            }
            return AttestationRequest(subject: subject.code, subject_kind: kind.name, category: category.name,
                                      severity: severity, event_date: date, industry: industries[rng.below(industries.count)],
                                      attributes: attributes, payload: .object(payload))
        }
    }
}

