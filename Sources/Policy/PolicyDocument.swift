import Foundation
import LedgerCore
import LedgerCrypto
import Scoring

/// A query policy: the ledger's smart contract. A versioned JSON document (Genesis/policies/,
/// docs/PRIVACY.md §4) that says who may call it, whether the subject's consent is needed, its
/// parameters, and which desensitized fields it returns. It is data, not code: every output
/// comes from a fixed catalogue of deterministic, integer-only transforms, so evaluation is
/// bounded and the same on every node.
public struct PolicyDocument: Sendable {
    public static let format = "creditledger-policy/v1"
    public static let maxOutputs = 16
    public static let minimumK = 10
    public static let maxRecordsCeiling = 5_000

    public enum Scope: String, Sendable { case subject, aggregate, subjectQueries = "subject_queries" }

    public enum ParameterType: String, Sendable { case modelName = "model_name", integer, industry, district }

    public struct Parameter: Sendable {
        public let name: String
        public let type: ParameterType
        public let required: Bool
        /// For integers: the largest accepted value.
        public let max: Int64
        /// Whether the document gave `max` (the default is taken otherwise).
        public var maxGiven = false

        public init(name: String, type: ParameterType, required: Bool, max: Int64) {
            self.name = name; self.type = type; self.required = required; self.max = max
        }
    }

    /// A parameter as `GET /v1/policies` lists it (`parameter_specs`).
    public static func listing(_ p: Parameter) -> [String: Any] {
        var entry: [String: Any] = ["name": p.name, "type": p.type.rawValue, "required": p.required]
        if p.type == .integer { entry["max"] = p.max }
        return entry
    }

    /// A parameter from its `GET /v1/policies` listing; nil when it is not one.
    public static func parameter(listed entry: [String: Any]) -> Parameter? {
        guard let name = entry["name"] as? String, let type = (entry["type"] as? String).flatMap(ParameterType.init(rawValue:)),
              let required = entry["required"] as? Bool else { return nil }
        let max = (entry["max"] as? NSNumber)?.int64Value ?? 1_000_000_000_000
        return Parameter(name: name, type: type, required: required, max: max)
    }

