import LedgerCore

/// The outcome of a risk-warning model (docs/SCORING.md §5).
public struct RiskOutcome: Sendable, Equatable {
    public static let logitCode = "logit_milli"
    public static let levelCode = "level"
    /// z in thousandths: intercept + Σ coefficient × capped value.
    public let logitMilli: Int64
    /// The probability from the logistic table, in basis points (0-10000).
    public let probabilityBasisPoints: Int64
    /// The band of the level: [lower, upper) basis points.
    public let bandBasisPoints: Range<Int64>
    public let level: RiskLevel
}

/// One indicator or feature as evaluated: for explanations, worked examples and tests.
public struct IndicatorOutcome: Sendable, Equatable {
    public let id: String
    /// Dimension code (scorecards) or "risk" (features).
    public let dimension: String
    /// Facts the selector matched.
    public let matched: Int
    /// The measured value; nil when nothing carried a value.
    public let value: Int64?
    /// Points (scorecards) or contribution to the logit in thousandths (features).
    public let points: Int64
}

/// A subject's score under one model.
public struct ScoreResult: Sendable, Equatable {
    public let subject: USCC
    public let modelHash: Hash
    /// In model order: a scorecard's dimensions, or a risk model's feature contributions,
    /// `logit_milli` and `level` (docs/SCORING.md §5.3).
    public let dimensions: [ScoreUpdateBody.Dimension]
    /// A scorecard's total; a risk model's probability in basis points.
    public let points: Int32
    /// The grade the points give, before vetoes.
    public let pointsGrade: Grade
    public let grade: Grade
    /// Ids of the vetoes whose facts are present, in model order.
    public let vetoes: [String]
    public let industrySet: String?
    public let risk: RiskOutcome?
    /// Facts considered (effective, not dated after the as-of date).
    public let factCount: Int
    /// Per indicator or feature; empty unless asked for.
    public let indicators: [IndicatorOutcome]
}

/// Evaluates compiled models. Pure: the same facts and model give the same result everywhere.
public enum Evaluator {
    /// Scores `facts` under `model`; `explain` also returns every indicator's outcome.
    public static func evaluate(_ model: ScoringModel, _ facts: SubjectFacts, explain: Bool = false) throws -> ScoreResult {
        guard let kind = facts.subject.subjectKind, model.applies(to: kind) else {
            throw LedgerError(.invalidValue,
                "model \(model.name) v\(model.version) scores \(model.subjectKinds.map(\.name).joined(separator: " and ")); \(facts.subject) is not one")
        }
        switch model.kind {
        case .scorecard: return scorecard(model, facts, explain: explain)
        case .riskWarning: return risk(model, facts, explain: explain)
        }
    }

    /// What a selector and measure give over the facts: the number matched and the value.
    @inline(__always)
    static func measure(_ s: ScoringModel.Selector, _ measure: ScoringModel.Measure, _ attribute: String?,
                        _ facts: SubjectFacts) -> (matched: Int, value: Int64?) {
        var matched = 0
        var value: Int64? = nil
        var latestDay = Int64.min
        for f in facts.facts {
            guard s.categories & (1 << UInt32(f.category.rawValue)) != 0 else { continue }
            if s.severities != 0 && s.severities & (1 << f.severity.rawValue) == 0 { continue }
            if f.repaired && !s.includeRepaired { continue }
            if let w = s.withinDays, facts.asOfDay - f.day > w { continue }
            var ok = true
            for c in s.conditions {
                guard let v = f.attribute(c.attribute), v >= c.min, v <= c.max else { ok = false; break }
            }
            guard ok else { continue }
            matched += 1
            switch measure {
            case .count:
                break
            case .sum, .max, .min, .latest:
                guard let v = f.attribute(attribute!) else { continue }
                switch measure {
                case .sum: value = (value ?? 0) + v
                case .max: value = Swift.max(value ?? v, v)
                case .min: value = Swift.min(value ?? v, v)
                default:
                    if f.day >= latestDay { latestDay = f.day; value = v }
                }
            case .daysSinceEarliest:
                let d = facts.asOfDay - f.day
                value = Swift.max(value ?? d, d)
            case .daysSinceLatest:
                let d = facts.asOfDay - f.day
                value = Swift.min(value ?? d, d)
            }
        }
        if measure == .count { value = Int64(matched) }
        if let v = value { value = Swift.min(ScoringModel.Limits.value, Swift.max(-ScoringModel.Limits.value, v)) }
        return (matched, value)
    }

    static func points(_ rule: ScoringModel.PointsRule, _ value: Int64) -> Int64 {
        switch rule {
        case .bands(let bands):
            var p: Int64 = 0
            for b in bands where value >= b.from { p = b.points }
            return p
        case .linear(let per, let divisor, let lo, let hi):
            return Swift.min(hi, Swift.max(lo, (value / divisor) * per))
        }
    }

