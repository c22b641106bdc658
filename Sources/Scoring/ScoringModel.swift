import LedgerCore
import LedgerCrypto

/// A scoring model compiled from its document (format `creditledger-scorecard/v1`,
/// docs/SCORING.md §2). Two kinds: a points scorecard with dimensions, grades and vetoes, and
/// a logistic risk-warning model with fixed-point coefficients and four colour levels.
/// The model's identity is `hash`, SHA-256 of the document's exact bytes.
public struct ScoringModel: Sendable {
    public static let format = "creditledger-scorecard/v1"

    /// Limits of format v1 (docs/SCORING.md §2.6).
    public enum Limits {
        public static let documentBytes = 65_536
        public static let dimensions = 12
        public static let indicators = 64
        public static let industrySets = 8
        public static let industryPrefixes = 32
        public static let vetoes = 16
        public static let features = 12
        public static let bands = 16
        public static let conditions = 4
        public static let categoriesPerSelector = 15
        /// |points| of a band, a linear bound, a dimension bound or base.
        public static let points: Int64 = 10_000
        /// |coefficient| in thousandths (±10.0).
        public static let coefficientMilli: Int64 = 10_000
        /// |intercept| in thousandths (±20.0).
        public static let interceptMilli: Int64 = 20_000
        public static let featureCap: Int64 = 1_000
        public static let withinDays: Int64 = 36_500
        /// |value| of a threshold, condition bound, or an attribute as read.
        public static let value: Int64 = 1_000_000_000_000
        public static let linearPointsPer: Int64 = 1_000
    }

    public enum Kind: String, Sendable {
        case scorecard
        case riskWarning = "risk_warning"
    }

    /// How an indicator turns the facts it selects into one integer (docs/SCORING.md §4.3).
    public enum Measure: String, Sendable, CaseIterable {
        case count, sum, max, min, latest
        case daysSinceEarliest = "days_since_earliest"
        case daysSinceLatest = "days_since_latest"

        var needsAttribute: Bool { [.sum, .max, .min, .latest].contains(self) }
    }

    /// Which facts an indicator, veto or feature looks at.
    public struct Selector: Sendable {
        /// Bit `1 << category.rawValue` for each selected category.
        let categories: UInt32
        /// Bit `1 << severity.rawValue` for each selected severity; 0 selects every severity.
        let severities: UInt8
        let withinDays: Int64?
        let conditions: [Condition]
        let includeRepaired: Bool

        struct Condition: Sendable {
            let attribute: String
            let min: Int64
            let max: Int64
        }
    }

    public enum PointsRule: Sendable {
        /// (from, points), `from` strictly increasing.
        case bands([(from: Int64, points: Int64)])
        case linear(pointsPer: Int64, divisor: Int64, min: Int64, max: Int64)
    }

    public struct Dimension: Sendable {
        public let code: String
        public let title: String
        public let min: Int64
        public let max: Int64
        public let base: Int64
    }

    public struct Indicator: Sendable {
        public let id: String
        public let title: String
        /// Index into `dimensions`.
        public let dimension: Int
        let selector: Selector
        public let measure: Measure
        public let attribute: String?
        let rule: PointsRule
        public let ifMissing: Int64
    }

    public struct IndustrySet: Sendable {
        public let id: String
        public let title: String
        /// GB/T 4754 code prefixes, such as "C" (manufacturing) or "I65".
        public let industries: [String]
        public let indicators: [Indicator]
    }

    public struct Veto: Sendable {
        public let id: String
        public let title: String
        let selector: Selector
        /// The best grade a subject with a matching fact can have.
        public let cap: Grade
    }

    public struct Feature: Sendable {
        public let id: String
        public let title: String
        let selector: Selector
        public let measure: Measure
        public let attribute: String?
        public let cap: Int64
        public let coefficientMilli: Int64
    }

    public struct Level: Sendable {
        public let level: RiskLevel
        /// Probabilities below this (basis points) are at this level; nil for red.
        public let belowBasisPoints: Int64?
        public let grade: Grade
    }