    /// The parameters `given` to `policy` as its `specs` take them, by name, or the refusal
    /// (`parameters_too_large`, `invalid_parameters`) naming what is wrong. The engine checks
    /// every query with it; `credit-node query` checks before sending, from the specs
    /// `GET /v1/policies` lists, so a mistyped value is not refused on the record.
    public static func checkParameters(_ given: [(name: String, value: String)], against specs: [Parameter], policy: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in given {
            guard value.utf8.count <= PolicyEngine.maxParameterBytes, name.utf8.count <= 32 else {
                throw PolicyRefusal(.parametersTooLarge, "parameter \"\(name.clipped())\" is \(value.utf8.count) bytes, limit \(PolicyEngine.maxParameterBytes)")
            }
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw PolicyRefusal(.invalidParameters, "\(policy) takes no parameter \"\(name)\" (\(specs.isEmpty ? "it takes none" : "it takes: " + specs.map(\.name).joined(separator: ", ")))")
            }
            guard out[name] == nil else { throw PolicyRefusal(.invalidParameters, "parameter \"\(name)\" is given twice") }
            switch spec.type {
            case .integer:
                // Written the one way (no sign, no leading zeros): "+5" and "007" were taken, " 5" not
                // (found by black-box testing); the request and its record are signed as written.
                guard let v = Int64(value), v >= 0, v <= spec.max, String(v) == value else {
                    throw PolicyRefusal(.invalidParameters, "parameter \(name) must be an integer 0-\(spec.max) in plain decimal digits, got \"\(value.clipped())\"")
                }
            case .industry:
                if let problem = IndustryCode.problem(value) {
                    throw PolicyRefusal(.invalidParameters, "parameter \(name) must be a GB/T 4754-2017 industry code such as C13, got \"\(value.clipped())\": \(problem)")
                }
            case .district:
                guard value.utf8.count == 6, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw PolicyRefusal(.invalidParameters, "parameter \(name) must be a 6-digit administrative division code, got \"\(value)\"")
                }
            case .modelName:
                guard Genesis.isValidIdentifier(value, max: FieldLimits.governanceName) else {
                    throw PolicyRefusal(.invalidParameters, "parameter \(name) must name a scoring model, got \"\(value)\"")
                }
            }
            out[name] = value
        }
        for spec in specs where spec.required && out[spec.name] == nil {
            throw PolicyRefusal(.invalidParameters, "\(policy) needs parameter \"\(spec.name)\"")
        }
        return out
    }

    /// What a new install of this document is refused for, beyond what parsing takes (rules
    /// added 2026-12-07, so documents already on a ledger still load): an integer parameter whose
    /// `max` is negative accepts no value at all, and `max` on another type is ignored, so says
    /// nothing. Such a policy was installed, used up its name and version, and refused every
    /// query with the parameter (found by black-box testing).
    public var installProblem: String? {
        for p in parameters where p.maxGiven {
            if p.type != .integer { return "parameter \(p.name): max applies to integer parameters only, not \(p.type.rawValue)" }
            if p.max < 0 { return "parameter \(p.name): max \(p.max) is negative, so no value would be accepted" }
        }
        // A flag or count with a minimum severity over a category that carries none can never
        // count a record of it: installed, it told banks "false" for a subject on the list
        // (found by black-box testing, 2026-12-07; scorecard selectors refuse the same).
        for (name, output) in outputs {
            let selected: (categories: [Category], minSeverity: Severity)?
            switch output {
            case .flag(let categories, _, let minSeverity): selected = (categories, minSeverity)
            case .bucketedCount(let categories, _, _, let minSeverity): selected = (categories, minSeverity)
            default: selected = nil
            }
            if let selected, selected.minSeverity != .none, let plain = selected.categories.first(where: { !$0.hasSeverity }) {
                return "output \(name): min_severity applies only to categories that carry a severity, and \(plain.name) carries none (no record of it would ever count)"
            }
        }
        // A purpose listed twice (model documents refuse repeats).
        if let twice = purposes.enumerated().first(where: { i, p in purposes[..<i].contains(p) })?.element {
            return "purpose \(twice.name) is listed twice"
        }
        return nil
    }

    public struct CreditLine: Sendable {
        public let basePoints: Int64
        public let stepPoints: Int64
        public let stepYuan: Int64
        public let capYuan: Int64
        /// Grades whose cap differs (e.g. S up to ¥500,000).
        public let gradeCaps: [Grade: Int64]
        /// Below this grade (worse), the line is zero.
        public let minGrade: Grade
    }

    public struct Eligibility: Sendable {
        public let minGrade: Grade
        /// Categories that make a subject ineligible while an unrevoked record of them exists.
        public let denyCategories: [Category]
        public let line: CreditLine?
    }

    public enum Output: Sendable {
        case maskedName
        case grade
        case scoreBand(width: Int64)
        case model
        case asOfHeight
        case creditLine(CreditLine)
        case eligibility(Eligibility)
        /// True when an unrevoked record of one of the categories exists (within the window, if given).
        case flag(categories: [Category], windowMonths: Int64?, minSeverity: Severity)
        /// Count of unrevoked records in the window, reported as the bucket it falls in.
        case bucketedCount(categories: [Category], windowMonths: Int64, bounds: [Int64], minSeverity: Severity)
        /// Decrypted raw payloads with their metadata: custodian callers only.
        case records(limit: Int)
        case subjectCount
        case gradeDistribution
        /// The subject's query log, newest first, up to `limit` rows; its answer also states
        /// `<name>/not_listed` (`PolicyEngine.queryLog`). `before` names an integer parameter of
        /// the policy: given, only records below that log index are listed, so a caller pages
        /// back through the whole log (`next_before` in `not_listed` gives the next page).
        case queryLog(limit: Int, before: String?)

        /// The name of the field a query log output states beside its own, saying what it left
        /// out. Output names hold no "/", so it is never another output's name.
        public static func notListed(_ name: String) -> String { name + "/not_listed" }

        /// Whether the output reveals raw payload content.
        public var isRaw: Bool { if case .records = self { return true } else { return false } }
        /// Whether computing the output decrypts payloads (a custodian's node only).
        var readsPayloads: Bool {
            switch self {
            case .maskedName, .records: return true
            default: return false
            }
        }

        var allowedScopes: Set<Scope> {
            switch self {
            case .subjectCount, .gradeDistribution: return [.aggregate]
            case .queryLog: return [.subjectQueries]
            case .asOfHeight, .model: return [.subject, .aggregate, .subjectQueries]
            default: return [.subject]
            }
        }

        var needsScore: Bool {
            switch self {
            case .grade, .scoreBand, .model, .creditLine, .eligibility: return true
            default: return false
            }
        }
    }

    public let name: String
    public let version: UInt32
    public let title: String
    public let scope: Scope
    public let callerRoles: Set<Role>
    public let callerMembers: Set<String>
    public let purposes: [QueryPurpose]
    public let consentRequired: Bool
    public let parameters: [Parameter]
    public let outputs: [(name: String, output: Output)]
    /// Aggregates: the fewest subjects an industry × district cell holds to be counted at all (k).
    public let minCellSubjects: Int
    /// Cost bound: records (or subjects, for aggregates) read in one evaluation.
    public let maxRecords: Int
    public let hash: Hash

    public var returnsRaw: Bool { outputs.contains { $0.output.isRaw } }

    /// Parses and checks a policy document against the consortium in `genesis`.
    public init(bytes: [UInt8], genesis: Genesis) throws {
        guard bytes.count <= FieldLimits.governanceDocument else {
            throw PolicyError("policy document is \(bytes.count) bytes, limit \(FieldLimits.governanceDocument)")
        }
        let root: JSONNode
        do { root = try StrictJSONParser.parse(bytes) } catch { throw PolicyError("policy is not strict JSON: \(error)") }
        let doc = try Obj(root, "policy")
        try doc.only(["format", "name", "version", "title", "description", "scope", "callers", "purposes", "consent",
                      "parameters", "outputs", "min_cell_subjects", "max_records"])
        guard try doc.string("format") == Self.format else {
            throw PolicyError("format must be \"\(Self.format)\"")
        }
        name = try doc.string("name")
        guard Genesis.isValidIdentifier(name, max: FieldLimits.governanceName) else {
            throw PolicyError("name \"\(name)\" must be 1-64 characters of a-z 0-9 . - / _")
        }
        let v = try doc.int("version")
        guard v >= 1, v <= Int64(UInt32.max) else { throw PolicyError("version \(v) is outside 1…\(UInt32.max)") }
        version = UInt32(v)
        title = try doc.optionalString("title") ?? name
        _ = try doc.optionalString("description")
        guard let s = Scope(rawValue: try doc.string("scope")) else {
            throw PolicyError("scope must be subject, aggregate or subject_queries")
        }
        scope = s

        let callers = try Obj(try doc.value("callers"), "callers")
        try callers.only(["roles", "members"])
        var roles = Set<Role>()
        for r in try callers.optionalStrings("roles") ?? [] {
            guard let role = Role(rawValue: r) else { throw PolicyError("callers.roles: unknown role \"\(r)\"") }
            roles.insert(role)
        }
        var members = Set<String>()
        for m in try callers.optionalStrings("members") ?? [] {
            guard genesis.member(m) != nil else { throw PolicyError("callers.members: \"\(m)\" is not a member of this consortium") }
            members.insert(m)
        }
        guard !roles.isEmpty || !members.isEmpty else { throw PolicyError("callers names no role and no member: nobody could call it") }
        callerRoles = roles
        callerMembers = members

        var purposes: [QueryPurpose] = []
        for p in try doc.strings("purposes") {
            guard let purpose = QueryPurpose(name: p), purpose != .unspecified else {
                throw PolicyError("purposes: unknown purpose \"\(p)\" (known: \(QueryPurpose.allCases.map(\.name).joined(separator: ", ")))")
            }
            purposes.append(purpose)
        }
        guard !purposes.isEmpty else { throw PolicyError("purposes is empty") }
        self.purposes = purposes
        if let c = try doc.optionalValue("consent") {
            let consent = try Obj(c, "consent")
            try consent.only(["required"])
            consentRequired = try consent.bool("required")
        } else {
            consentRequired = false
        }

        var params: [Parameter] = []
        for (i, node) in (try doc.optionalArray("parameters") ?? []).enumerated() {
            let p = try Obj(node, "parameters[\(i)]")
            try p.only(["name", "type", "required", "max"])
            let pname = try p.string("name")
            guard Genesis.isValidName(pname, max: 32), !params.contains(where: { $0.name == pname }) else {
                throw PolicyError("parameters[\(i)]: name \"\(pname)\" is not a unique identifier of at most 32 characters")
            }
            guard let type = ParameterType(rawValue: try p.string("type")) else {
                throw PolicyError("parameters[\(i)]: type must be model_name, integer, industry or district")
            }
            let max = try p.optionalInt("max")
            var parameter = Parameter(name: pname, type: type, required: try p.optionalBool("required") ?? false, max: max ?? 1_000_000_000_000)
            parameter.maxGiven = max != nil
            params.append(parameter)
        }
        parameters = params

        var outs: [(String, Output)] = []
        let outputNodes = try doc.array("outputs")
        guard !outputNodes.isEmpty, outputNodes.count <= Self.maxOutputs else {
            throw PolicyError("outputs must list 1-\(Self.maxOutputs) fields")
        }
        for (i, node) in outputNodes.enumerated() {
            let o = try Obj(node, "outputs[\(i)]")
            let oname = try o.string("name")
            guard Genesis.isValidName(oname, max: 32), !outs.contains(where: { $0.0 == oname }) else {
                throw PolicyError("outputs[\(i)]: name \"\(oname)\" is not a unique identifier of at most 32 characters")
            }
            let output = try Self.output(o, at: "outputs[\(i)] (\(oname))")
            guard output.allowedScopes.contains(scope) else {
                throw PolicyError("outputs[\(i)] (\(oname)): \"\(try o.string("from"))\" is not available in \(scope == .aggregate ? "an" : "a") \(scope.rawValue) policy")
            }
            if case .queryLog(_, let before?) = output,
               !params.contains(where: { $0.name == before && $0.type == .integer }) {
                throw PolicyError("outputs[\(i)] (\(oname)): before names \"\(before)\", which is not an integer parameter of this policy")
            }
            outs.append((oname, output))
        }
        outputs = outs
        minCellSubjects = Int(try doc.optionalInt("min_cell_subjects") ?? Int64(Self.minimumK))
        maxRecords = Int(try doc.optionalInt("max_records") ?? 2_000)
        guard maxRecords >= 1, maxRecords <= Self.maxRecordsCeiling || scope == .aggregate, maxRecords <= 1_000_000 else {
            throw PolicyError("max_records must be 1-\(Self.maxRecordsCeiling) (aggregates: up to 1,000,000)")
        }
        hash = SHA256.hash(bytes)
        try checkDisclosure(genesis: genesis)
    }

    /// The install-time rules that keep raw data with the custodians and subjects in control.
    func checkDisclosure(genesis: Genesis) throws {
        let nonCustodianRoles = callerRoles.subtracting([.custodian])
        let nonCustodianMembers = callerMembers.filter { !(genesis.member($0)?.has(.custodian) ?? false) }
        if returnsRaw && (!nonCustodianRoles.isEmpty || !nonCustodianMembers.isEmpty) {
            let who = (nonCustodianRoles.map { "role \($0.rawValue)" } + nonCustodianMembers.sorted().map { "member \($0)" }).joined(separator: ", ")
            throw PolicyError("policy would return raw payload fields (output \"records\") to non-custodian callers (\(who)); raw records are for custodians only")
        }
        // A bank may be let in by any role it holds (in the example consortium banks are
        // validators too), not only by the bank role. A member that is also a custodian or a
        // government issuer is a bureau, whatever else it holds.
        let bankCaller = callerRoles.contains(.bank) || callerMembers.contains { genesis.member($0)?.has(.bank) ?? false }
            || genesis.members.contains { $0.has(.bank) && !$0.has(.custodian) && !$0.has(.governmentIssuer) && allows($0) }
        if scope == .subject && bankCaller && !consentRequired {
            throw PolicyError("a subject policy that banks may call must require the subject's consent")
        }
        if consentRequired {
            // Consent is a subject's, so only a policy about one subject can check it; an aggregate
            // or a query-log policy marked so would answer without it and its receipts would not verify.
            guard scope == .subject else {
                throw PolicyError("consent.required applies to subject policies only; a \(scope.rawValue) policy answers about no single subject's consent")
            }
            for p in purposes where p.consentPurpose == nil {
                throw PolicyError("purpose \(p.name) is not one a subject consents to; a consent policy allows loan_application and post_loan_monitoring only")
            }
        }
        // Two bands of different widths together would pin the score down closer than either.
        let bands = outputs.filter { if case .scoreBand = $0.output { true } else { false } }.count
        if bands > 1 {
            throw PolicyError("policy returns \(bands) score bands; two bands of different widths together narrow the score below either width, so at most one is allowed")
        }
        if scope == .aggregate && minCellSubjects < Self.minimumK {
            throw PolicyError("min_cell_subjects is \(minCellSubjects); aggregates must cover at least \(Self.minimumK) subjects")
        }
        if scope == .subjectQueries && bankCaller {
            throw PolicyError("a subject's query log is for the subject's regulators (custodian or government_issuer callers), not banks")
        }
    }

    /// Whether `member` may call this policy.
    public func allows(_ member: Member) -> Bool {
        callerMembers.contains(member.id) || !callerRoles.isDisjoint(with: member.roles)
    }

    // MARK: Output catalogue

    static func output(_ o: Obj, at path: String) throws -> Output {
        let from = try o.string("from")
        func keys(_ extra: [String]) throws { try o.only(["name", "from"] + extra) }
        func categories(_ key: String) throws -> [Category] {
            let names = try o.strings(key)
            guard !names.isEmpty else { throw PolicyError("\(path): \(key) is empty") }
            return try names.map { n in
                guard let c = Category(name: n) else { throw PolicyError("\(path): unknown category \"\(n)\"") }
                return c
            }
        }
        func severity() throws -> Severity {
            guard let s = try o.optionalString("min_severity") else { return .none }
            guard let v = Severity(name: s) else { throw PolicyError("\(path): min_severity must be minor, general or serious") }
            return v
        }
        func months(_ key: String) throws -> Int64 {
            let m = try o.int(key)
            guard m >= 1, m <= 240 else { throw PolicyError("\(path): \(key) must be 1-240") }
            return m
        }
        func limit() throws -> Int {
            let l = try o.optionalInt("limit") ?? 100
            guard l >= 1, l <= 1000 else { throw PolicyError("\(path): limit must be 1-1000") }
            return Int(l)
        }
        switch from {
        case "masked_name": try keys([]); return .maskedName
        case "grade": try keys([]); return .grade
        case "model": try keys([]); return .model
        case "as_of_height": try keys([]); return .asOfHeight
        case "score_band":
            try keys(["width"])
            let w = try o.int("width")
            guard w >= 10, w <= 1000, w % 10 == 0 else {
                throw PolicyError("\(path): width must be a multiple of 10 from 10 to 1000 points (bands on the 10-point grid every threshold keeps to)")
            }
            return .scoreBand(width: w)
        case "credit_line":
            try keys(creditLineKeys)
            return .creditLine(try creditLine(o, at: path))
        case "eligibility":
            try keys(["min_grade", "deny_categories", "credit_line"])
            let line = try o.optionalValue("credit_line").map { node -> CreditLine in
                let rule = try Obj(node, "\(path).credit_line")
                try rule.only(creditLineKeys)
                return try creditLine(rule, at: rule.path)
            }
            return .eligibility(Eligibility(minGrade: try grade(try o.string("min_grade"), at: path),
                                            denyCategories: try categories("deny_categories"), line: line))
        case "flag":
            try keys(["categories", "window_months", "min_severity"])
            let window = try o.optionalInt("window_months")
            if let w = window, w < 1 || w > 240 { throw PolicyError("\(path): window_months must be 1-240") }
            return .flag(categories: try categories("categories"), windowMonths: window, minSeverity: try severity())
        case "bucketed_count":
            try keys(["categories", "window_months", "buckets", "min_severity"])
            let bounds = try o.ints("buckets")
            guard !bounds.isEmpty, bounds.count <= 8, bounds.first! >= 1, zip(bounds, bounds.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw PolicyError("\(path): buckets must be 1-8 increasing lower bounds, the first at least 1")
            }
            return .bucketedCount(categories: try categories("categories"), windowMonths: try months("window_months"),
                                  bounds: bounds, minSeverity: try severity())
        case "records": try keys(["limit"]); return .records(limit: try limit())
        case "subject_count": try keys([]); return .subjectCount
        case "grade_distribution": try keys([]); return .gradeDistribution
        case "query_log": try keys(["limit", "before"]); return .queryLog(limit: try limit(), before: try o.optionalString("before"))
        default:
            throw PolicyError("\(path): unknown output \"\(from)\" (known: masked_name, grade, score_band, model, as_of_height, credit_line, eligibility, flag, bucketed_count, records, subject_count, grade_distribution, query_log)")
        }
    }

    static func grade(_ s: String, at path: String) throws -> Grade {
        guard let g = Grade.allCases.first(where: { $0.name == s }) else { throw PolicyError("\(path): unknown grade \"\(s)\" (S, A+, A, B, C, D)") }
        return g
    }

    static let creditLineKeys = ["base_points", "step_points", "step_yuan", "cap_yuan", "grade_caps", "min_grade"]

    /// A credit-line rule; the caller has checked the object's keys.
    static func creditLine(_ o: Obj, at path: String) throws -> CreditLine {
        let base = try o.int("base_points")
        let step = try o.int("step_points")
        let stepYuan = try o.int("step_yuan")
        let cap = try o.int("cap_yuan")
        // A step finer than the narrowest score band would give the points away through the amount.
        guard step >= 10, step <= 1000, stepYuan >= 0, stepYuan <= 10_000_000, cap >= 0, cap <= 100_000_000 else {
            throw PolicyError("\(path): step_points 10-1,000 (a finer step would disclose the points), step_yuan 0-10,000,000 and cap_yuan 0-100,000,000")
        }
        // Every point threshold of every policy falls on one 10-point grid (score bands start at
        // multiples of their width, itself a multiple of 10), so no combination of outputs, from
        // one policy or several, tells the points closer than 10.
        guard base % 10 == 0, step % 10 == 0, base >= -100_000, base <= 100_000 else {
            throw PolicyError("\(path): base_points (-100,000 to 100,000) and step_points must be multiples of 10; thresholds off the 10-point grid, combined with other outputs, would disclose the points")
        }
        var caps: [Grade: Int64] = [:]
        if let node = try o.optionalValue("grade_caps") {
            guard case .object(let pairs) = node else { throw PolicyError("\(path): grade_caps must be an object") }
            for (k, v) in pairs {
                guard case .integer(let amount) = v, amount >= 0, amount <= 100_000_000 else {
                    throw PolicyError("\(path): grade_caps.\(k) must be an amount 0-100,000,000")
                }
                caps[try grade(k, at: path)] = amount
            }
        }
        return CreditLine(basePoints: base, stepPoints: step, stepYuan: stepYuan, capYuan: cap,
                          gradeCaps: caps, minGrade: try grade(try o.optionalString("min_grade") ?? "D", at: path))
    }
}