    static func scorecard(_ model: ScoringModel, _ facts: SubjectFacts, explain: Bool) -> ScoreResult {
        var sums = [Int64](repeating: 0, count: model.dimensions.count)
        var outcomes: [IndicatorOutcome] = []
        let set = model.industrySet(for: facts.industry)
        func run(_ list: [ScoringModel.Indicator]) {
            for ind in list {
                let (matched, value) = measure(ind.selector, ind.measure, ind.attribute, facts)
                let p = value.map { points(ind.rule, $0) } ?? ind.ifMissing
                sums[ind.dimension] += p
                if explain {
                    outcomes.append(IndicatorOutcome(id: ind.id, dimension: model.dimensions[ind.dimension].code,
                                                     matched: matched, value: value, points: p))
                }
            }
        }
        run(model.indicators)
        if let set { run(set.indicators) }
        var total: Int64 = 0
        var dimensions: [ScoreUpdateBody.Dimension] = []
        dimensions.reserveCapacity(model.dimensions.count)
        for (i, d) in model.dimensions.enumerated() {
            let p = Swift.min(d.max, Swift.max(d.min, d.base + sums[i]))
            total += p
            dimensions.append(.init(code: d.code, points: Int32(p)))
        }
        let pointsGrade = model.grade(forPoints: total)
        var grade = pointsGrade
        var vetoes: [String] = []
        for v in model.vetoes where measure(v.selector, .count, nil, facts).matched > 0 {
            vetoes.append(v.id)
            grade = Swift.max(grade, v.cap)
        }
        return ScoreResult(subject: facts.subject, modelHash: model.hash, dimensions: dimensions, points: Int32(total),
                           pointsGrade: pointsGrade, grade: grade, vetoes: vetoes, industrySet: set?.id, risk: nil,
                           factCount: facts.facts.count, indicators: outcomes)
    }

    static func risk(_ model: ScoringModel, _ facts: SubjectFacts, explain: Bool) -> ScoreResult {
        var z = model.interceptMilli
        var dimensions: [ScoreUpdateBody.Dimension] = []
        var outcomes: [IndicatorOutcome] = []
        for f in model.features {
            let (matched, value) = measure(f.selector, f.measure, f.attribute, facts)
            let x = Swift.min(f.cap, Swift.max(0, value ?? 0))
            let contribution = f.coefficientMilli * x
            z += contribution
            dimensions.append(.init(code: f.id, points: Int32(contribution)))
            if explain { outcomes.append(IndicatorOutcome(id: f.id, dimension: "risk", matched: matched, value: value, points: contribution)) }
        }
        let p = LogisticTable.probabilityBasisPoints(logitMilli: z)
        var lower: Int64 = 0
        var chosen = model.levels[model.levels.count - 1]
        for level in model.levels {
            if let below = level.belowBasisPoints {
                if p < below { chosen = level; break }
                lower = below
            }
        }
        let band = lower..<(chosen.belowBasisPoints ?? 10_001)
        dimensions.append(.init(code: RiskOutcome.logitCode, points: Int32(z)))
        dimensions.append(.init(code: RiskOutcome.levelCode, points: chosen.level.rank))
        return ScoreResult(subject: facts.subject, modelHash: model.hash, dimensions: dimensions, points: Int32(p),
                           pointsGrade: chosen.grade, grade: chosen.grade, vetoes: [], industrySet: nil,
                           risk: RiskOutcome(logitMilli: z, probabilityBasisPoints: p, bandBasisPoints: band, level: chosen.level),
                           factCount: facts.facts.count, indicators: outcomes)
    }
}

/// The logistic function 1/(1+e^(−z)) in integers (docs/SCORING.md §5.2): a fixed table of
/// round(10000/(1+e^(−z/1000))) at z = −8000, −7750, …, 8000 (thousandths), linear
/// interpolation between entries with truncating division, constant beyond the ends.
public enum LogisticTable {
    public static let step: Int64 = 250
    public static let lowest: Int64 = -8000
    public static let basisPoints: [Int64] = [
        3, 4, 6, 7, 9, 12, 15, 19, 25, 32, 41, 52, 67, 86, 110, 141, 180, 230, 293, 373, 474, 601, 759, 953, 1192,
        1480, 1824, 2227, 2689, 3208, 3775, 4378, 5000, 5622, 6225, 6792, 7311, 7773, 8176, 8520, 8808, 9047, 9241,
        9399, 9526, 9627, 9707, 9770, 9820, 9859, 9890, 9914, 9933, 9948, 9959, 9968, 9975, 9981, 9985, 9988, 9991,
        9993, 9994, 9996, 9997,
    ]

    public static func probabilityBasisPoints(logitMilli z: Int64) -> Int64 {
        let highest = lowest + step * Int64(basisPoints.count - 1)
        if z <= lowest { return basisPoints[0] }
        if z >= highest { return basisPoints[basisPoints.count - 1] }
        let i = Int((z - lowest) / step)
        let offset = z - (lowest + Int64(i) * step)
        return basisPoints[i] + (basisPoints[i + 1] - basisPoints[i]) * offset / step
    }
}