    public let hash: Hash
    public let document: [UInt8]
    public let name: String
    public let version: UInt32
    public let kind: Kind
    public let title: String
    public let subjectKinds: [SubjectKind]
    // Scorecards
    public let dimensions: [Dimension]
    public let indicators: [Indicator]
    public let industrySets: [IndustrySet]
    public let vetoes: [Veto]
    /// Minimum points of S, A+, A, B and C; D takes the rest.
    public let gradeMinimums: [Int64]
    // Risk-warning models
    public let interceptMilli: Int64
    public let features: [Feature]
    public let levels: [Level]

    /// Compiles a model document, refusing anything format v1 does not define.
    public init(document: [UInt8]) throws {
        guard document.count <= Limits.documentBytes else {
            throw ModelError(.tooLarge, "", "document is \(document.count) bytes, limit \(Limits.documentBytes)")
        }
        var top = try ObjectReader(try StrictJSONParser.parse(document), path: "")
        let format = try top.string("format")
        guard format == Self.format else {
            throw ModelError(.unsupportedFormat, "format", "\"\(format)\" is not \(Self.format)")
        }
        let kindName = try top.string("kind")
        guard let kind = Kind(rawValue: kindName) else {
            throw ModelError(.unknownKind, "kind", "\"\(kindName)\" is not scorecard or risk_warning")
        }
        let name = try top.string("name")
        guard Genesis.isValidIdentifier(name, max: FieldLimits.governanceName) else {
            throw ModelError(.valueOutOfRange, "name", "\"\(name)\" must be 1-64 characters of a-z 0-9 . - / _ (a governance name)")
        }
        self.version = UInt32(try top.integer("version", 1...Int64(UInt32.max)))
        self.title = try top.optionalString("title") ?? ""
        _ = try top.optionalString("description")
        var kinds: [SubjectKind] = []
        for (i, k) in (try top.stringList("subject_kinds", max: 2) ?? []).enumerated() {
            guard let sk = SubjectKind(name: k) else {
                throw ModelError(.valueOutOfRange, "subject_kinds[\(i)]", "\"\(k)\" is not individual_business or enterprise")
            }
            guard !kinds.contains(sk) else { throw ModelError(.duplicateID, "subject_kinds[\(i)]", "\"\(k)\" is listed twice") }
            kinds.append(sk)
        }
        guard !kinds.isEmpty else { throw ModelError(.missingKey, "subject_kinds", "required key is missing") }
        self.hash = SHA256.hash(document)
        self.document = document
        self.name = name
        self.kind = kind
        self.subjectKinds = kinds

        switch kind {
        case .scorecard:
            let dims = try Self.parseDimensions(&top)
            self.dimensions = dims
            var ids = Set<String>()
            self.indicators = try (try top.optionalArray("indicators", max: Limits.indicators) ?? []).map {
                try Self.parseIndicator($0.node, $0.path, dimensions: dims, ids: &ids)
            }
            var setIDs = Set<String>()
            self.industrySets = try (try top.optionalArray("industry_sets", max: Limits.industrySets) ?? []).map {
                try Self.parseIndustrySet($0.node, $0.path, dimensions: dims, indicatorIDs: &ids, setIDs: &setIDs)
            }
            var vetoIDs = Set<String>()
            self.vetoes = try (try top.optionalArray("vetoes", max: Limits.vetoes) ?? []).map {
                try Self.parseVeto($0.node, $0.path, ids: &vetoIDs)
            }
            self.gradeMinimums = try Self.parseGrades(try top.array("grades", max: 6))
            self.interceptMilli = 0
            self.features = []
            self.levels = []
        case .riskWarning:
            self.dimensions = []
            self.indicators = []
            self.industrySets = []
            self.vetoes = []
            self.gradeMinimums = []
            let interceptNode = try top.required("intercept_milli")
            guard case .integer(let intercept) = interceptNode else {
                throw ModelError(.wrongType, "intercept_milli", "expected an integer, found \(interceptNode.typeName)")
            }
            guard abs(intercept) <= Limits.interceptMilli else {
                throw ModelError(.coefficientOutOfRange, "intercept_milli", "\(intercept) is beyond ±\(Limits.interceptMilli) (±20.0 in thousandths)")
            }
            self.interceptMilli = intercept
            var ids = Set<String>()
            let features = try top.array("features", max: Limits.features).map { try Self.parseFeature($0.node, $0.path, ids: &ids) }
            guard !features.isEmpty else { throw ModelError(.valueOutOfRange, "features", "a risk model needs at least one feature") }
            self.features = features
            self.levels = try Self.parseLevels(try top.array("levels", max: 4))
        }
        try top.finish()
    }