public struct PolicyError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A JSON object read with strict rules: unknown keys and wrong types are errors naming their path.
struct Obj {
    let pairs: [(key: String, value: JSONNode)]
    let path: String

    init(_ node: JSONNode, _ path: String) throws {
        guard case .object(let pairs) = node else { throw PolicyError("\(path) must be an object, found \(node.typeName)") }
        self.pairs = pairs
        self.path = path
    }

    func only(_ keys: [String]) throws {
        for p in pairs where !keys.contains(p.key) { throw PolicyError("\(path): unknown key \"\(p.key)\"") }
    }
    func optionalValue(_ key: String) throws -> JSONNode? { pairs.first { $0.key == key }?.value }
    func value(_ key: String) throws -> JSONNode {
        guard let v = try optionalValue(key) else { throw PolicyError("\(path): \"\(key)\" is missing") }
        return v
    }
    func string(_ key: String) throws -> String {
        guard case .string(let s) = try value(key) else { throw PolicyError("\(path).\(key) must be a string") }
        return s
    }
    func optionalString(_ key: String) throws -> String? { try optionalValue(key) == nil ? nil : try string(key) }
    func int(_ key: String) throws -> Int64 {
        guard case .integer(let i) = try value(key) else { throw PolicyError("\(path).\(key) must be an integer") }
        return i
    }
    func optionalInt(_ key: String) throws -> Int64? { try optionalValue(key) == nil ? nil : try int(key) }
    func bool(_ key: String) throws -> Bool {
        guard case .bool(let b) = try value(key) else { throw PolicyError("\(path).\(key) must be true or false") }
        return b
    }
    func optionalBool(_ key: String) throws -> Bool? { try optionalValue(key) == nil ? nil : try bool(key) }
    func array(_ key: String) throws -> [JSONNode] {
        guard case .array(let a) = try value(key) else { throw PolicyError("\(path).\(key) must be an array") }
        return a
    }
    func optionalArray(_ key: String) throws -> [JSONNode]? { try optionalValue(key) == nil ? nil : try array(key) }
    func strings(_ key: String) throws -> [String] {
        try array(key).map { n in
            guard case .string(let s) = n else { throw PolicyError("\(path).\(key) must hold strings") }
            return s
        }
    }
    func optionalStrings(_ key: String) throws -> [String]? { try optionalValue(key) == nil ? nil : try strings(key) }
    func ints(_ key: String) throws -> [Int64] {
        try array(key).map { n in
            guard case .integer(let i) = n else { throw PolicyError("\(path).\(key) must hold integers") }
            return i
        }
    }
}

