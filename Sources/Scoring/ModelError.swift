/// What is wrong with a scoring model document. `code` is stable (tests compare codes);
/// `path` names the place in the document, such as `indicators[3].bands[1].points`.
public struct ModelError: Error, Hashable, CustomStringConvertible, Sendable {
    public enum Code: String, Hashable, Sendable {
        case tooLarge               // document over the byte limit
        case malformedJSON          // not strict JSON (syntax, duplicate key, depth, control character …)
        case notInteger             // a number with a fraction or an exponent: models are fixed-point
        case unknownKey             // a key the format does not define
        case missingKey             // a required key is absent
        case wrongType              // a value of the wrong JSON type
        case valueOutOfRange        // a number or string outside its allowed range
        case unsupportedFormat      // `format` is not creditledger-scorecard/v1
        case unknownKind            // `kind` is not scorecard or risk_warning
        case unknownMeasure         // an indicator measure the evaluator does not define
        case unknownCategory        // a fact category the ledger does not have
        case unknownDimension       // an indicator names a dimension the model does not declare
        case duplicateID            // two dimensions, indicators, sets, vetoes or features share an id
        case missingGrade           // the grade list does not name S, A+, A, B, C, D once each, best first
        case overlappingThresholds  // grade or level thresholds that do not strictly decrease / increase
        case coefficientOutOfRange  // a risk coefficient or intercept beyond the fixed-point range
        case tooMany                // a list over its limit
    }

    public let code: Code
    public let path: String
    public let reason: String

    public init(_ code: Code, _ path: String, _ reason: String) {
        self.code = code
        self.path = path
        self.reason = reason
    }

    public var description: String { path.isEmpty ? "\(code.rawValue): \(reason)" : "\(code.rawValue) at \(path): \(reason)" }
}