    /// Whether the model scores subjects of this kind.
    public func applies(to kind: SubjectKind) -> Bool { subjectKinds.contains(kind) }

    /// The industry set for a GB/T 4754 industry code: the first set with a matching prefix.
    public func industrySet(for industry: String) -> IndustrySet? {
        guard !industry.isEmpty else { return nil }
        return industrySets.first { $0.industries.contains { industry.hasPrefix($0) } }
    }

    /// The grade for a points total before vetoes.
    public func grade(forPoints points: Int64) -> Grade {
        for (i, minimum) in gradeMinimums.enumerated() where points >= minimum { return Grade(rawValue: UInt8(i))! }
        return .d
    }

    /// The codes a score update of this model carries, in order.
    public var dimensionCodes: [String] {
        switch kind {
        case .scorecard: return dimensions.map(\.code)
        case .riskWarning: return features.map(\.id) + [RiskOutcome.logitCode, RiskOutcome.levelCode]
        }
    }

    // MARK: Parsing

    static func isIdentifier(_ s: String, max: Int = 32) -> Bool { Genesis.isValidName(s, max: max) }

    static func parseID(_ r: inout ObjectReader, _ key: String = "id", ids: inout Set<String>) throws -> String {
        let id = try r.string(key)
        guard isIdentifier(id) else {
            throw ModelError(.valueOutOfRange, "\(r.path).\(key)", "\"\(id)\" must be 1-32 characters of a-z 0-9 _ . - (starting with a letter or digit)")
        }
        guard ids.insert(id).inserted else { throw ModelError(.duplicateID, "\(r.path).\(key)", "\"\(id)\" is used twice") }
        return id
    }

    static func parseDimensions(_ top: inout ObjectReader) throws -> [Dimension] {
        let list = try top.array("dimensions", max: Limits.dimensions)
        guard !list.isEmpty else { throw ModelError(.valueOutOfRange, "dimensions", "a scorecard needs at least one dimension") }
        var codes = Set<String>()
        let p = Limits.points
        return try list.map { item in
            var r = try ObjectReader(item.node, path: item.path)
            let code = try parseID(&r, "code", ids: &codes)
            guard code != RiskOutcome.logitCode, code != RiskOutcome.levelCode else {
                throw ModelError(.valueOutOfRange, "\(item.path).code", "\"\(code)\" is reserved")
            }
            let title = try r.optionalString("title") ?? ""
            let min = try r.integer("min", -p...p), max = try r.integer("max", -p...p)
            guard min <= max else { throw ModelError(.valueOutOfRange, item.path, "min \(min) is above max \(max)") }
            let base = try r.optionalInteger("base", -p...p) ?? 0
            try r.finish()
            return Dimension(code: code, title: title, min: min, max: max, base: base)
        }
    }