/// Parsed policy documents by genesis and document hash, so that checking an answered audit
/// record (at admission, in the proposer's block, in each block check) does not parse its
/// policy again each time. Bounded like `ModelCache`.
final class PolicyDocumentCache: @unchecked Sendable {
    private struct Key: Hashable { let genesis: HashKey; let document: HashKey }
    private let lock = NSLock()
    private var documents: [Key: PolicyDocument] = [:]
    private let capacity = 64

    /// `hash`: the document's SHA-256 when the caller holds it already (a policy is named by it).
    func document(_ bytes: [UInt8], hash: Hash? = nil, genesis: Genesis) throws -> PolicyDocument {
        let key = Key(genesis: HashKey(genesis.hash), document: HashKey(hash ?? SHA256.hash(bytes)))
        if let d = lock.withLock({ documents[key] }) { return d }
        let d = try PolicyDocument(bytes: bytes, genesis: genesis)
        lock.withLock {
            if documents.count >= capacity { documents.removeAll() }
            documents[key] = d
        }
        return d
    }
}

/// The policy engine as transaction validation uses it.
public struct PolicyRules: LedgerCore.PolicyRules {
    private let cache = PolicyDocumentCache()
    public init() {}
    public func policyIdentity(_ document: [UInt8], genesis: Genesis) throws -> (name: String, version: UInt32) {
        do {
            let p = try PolicyDocument(bytes: document, genesis: genesis)
            return (p.name, p.version)
        } catch let e as PolicyError {
            throw LedgerError(.invalidValue, "policy rejected: \(e.message)")
        }
    }

