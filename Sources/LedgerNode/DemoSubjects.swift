import Foundation
import LedgerCore
import LedgerCrypto

/// Synthetic but realistic subjects and their records for the demo, tests and benchmarks
/// (`credit-node demo-data`): valid USCCs in real county divisions, both subject kinds,
/// GB/T 4754 industries, and records with the attributes the shipped models read
/// (docs/SCORING.md §3.3), drawn with plausible frequencies. Seeded: a seed replays exactly,
/// and dates are relative to an as-of date, never the clock.
public struct DemoSubjects {
    /// One generated subject.
    public struct Subject: Codable, Sendable, Equatable {
        public var uscc: String
        public var subject_kind: String
        public var name: String
        public var industry: String
        public var division: String
        public var registered: String
    }

    /// One generated record: an attestation request plus the role of the member that issues it.
    public struct Record: Codable, Sendable, Equatable {
        public var subject: String
        public var subject_kind: String
        public var category: String
        public var severity: String?
        public var event_date: String
        public var industry: String
        public var attributes: [String: Int64]
        public var payload: [String: String]
        /// `government_issuer`, or `bank` for loan repayment.
        public var issuer_role: String

        public var request: AttestationRequest {
            var p: [String: JSONValue] = payload.mapValues { .string($0) }
            for (k, v) in attributes { p[k] = .integer(v) }
            return AttestationRequest(subject: subject, subject_kind: subject_kind, category: category, severity: severity,
                                      event_date: event_date, industry: industry, attributes: attributes, payload: .object(p))
        }

        /// The clear metadata as an attestation body (commitments left zero: for benchmarks
        /// and tests that write stores directly).
        public func body(payloadCommitment: Hash = Hashes.zero, envelopeHash: Hash = Hashes.zero) throws -> AttestationBody {
            let uscc = try USCC(subject)
            return AttestationBody(subject: uscc, subjectKind: uscc.subjectKind!, category: Category(name: category)!,
                                   severity: severity.flatMap { Severity(name: $0) } ?? .none,
                                   eventDate: try LedgerDate(iso: event_date), industry: industry,
                                   attributes: attributes.sorted { $0.key < $1.key }.map { Attribute(name: $0.key, value: $0.value) },
                                   payloadCommitment: payloadCommitment, envelopeHash: envelopeHash)
        }
    }

    public let subjects: [Subject]
    /// Records of `subjects[i]` are `records[i]`, oldest first.
    public let records: [[Record]]

    static let places = ["西湖", "钱塘", "之江", "文三", "城西", "滨江", "余杭", "拱墅", "上城", "萧山", "临平", "富阳"]
    static let individualIndustries: [(String, String, Int)] = [
        ("F52", "便利店", 35), ("H62", "小吃店", 25), ("O80", "家电维修部", 15), ("F51", "茶叶商行", 10),
        ("C18", "服装加工坊", 5), ("E48", "装修工作室", 5), ("I65", "电脑服务部", 5),
    ]
    static let enterpriseIndustries: [(String, String, Int)] = [
        ("C13", "食品有限公司", 15), ("C18", "服饰有限公司", 10), ("C34", "机械制造有限公司", 10), ("F51", "贸易有限公司", 15),
        ("F52", "商贸有限公司", 10), ("I65", "软件有限公司", 15), ("M73", "科技有限公司", 5), ("E48", "建设工程有限公司", 10),
        ("H61", "酒店管理有限公司", 5), ("L72", "企业管理咨询有限公司", 5),
    ]