    static func parseSelector(_ node: JSONNode, _ path: String) throws -> Selector {
        var r = try ObjectReader(node, path: path)
        guard let names = try r.stringList("category", max: Limits.categoriesPerSelector) else {
            throw ModelError(.missingKey, "\(path).category", "required key is missing")
        }
        var categories: UInt32 = 0
        var withSeverity = true
        for n in names {
            guard let c = Category(name: n) else {
                throw ModelError(.unknownCategory, "\(path).category",
                    "\"\(n)\" is not a ledger fact category (known: \(Category.allCases.map(\.name).joined(separator: ", ")))")
            }
            categories |= 1 << UInt32(c.rawValue)
            withSeverity = withSeverity && c.hasSeverity
        }
        var severities: UInt8 = 0
        if let list = try r.stringList("severity", max: 3) {
            guard withSeverity else {
                throw ModelError(.valueOutOfRange, "\(path).severity", "only penalty and court_judgment facts carry a severity")
            }
            for n in list {
                guard let s = Severity(name: n), s != .none else {
                    throw ModelError(.valueOutOfRange, "\(path).severity", "\"\(n)\" is not minor, general or serious")
                }
                severities |= 1 << s.rawValue
            }
        }
        let within = try r.optionalInteger("within_days", 1...Limits.withinDays)
        var conditions: [Selector.Condition] = []
        for item in try r.optionalArray("where", max: Limits.conditions) ?? [] {
            var c = try ObjectReader(item.node, path: item.path)
            let attribute = try c.string("attribute")
            guard Genesis.isValidName(attribute, max: FieldLimits.attributeName) else {
                throw ModelError(.valueOutOfRange, "\(item.path).attribute", "\"\(attribute)\" is not an attribute name")
            }
            let v = Limits.value
            let min = try c.optionalInteger("min", -v...v), max = try c.optionalInteger("max", -v...v)
            guard min != nil || max != nil else { throw ModelError(.missingKey, item.path, "a condition needs min, max or both") }
            guard (min ?? -v) <= (max ?? v) else { throw ModelError(.valueOutOfRange, item.path, "min is above max") }
            try c.finish()
            conditions.append(.init(attribute: attribute, min: min ?? Int64.min, max: max ?? Int64.max))
        }
        let includeRepaired = try r.optionalBool("include_repaired") ?? false
        try r.finish()
        return Selector(categories: categories, severities: severities, withinDays: within, conditions: conditions,
                        includeRepaired: includeRepaired)
    }