    public func installProblem(_ document: [UInt8], genesis: Genesis) -> String? {
        (try? PolicyDocument(bytes: document, genesis: genesis))?.installProblem
    }

    public func checkAnswered(_ record: QueryRecordBody, answeredBy: String, document: [UInt8], genesis: Genesis) throws {
        let policy = try parse(document, genesis, hash: record.policy)
        // Only a node with a custodian key can read payloads: an answer from any other node was
        // made up (an honest one refuses `not_custodian_node`), masked name and all (found in
        // review, 2026-12-06: a bank's own validator could answer its own credit-grade requests).
        if policy.outputs.contains(where: { $0.output.readsPayloads }), genesis.member(answeredBy)?.has(.custodian) != true {
            throw LedgerError(.notAuthorized, "\(policy.name) reads payloads, which only a custodian's node can decrypt; \(answeredBy) is not a custodian, yet its audit record says it answered")
        }
        guard let requester = genesis.member(record.requester) else {
            throw LedgerError(.notAuthorized, "the answer's requester \(record.requester) is not a member; only members' signed requests are answered")
        }
        guard policy.allows(requester) else {
            throw LedgerError(.notAuthorized, "\(record.requester) may not call \(policy.name), yet the audit record says it was answered")
        }
        guard policy.purposes.contains(record.purpose) else {
            throw LedgerError(.invalidValue, "\(policy.name) answers for \(policy.purposes.map(\.name).joined(separator: ", ")), not \(record.purpose.name), yet the audit record says it was answered")
        }
        if policy.scope != .aggregate, record.subject == nil {
            throw LedgerError(.invalidValue, "\(policy.name) answers about one subject, but the answered audit record names none")
        }
        if policy.consentRequired, record.consent == Hashes.zero {
            throw LedgerError(.invalidValue, "\(policy.name) requires the subject's consent, but the answered audit record names none")
        }
    }