    /// Generates `count` subjects and their records as of `asOf`.
    public init(count: Int, seed: UInt64, asOf: LedgerDate) {
        var rng = DemoRecords.Generator(seed: seed)
        let asOfDay = asOf.dayNumber
        func date(_ daysAgo: Int) -> String {
            let (y, m, d) = CivilCalendar.civil(fromDays: asOfDay - Int64(max(0, daysAgo)))
            return String(format: "%04d-%02d-%02d", Int(y), Int(m), Int(d))
        }
        func chance(_ percent: Int) -> Bool { rng.below(1000) < percent * 10 }
        func pick(_ table: [(String, String, Int)]) -> (String, String) {
            var n = rng.below(table.reduce(0) { $0 + $1.2 })
            for t in table { if n < t.2 { return (t.0, t.1) }; n -= t.2 }
            return (table[0].0, table[0].1)
        }
        var codes = Set<String>()
        var subjects: [Subject] = []
        var all: [[Record]] = []
        subjects.reserveCapacity(count)
        all.reserveCapacity(count)
        for i in 0..<count {
            let kind: SubjectKind = rng.below(100) < 65 ? .individualBusiness : .enterprise
            let division = USCCGenerator.demoDivisions[rng.below(USCCGenerator.demoDivisions.count)]
            var uscc = USCCGenerator.make(kind: kind, division: division, random: { rng.below($0) })
            while !codes.insert(uscc.code).inserted { uscc = USCCGenerator.make(kind: kind, division: division, random: { rng.below($0) }) }
            let (industry, trade) = pick(kind == .enterprise ? Self.enterpriseIndustries : Self.individualIndustries)
            let name = "\(Self.places[rng.below(Self.places.count)])\(trade)"
            // Younger businesses are more common: age in days, skewed towards recent years.
            // (enterprises less so: the market's firms are older than its individual businesses).
            let age = 30 + (kind == .enterprise ? rng.below(6570) : min(rng.below(6570), rng.below(6570)))
            let manufacturing = industry.hasPrefix("C")
            var records: [Record] = []
            var recordNo = 0
            func add(_ category: Category, _ daysAgo: Int, severity: Severity = .none, _ attributes: [String: Int64] = [:],
                     details: [String: String] = [:]) {
                guard daysAgo >= 0, daysAgo <= age else { return }
                recordNo += 1
                var payload = details
                payload["name"] = name
                payload["record_no"] = "DEMO-\(seed)-\(i)-\(recordNo)"
                records.append(Record(subject: uscc.code, subject_kind: kind.name, category: category.name,
                                      severity: severity == .none ? nil : severity.name, event_date: date(daysAgo),
                                      industry: industry, attributes: attributes, payload: payload,
                                      issuer_role: category == .loanRepayment ? Role.bank.rawValue : Role.governmentIssuer.rawValue))
            }
            let capital: Int64 = kind == .enterprise ? Int64([100, 300, 500, 1000, 2000, 5000, 10000][rng.below(7)]) * 10_000
                                                     : Int64(1 + rng.below(50)) * 10_000
            add(.registration, age, ["registered_capital_yuan": capital], details: ["address": "\(division) 街道 \(1 + rng.below(300)) 号"])
            if chance(kind == .enterprise ? 12 : 4) {
                let changes = chance(30) ? 2 + rng.below(2) : 1
                for _ in 0..<changes { add(.registration, rng.below(360), ["registered_capital_yuan": capital, "key_change": 1]) }
            }
            for _ in 0..<(rng.below(100) < 80 ? 1 : 2) { add(.license, rng.below(min(age, 2000) + 1)) }
            if kind == .enterprise || chance(60) {
                let grades: [Int64] = [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5]
                for year in 0..<(kind == .enterprise ? 2 : 1) { add(.taxGrade, 200 + 365 * year, ["tax_grade": grades[rng.below(grades.count)]]) }
            }
            for year in 0..<2 {
                let paid: Int64 = chance(70) ? 100 : chance(66) ? Int64(50 + rng.below(50)) : Int64(rng.below(50))
                var a: [String: Int64] = ["report_year": Int64(2025 - year), "on_time": chance(90) ? 1 : 0]
                if kind == .enterprise { a["anomaly"] = chance(3) ? 1 : 0; a["capital_paid_pct"] = paid }
                add(.annualReport, 150 + 365 * year, a)
            }
            for half in 0..<2 {
                let overdue: Int64 = chance(10) ? Int64(1 + rng.below(3)) : 0
                add(.utilitiesPayment, 20 + 180 * half, ["months_on_time": 6 - overdue, "months_overdue": overdue])
            }
            if chance(70) {
                let employees: Int64 = kind == .enterprise ? Int64(5 + min(rng.below(200), rng.below(200))) : Int64(1 + rng.below(8))
                add(.socialInsurance, rng.below(90), ["employees_insured": employees, "months_arrears": chance(5) ? Int64(1 + rng.below(3)) : 0])
            }
            if chance(kind == .enterprise ? 50 : 30) {
                let roll = rng.below(100)
                let overdue: Int64 = roll < 85 ? 0 : roll < 95 ? Int64(1 + rng.below(2)) : Int64(3 + rng.below(6))
                var a: [String: Int64] = ["months_on_time": Int64(6 + rng.below(19)), "months_overdue": overdue]
                if kind == .enterprise { a["property_mortgaged"] = chance(25) ? 1 : 0 }
                add(.loanRepayment, rng.below(60), a, details: ["bank_branch": "西湖支行"])
            }
            if chance(15) {
                for _ in 0..<(chance(25) ? 2 : 1) {
                    let roll = rng.below(100)
                    let severity: Severity = roll < 60 ? .minor : roll < 92 ? .general : .serious
                    var a: [String: Int64] = ["amount_yuan": Int64(500 * (1 + rng.below(severity == .serious ? 400 : 40)))]
                    if manufacturing && chance(30) { a["production_safety"] = 1 }
                    if !manufacturing && kind == .enterprise && chance(30) { a["consumer_rights"] = 1 }
                    add(.penalty, rng.below(1800), severity: severity, a, details: ["decision_no": "西市监罚〔\(2020 + rng.below(7))〕\(1 + rng.below(999))号"])
                }
            }
            if chance(4) {
                let s: Severity = [.minor, .general, .serious][rng.below(3)]
                add(.courtJudgment, rng.below(1500), severity: s, ["amount_yuan": Int64(10_000 * (1 + rng.below(200)))])
            }
            let listed = chance(4)
            if listed { add(.abnormalOperationList, rng.below(1400), details: ["reason": "未按规定公示年度报告"]) }
            let dishonest = chance(2)
            if dishonest { add(.dishonestJudgmentDebtor, rng.below(1000)) }
            if chance(1) && rng.below(2) == 0 { add(.seriousViolationList, rng.below(1000)) }
            if (listed || dishonest) && chance(30) {
                add(.creditRepair, rng.below(30), ["repaired_category": Int64(listed ? Category.abnormalOperationList.rawValue : Category.dishonestJudgmentDebtor.rawValue)])
            }
            if chance(8) { add(.honor, rng.below(1700), ["level": Int64(1 + min(rng.below(4), rng.below(4)))]) }
            if kind == .enterprise && chance(manufacturing ? 60 : 35) {
                var a: [String: Int64] = ["patents": Int64(rng.below(manufacturing ? 10 : 3)), "trademarks": Int64(1 + rng.below(5))]
                if industry.hasPrefix("I") { a["software_copyrights"] = Int64(1 + rng.below(8)) }
                add(.intellectualProperty, rng.below(1700), a)
            }
            records.sort { $0.event_date < $1.event_date }
            subjects.append(Subject(uscc: uscc.code, subject_kind: kind.name, name: name, industry: industry,
                                    division: division, registered: date(age)))
            all.append(records)
        }
        self.subjects = subjects
        self.records = all
    }

    public var recordCount: Int { records.reduce(0) { $0 + $1.count } }
}