    static func parseMeasure(_ r: inout ObjectReader) throws -> (Measure, String?) {
        let name = try r.string("measure")
        guard let measure = Measure(rawValue: name) else {
            throw ModelError(.unknownMeasure, "\(r.path).measure",
                "\"\(name)\" is not a known measure (\(Measure.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let attribute = try r.optionalString("attribute")
        if measure.needsAttribute {
            guard let a = attribute else { throw ModelError(.missingKey, "\(r.path).attribute", "measure \(name) needs an attribute") }
            guard Genesis.isValidName(a, max: FieldLimits.attributeName) else {
                throw ModelError(.valueOutOfRange, "\(r.path).attribute", "\"\(a)\" is not an attribute name")
            }
        } else if attribute != nil {
            throw ModelError(.unknownKey, "\(r.path).attribute", "measure \(name) takes no attribute")
        }
        return (measure, attribute)
    }

    static func parseIndicator(_ node: JSONNode, _ path: String, dimensions: [Dimension], ids: inout Set<String>) throws -> Indicator {
        var r = try ObjectReader(node, path: path)
        let id = try parseID(&r, ids: &ids)
        let title = try r.optionalString("title") ?? ""
        let dimensionCode = try r.string("dimension")
        guard let dimension = dimensions.firstIndex(where: { $0.code == dimensionCode }) else {
            throw ModelError(.unknownDimension, "\(path).dimension",
                "indicator \"\(id)\" names dimension \"\(dimensionCode)\", which the model does not declare (\(dimensions.map(\.code).joined(separator: ", ")))")
        }
        let selector = try parseSelector(try r.required("facts"), "\(path).facts")
        let (measure, attribute) = try parseMeasure(&r)
        let p = Limits.points, v = Limits.value
        let bands = try r.optionalArray("bands", max: Limits.bands)
        let linear = r.optional("linear")
        let rule: PointsRule
        switch (bands, linear) {
        case (let list?, nil):
            guard !list.isEmpty else { throw ModelError(.valueOutOfRange, "\(path).bands", "at least one band is needed") }
            var out: [(from: Int64, points: Int64)] = []
            for item in list {
                var b = try ObjectReader(item.node, path: item.path)
                let from = try b.integer("from", -v...v)
                let points = try b.integer("points", -p...p)
                try b.finish()
                if let last = out.last, from <= last.from {
                    throw ModelError(.overlappingThresholds, "\(item.path).from", "bands must start at strictly increasing values (\(from) after \(last.from))")
                }
                out.append((from, points))
            }
            rule = .bands(out)
        case (nil, let node?):
            var l = try ObjectReader(node, path: "\(path).linear")
            let per = try l.integer("points_per", -Limits.linearPointsPer...Limits.linearPointsPer)
            let divisor = try l.optionalInteger("divisor", 1...v) ?? 1
            let min = try l.integer("min", -p...p), max = try l.integer("max", -p...p)
            guard min <= max else { throw ModelError(.valueOutOfRange, "\(path).linear", "min \(min) is above max \(max)") }
            try l.finish()
            rule = .linear(pointsPer: per, divisor: divisor, min: min, max: max)
        case (nil, nil):
            throw ModelError(.missingKey, path, "indicator \"\(id)\" needs bands or linear")
        default:
            throw ModelError(.unknownKey, path, "indicator \"\(id)\" has both bands and linear; give one")
        }
        let givenIfMissing = try r.optionalInteger("if_missing", -p...p)
        if measure == .count && givenIfMissing != nil {
            throw ModelError(.valueOutOfRange, "\(path).if_missing", "a count always has a value; if_missing does not apply")
        }
        let ifMissing = givenIfMissing ?? 0
        try r.finish()
        return Indicator(id: id, title: title, dimension: dimension, selector: selector, measure: measure, attribute: attribute,
                         rule: rule, ifMissing: ifMissing)
    }

    /// `indicatorIDs`: the ids taken so far, by the general list and the sets before this one:
    /// ids are unique across all of them (§2.2; each set started from the general list's alone,
    /// so two sets could share one: found in review, 2026-12-06).
    static func parseIndustrySet(_ node: JSONNode, _ path: String, dimensions: [Dimension], indicatorIDs ids: inout Set<String>,
                                 setIDs: inout Set<String>) throws -> IndustrySet {
        var r = try ObjectReader(node, path: path)
        let id = try parseID(&r, ids: &setIDs)
        let title = try r.optionalString("title") ?? ""
        guard let industries = try r.stringList("industries", max: Limits.industryPrefixes) else {
            throw ModelError(.missingKey, "\(path).industries", "required key is missing")
        }
        for code in industries {
            guard (1...FieldLimits.industry).contains(code.utf8.count),
                  code.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) }) else {
                throw ModelError(.valueOutOfRange, "\(path).industries", "\"\(code)\" is not a GB/T 4754 code prefix (A-Z 0-9, 1-8)")
            }
        }
        let indicators = try r.array("indicators", max: Limits.indicators).map {
            try parseIndicator($0.node, $0.path, dimensions: dimensions, ids: &ids)
        }
        try r.finish()
        return IndustrySet(id: id, title: title, industries: industries, indicators: indicators)
    }

    static func parseGradeName(_ node: JSONNode, _ path: String) throws -> Grade {
        let name = try ObjectReader.string(node, path)
        guard let g = Grade(name: name) else { throw ModelError(.valueOutOfRange, path, "\"\(name)\" is not a grade (S, A+, A, B, C, D)") }
        return g
    }

    static func parseVeto(_ node: JSONNode, _ path: String, ids: inout Set<String>) throws -> Veto {
        var r = try ObjectReader(node, path: path)
        let id = try parseID(&r, ids: &ids)
        let title = try r.optionalString("title") ?? ""
        let selector = try parseSelector(try r.required("facts"), "\(path).facts")
        let cap = try parseGradeName(try r.required("cap"), "\(path).cap")
        try r.finish()
        return Veto(id: id, title: title, selector: selector, cap: cap)
    }

    static func parseGrades(_ list: [(node: JSONNode, path: String)]) throws -> [Int64] {
        var minimums: [Int64] = []
        for (i, expected) in Grade.allCases.enumerated() {
            guard i < list.count else {
                throw ModelError(.missingGrade, "grades", "grade \(expected.name) is missing; list S, A+, A, B, C, D, best first")
            }
            var r = try ObjectReader(list[i].node, path: list[i].path)
            let g = try parseGradeName(try r.required("grade"), "\(list[i].path).grade")
            guard g == expected else {
                throw ModelError(.missingGrade, "\(list[i].path).grade", "expected \(expected.name) here, found \(g.name); list S, A+, A, B, C, D once each, best first")
            }
            let minimum = try r.optionalInteger("min_points", -1_000_000...1_000_000)
            try r.finish()
            if g == .d {
                guard minimum == nil else {
                    throw ModelError(.overlappingThresholds, "\(list[i].path).min_points", "D takes every total below C's minimum and has no min_points")
                }
            } else {
                guard let m = minimum else { throw ModelError(.missingKey, "\(list[i].path).min_points", "grade \(g.name) needs min_points") }
                if let previous = minimums.last, m >= previous {
                    throw ModelError(.overlappingThresholds, "\(list[i].path).min_points",
                        "\(g.name) starts at \(m), not below \(Grade(rawValue: g.rawValue - 1)!.name) at \(previous): thresholds must strictly decrease")
                }
                minimums.append(m)
            }
        }
        return minimums
    }

    static func parseFeature(_ node: JSONNode, _ path: String, ids: inout Set<String>) throws -> Feature {
        var r = try ObjectReader(node, path: path)
        let id = try parseID(&r, ids: &ids)
        guard id != RiskOutcome.logitCode, id != RiskOutcome.levelCode else {
            throw ModelError(.valueOutOfRange, "\(path).id", "\"\(id)\" is reserved")
        }
        let title = try r.optionalString("title") ?? ""
        let selector = try parseSelector(try r.required("facts"), "\(path).facts")
        let (measure, attribute) = try parseMeasure(&r)
        let cap = try r.integer("cap", 0...Limits.featureCap)
        let coefficientNode = try r.required("coefficient_milli")
        guard case .integer(let coefficient) = coefficientNode else {
            throw ModelError(.wrongType, "\(path).coefficient_milli", "expected an integer, found \(coefficientNode.typeName)")
        }
        guard abs(coefficient) <= Limits.coefficientMilli else {
            throw ModelError(.coefficientOutOfRange, "\(path).coefficient_milli",
                "\(coefficient) is beyond ±\(Limits.coefficientMilli) (±10.0 in thousandths)")
        }
        try r.finish()
        return Feature(id: id, title: title, selector: selector, measure: measure, attribute: attribute, cap: cap,
                       coefficientMilli: coefficient)
    }

    static func parseLevels(_ list: [(node: JSONNode, path: String)]) throws -> [Level] {
        var out: [Level] = []
        for (i, expected) in RiskLevel.allCases.enumerated() {
            guard i < list.count else {
                throw ModelError(.missingGrade, "levels", "level \(expected.rawValue) is missing; list green, yellow, orange, red")
            }
            var r = try ObjectReader(list[i].node, path: list[i].path)
            let name = try r.string("level")
            guard name == expected.rawValue else {
                throw ModelError(.missingGrade, "\(list[i].path).level", "expected \(expected.rawValue) here, found \"\(name)\"")
            }
            let below = try r.optionalInteger("below_bp", 1...10_000)
            let grade = try parseGradeName(try r.required("grade"), "\(list[i].path).grade")
            try r.finish()
            if expected == .red {
                guard below == nil else {
                    throw ModelError(.overlappingThresholds, "\(list[i].path).below_bp", "red takes every probability from orange's bound up and has no below_bp")
                }
            } else {
                guard let b = below else { throw ModelError(.missingKey, "\(list[i].path).below_bp", "level \(name) needs below_bp") }
                if let previous = out.last?.belowBasisPoints, b <= previous {
                    throw ModelError(.overlappingThresholds, "\(list[i].path).below_bp", "\(b) is not above the previous level's \(previous)")
                }
            }
            if let previous = out.last, grade < previous.grade {
                throw ModelError(.overlappingThresholds, "\(list[i].path).grade", "a riskier level cannot have a better grade than \(previous.level.rawValue)")
            }
            out.append(Level(level: expected, belowBasisPoints: below, grade: grade))
        }
        return out
    }
}

/// The four warning colours, least risky first.
public enum RiskLevel: String, Sendable, CaseIterable, Comparable {
    case green, yellow, orange, red
    /// 1 green … 4 red: the `level` value in a score update.
    public var rank: Int32 { Int32(Self.allCases.firstIndex(of: self)! + 1) }
    public static func < (a: RiskLevel, b: RiskLevel) -> Bool { a.rank < b.rank }
}
