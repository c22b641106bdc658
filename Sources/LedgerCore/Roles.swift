/// What a member may do on the ledger. A member may hold several roles.
public enum Role: String, Sendable, Codable, CaseIterable, Hashable {
    /// Votes on blocks and cosigns checkpoints.
    case validator
    /// Holds an X25519 key that raw payloads are sealed to; may read raw records; approves governance.
    case custodian
    /// A government bureau that issues registration, licence, penalty, tax, court and other records.
    case governmentIssuer = "government_issuer"
    /// A bank: attests loan repayment, records consent, queries.
    case bank
    /// Computes and endorses score updates.
    case scorer
    /// Verifies the chain; never writes credit data.
    case auditor
}

/// The kinds of credit record in ARCHITECTURE.md. Codes are part of the canonical encoding.
public enum Category: UInt8, Sendable, Codable, CaseIterable, Hashable {
    case registration = 1
    case license = 2
    case penalty = 3
    case taxGrade = 4
    case socialInsurance = 5
    case utilitiesPayment = 6
    case courtJudgment = 7
    case dishonestJudgmentDebtor = 8
    case abnormalOperationList = 9
    case seriousViolationList = 10
    case honor = 11
    case annualReport = 12
    case intellectualProperty = 13
    case loanRepayment = 14
    case creditRepair = 15

    public var name: String {
        switch self {
        case .registration: return "registration"
        case .license: return "license"
        case .penalty: return "penalty"
        case .taxGrade: return "tax_grade"
        case .socialInsurance: return "social_insurance"
        case .utilitiesPayment: return "utilities_payment"
        case .courtJudgment: return "court_judgment"
        case .dishonestJudgmentDebtor: return "dishonest_judgment_debtor"
        case .abnormalOperationList: return "abnormal_operation_list"
        case .seriousViolationList: return "serious_violation_list"
        case .honor: return "honor"
        case .annualReport: return "annual_report"
        case .intellectualProperty: return "intellectual_property"
        case .loanRepayment: return "loan_repayment"
        case .creditRepair: return "credit_repair"
        }
    }

    public init?(name: String) {
        guard let c = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = c
    }

    /// The role an issuer needs to attest this category: banks attest loan repayment only,
    /// government bureaus everything else.
    public var issuerRole: Role {
        self == .loanRepayment ? .bank : .governmentIssuer
    }

    /// Whether a severity (1 minor … 3 serious) is meaningful; other categories carry 0.
    public var hasSeverity: Bool {
        switch self {
        case .penalty, .courtJudgment: return true
        default: return false
        }
    }
}

/// Severity of a penalty or judgment.
public enum Severity: UInt8, Sendable, Codable, CaseIterable {
    case none = 0
    case minor = 1
    case general = 2
    case serious = 3

    public var name: String {
        switch self {
        case .none: return "none"
        case .minor: return "minor"
        case .general: return "general"
        case .serious: return "serious"
        }
    }

    public init?(name: String) {
        guard let s = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }
}