    public func checkResult(_ document: [UInt8], genesis: Genesis, record: QueryRecordBody, parameters: [(name: String, value: String)],
                            result: String, score: ScoreUpdateBody?) throws {
        try checkScoreOutputs(document, genesis: genesis, result: result, score: score, parameters: parameters)
        let policy = try parse(document, genesis)
        // What the engine puts around the fields (PolicyEngine.evaluate), from the audit record:
        // a result about another subject, or naming another consent or height than the record
        // does, is not this answer (found in review, 2026-12-06).
        guard let object = try JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any],
              let fields = object["fields"] as? [String: Any] else {
            throw LedgerError(.invalidValue, "the result is not a \(policy.name) answer (no fields)")
        }
        var expected: [String: CanonicalJSON.Value] = [
            "policy": .string(policy.name), "version": .int(Int64(policy.version)),
            "as_of_height": .int(Int64(record.asOfHeight)), "purpose": .string(record.purpose.name),
        ]
        if policy.scope != .aggregate, let subject = record.subject { expected["subject"] = .string(subject.code) }
        if record.consent != Hashes.zero { expected["consent"] = .string(record.consent.hexString) }
        let stated = Set(object.keys).subtracting(["fields"])
        guard stated == Set(expected.keys) else {
            throw LedgerError(.invalidValue, "the result states \(stated.sorted().joined(separator: ", ")); a \(policy.name) answer to this audit record states \(expected.keys.sorted().joined(separator: ", "))")
        }
        for (key, value) in expected where object[key].flatMap(CanonicalJSON.value(from:)) != value {
            throw LedgerError(.invalidValue, "the result's \(key) is not the audit record's (or the policy's)")
        }
        // A subject policy states every output; the others state none it does not declare.
        var declared = Set(policy.outputs.map { $0.name })
        for case (let name, .queryLog) in policy.outputs { declared.insert(PolicyDocument.Output.notListed(name)) }
        let given = Set(fields.keys)
        guard policy.scope == .subject ? given == declared : given.isSubset(of: declared) else {
            throw LedgerError(.invalidValue, "the result's fields (\(given.sorted().joined(separator: ", "))) are not \(policy.name)'s outputs (\(declared.sorted().joined(separator: ", ")))")
        }
    }

    public func checkScoreOutputs(_ document: [UInt8], genesis: Genesis, result: String, score: ScoreUpdateBody?) throws {
        try checkScoreOutputs(document, genesis: genesis, result: result, score: score, parameters: [])
    }

    public func checkRecordFacts(_ document: [UInt8], genesis: Genesis, result: String, categories: [Category], complete: Bool) throws {
        let policy = try parse(document, genesis)
        let fields = (try? JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any])?["fields"] as? [String: Any] ?? [:]
        var anyCategory = false
        var allowed = Set<Category>()
        var owed: [(what: String, categories: Set<Category>)] = []   // true flags and listings
        for (name, output) in policy.outputs {
            switch output {
            case .records:
                anyCategory = true
            case .flag(let flagged, _, _) where fields[name] as? Bool == true:
                allowed.formUnion(flagged)
                owed.append(("\(name) is true", Set(flagged)))
            case .eligibility(let rule):
                let reasons = (fields[name] as? [String: Any])?["reason_codes"] as? [String] ?? []
                for c in rule.denyCategories where reasons.contains("listed_\(c.name)") {
                    allowed.insert(c)
                    owed.append(("\(name) gives listed_\(c.name)", [c]))
                }
            default:
                break
            }
        }
        if !anyCategory, let stray = categories.first(where: { !allowed.contains($0) }) {
            throw LedgerError(.invalidValue, "a record fact of category \(stray.name) is not one the answer used: \(policy.name)'s answer states no flag or listing of that category")
        }
        guard complete else { return }
        for o in owed where !categories.contains(where: o.categories.contains) {
            throw LedgerError(.invalidValue, "\(o.what), but the receipt proves no record behind it")
        }
    }

    /// As `checkScoreOutputs`, with the request's parameters: an eligibility decision's
    /// `amount_above_line` follows from the requested `amount_yuan`.
    public func checkScoreOutputs(_ document: [UInt8], genesis: Genesis, result: String, score: ScoreUpdateBody?,
                                  parameters: [(name: String, value: String)]) throws {
        let policy = try parse(document, genesis)
        // The engine writes every result in canonical form (sorted keys, no spaces, integers
        // only). Any other text is not its answer, and could read differently to another parser:
        // a repeated key, or a credit line of 5000.9 that reads here as 5000.
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(result.utf8)),
              let canonical = CanonicalJSON.value(from: parsed),
              Array(CanonicalJSON.render(canonical).utf8) == Array(result.utf8) else {   // bytes, not Unicode equivalence
            throw LedgerError(.invalidValue, "the result is not in the canonical form the policy engine writes (sorted keys, each once, no spaces, integers only)")
        }
        // Only a subject policy answers from a score update (an aggregate's `model` is a name).
        let scored = policy.outputs.filter { $0.output.needsScore }
        guard policy.scope == .subject, !scored.isEmpty else {
            // Nor is a score update proven beside an answer that states nothing from one: it
            // verified, listed among the facts proven (found by black-box testing, 2026-12-07).
            if score != nil {
                throw LedgerError(.invalidValue, "\(policy.name) states nothing from a score update, yet the receipt holds one: it is not one the answer used")
            }
            return
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.utf8)) as? [String: Any],
              let fields = object["fields"] as? [String: Any] else {
            throw LedgerError(.invalidValue, "the result is not a \(policy.name) answer (no fields)")
        }
        guard let score else {
            // Only a custodian's review answers without a score, and then states none (null);
            // any other policy refuses `no_score`.
            guard policy.returnsRaw else {
                throw LedgerError(.invalidValue, "\(policy.name) answers from a score update, and the receipt holds none (without one it refuses no_score)")
            }
            for (name, _) in scored where !(fields[name] is NSNull) {
                throw LedgerError(.invalidValue, "the answer states \(name), but the receipt holds no score update it comes from")
            }
            return
        }
        let from = "score update (grade \(score.grade.name), model \(score.modelHash.hexString.prefix(16))…)"
        // Grades, bands and credit lines read a scorecard's points. A model in genesis is at hand:
        // the update's must be a scorecard for the subject's kind, not the risk model, whose points
        // are a probability of default. (One installed by governance is not among the facts, and
        // which update was the freshest at the height is the answering node's word: docs/PRIVACY.md §7.)
        if let installed = genesis.model(hash: score.modelHash) {
            guard let model = try? ScoringModel(document: installed.document), model.kind == .scorecard,
                  let kind = score.subject.subjectKind, model.applies(to: kind) else {
                throw LedgerError(.invalidValue, "the receipt's \(from) is under \(installed.name), which is not a scorecard for the subject's kind; grades, bands and credit lines come from one")
            }
        }
        for (name, output) in scored {
            let stated = fields[name]
            if let expected = PolicyEngine.scoreOutput(output, score) {
                guard stated.flatMap(CanonicalJSON.value(from:)) == expected else { throw LedgerError(.invalidValue, "the answer's \(name) is not what the receipt's \(from) gives") }
            } else if case .model = output {
                guard let m = stated as? [String: Any], m["sha256"] as? String == score.modelHash.hexString else {
                    throw LedgerError(.invalidValue, "the answer's \(name) is not the model of the receipt's \(from)")
                }
                // A model in genesis has a known name and version; one installed by governance is
                // not among the facts (its hash is still bound).
                if let installed = genesis.model(hash: score.modelHash),
                   m["name"] as? String != installed.name || (m["version"] as? NSNumber)?.int64Value != Int64(installed.version) || m.count != 3 {
                    throw LedgerError(.invalidValue, "the answer's \(name) does not name the model of the receipt's \(from) (\(installed.name) version \(installed.version))")
                }
            } else if case .eligibility(let rule) = output {
                // The parts that follow from the score alone: whether the grade is below the
                // minimum, and the credit line (the score's, unless a grade or listing reason zeroes it).
                guard let decision = stated as? [String: Any], let reasons = decision["reason_codes"] as? [String],
                      let eligible = decision["eligible"].flatMap(CanonicalJSON.value(from:)) else {
                    throw LedgerError(.invalidValue, "the answer's \(name) is not an eligibility decision")
                }
                // The reasons in the engine's order: the grade's, then listings (which records the
                // receipt proves), then the amount's. Found in review (2026-12-06): the decision
                // was checked only in part, so "eligible" could stand beside a reason.
                let gradeCode = PolicyEngine.gradeBelowCode(rule.minGrade)
                let gradeBelow = score.grade > rule.minGrade
                guard reasons.contains(gradeCode) == gradeBelow, reasons.first == gradeCode || !gradeBelow,
                      !reasons.contains(where: { $0.hasPrefix("grade_below_") && $0 != gradeCode }) else {
                    throw LedgerError(.invalidValue, "the answer's \(name) does not follow from the grade of the receipt's \(from)")
                }
                let listingCodes = rule.denyCategories.map { "listed_\($0.name)" }
                let listed = reasons.filter { $0.hasPrefix("listed_") }
                let amountAbove = reasons.contains("amount_above_line")
                guard reasons.count == (gradeBelow ? 1 : 0) + listed.count + (amountAbove ? 1 : 0), !amountAbove || reasons.last == "amount_above_line",
                      listed == listingCodes.filter(listed.contains), Set(listed).count == listed.count else {
                    throw LedgerError(.invalidValue, "the answer's \(name) gives reasons its rule cannot: \(reasons.joined(separator: ", "))")
                }
                guard eligible == .bool(reasons.isEmpty) else {
                    throw LedgerError(.invalidValue, "the answer's \(name) says eligible \(reasons.isEmpty ? "false without" : "true with") a reason")
                }
                if let line = rule.line {
                    let zeroed = gradeBelow || !listed.isEmpty
                    let expected = zeroed ? 0 : PolicyEngine.creditLine(line, points: Int64(score.points), grade: score.grade)
                    guard decision["credit_line_yuan"].flatMap(CanonicalJSON.value(from:)) == .int(expected) else {
                        throw LedgerError(.invalidValue, "the answer's \(name) credit line is not what the receipt's \(from) gives")
                    }
                    let requested = parameters.first { $0.name == "amount_yuan" }.flatMap { Int64($0.value) }
                    guard amountAbove == (!zeroed && requested.map { $0 > expected } == true) else {
                        throw LedgerError(.invalidValue, "the answer's \(name) \(amountAbove ? "says" : "does not say") the requested amount is above the line")
                    }
                } else if amountAbove || decision["credit_line_yuan"] != nil {
                    throw LedgerError(.invalidValue, "the answer's \(name) states a credit line its rule does not give")
                }
            }
        }
    }

    private func parse(_ document: [UInt8], _ genesis: Genesis, hash: Hash? = nil) throws -> PolicyDocument {
        do { return try cache.document(document, hash: hash, genesis: genesis) } catch let e as PolicyError {
            throw LedgerError(.invalidValue, "policy rejected: \(e.message)")
        }
    }
}

extension AnswerReceipt {
    /// Checks the receipt against `genesis`, reading policies with the policy engine.
    public func verify(genesis: Genesis) throws -> Verified { try verify(genesis: genesis, policyRules: PolicyRules()) }
}

extension TransactionValidator {
    /// The validator every node and verifier uses: score updates and model installs checked by
    /// the scoring engine, policy installs by the policy engine.
    public static func standard(genesis: Genesis, cache: ModelCache = ModelCache()) -> TransactionValidator {
        TransactionValidator(genesis: genesis, scoreRules: withScoring(genesis: genesis, cache: cache).scoreRules,
                             policyRules: PolicyRules())
    }
}

public enum PolicyFiles {
    /// Checks policy documents against the members of `genesis` (a genesis rendered without
    /// them) and returns them ready to be listed in the final genesis.
    public static func forGenesis(_ documents: [(source: String, bytes: [UInt8])], members genesis: Genesis) throws -> [InstalledPolicy] {
        try documents.map { d in
            do {
                let p = try PolicyDocument(bytes: d.bytes, genesis: genesis)
                // A new genesis meets the rules a new install does (found in review).
                if let problem = p.installProblem { throw PolicyError(problem) }
                return InstalledPolicy(name: p.name, version: p.version, document: d.bytes, logIndex: nil)
            } catch {
                throw LedgerError(.invalidGenesis, "policy \(d.source): \(error)")
            }
        }
    }

    /// Every *.json file in a directory, in file-name order.
    public static func read(directory: String) throws -> [(source: String, bytes: [UInt8])] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw LedgerError(.notFound, "cannot list policy directory \(directory)")
        }
        return try names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(name)") else {
                throw LedgerError(.notFound, "cannot read \(directory)/\(name)")
            }
            return ("\(directory)/\(name)", Array(data))
        }
    }
}

extension CanonicalJSON {
    /// The value `JSONSerialization` read, or nil where the engine never writes such a value:
    /// a number with a fraction or an exponent (the engine writes integers only).
    public static func value(from any: Any) -> Value? {
        switch any {
        case is NSNull: return .null
        case let n as NSNumber:
            switch String(cString: n.objCType) {
            case "c", "B": return .bool(n.boolValue)   // JSON true and false
            case "d", "f": return nil
            default: return .int(n.int64Value)
            }
        case let s as String: return .string(s)
        case let a as [Any]:
            var out: [Value] = []
            for e in a { guard let v = value(from: e) else { return nil }; out.append(v) }
            return .array(out)
        case let o as [String: Any]:
            var out: Object = [:]
            for (k, e) in o { guard let v = value(from: e) else { return nil }; out[k] = v }
            return .object(out)
        default: return nil
        }
    }
}
