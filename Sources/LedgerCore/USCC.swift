/// The 18-character Unified Social Credit Code (统一社会信用代码) of GB 32100-2015.
///
/// Layout: registration department (1) ‖ organisation category (1) ‖ administrative
/// division (6 digits) ‖ organisation code (9, GB 11714) ‖ check character (1).
/// Characters come from a 31-symbol alphabet without I, O, Z, S and V. The check character
/// makes Σ value(cᵢ)·wᵢ + value(c₁₈) ≡ 0 (mod 31) with wᵢ = 3^(i-1) mod 31.
public struct USCC: Hashable, Sendable, CustomStringConvertible, Comparable {
    public static let alphabet: [Character] = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")
    public static let weights: [Int] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    public static let length = 18
    private static let values: [Character: Int] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, $0) })

    public let code: String

    /// Alphabet value of each ASCII byte, or -1: the byte-level fast path of `init`.
    private static let byteValues: [Int8] = {
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c.asciiValue!)] = Int8(i) }
        return table
    }()

    /// Validates `text` and explains the first problem found.
    public init(_ text: String) throws {
        // Fast path for valid codes (every ledger record carries one); anything else takes the
        // character-by-character path below, which names the problem.
        let valid: Bool? = text.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard bytes.count == Self.length else { return false }
            var sum = 0
            for i in 0..<17 {
                let v = Int(Self.byteValues[Int(bytes[i])])
                guard v >= 0 else { return false }
                if i >= 2 && i <= 7 && v > 9 { return false }
                sum += v * Self.weights[i]
            }
            let check = Int(Self.byteValues[Int(bytes[17])])
            return check >= 0 && check == (31 - sum % 31) % 31
        }
        if valid == true {
            code = text
            return
        }
        // Unicode scalars, not Characters: Swift compares Characters by canonical equivalence, so
        // the Kelvin sign (U+212A) would pass for 'K', and a 20-byte "code" would enter a
        // transaction whose format holds 18 ASCII bytes.
        let scalars = Array(text.unicodeScalars)
        guard scalars.count == Self.length else {
            throw LedgerError(.invalidUSCC, "USCC \(Self.shown(text)) has \(scalars.count) characters; a USCC has 18")
        }
        let chars = scalars.map(Character.init)
        var sum = 0
        for (i, c) in chars.enumerated() {
            guard scalars[i].isASCII, let v = Self.values[c] else {
                throw LedgerError(.invalidUSCC,
                    "USCC \(Self.shown(text)): character \(i + 1) '\(String(c).debugDescription.dropFirst().dropLast())' is not allowed (allowed: digits and uppercase letters except I, O, S, V, Z)")
            }
            if i < 17 { sum += v * Self.weights[i] }
        }
        let expected = Self.checkCharacter(forFirst17: String(chars[0..<17]))!
        guard chars[17] == expected else {
            throw LedgerError(.invalidUSCC,
                "USCC \(Self.shown(text)): check character is '\(chars[17])', expected '\(expected)' (GB 32100-2015, weights 3^i mod 31)")
        }
        guard chars[2...7].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw LedgerError(.invalidUSCC, "USCC \(Self.shown(text)): characters 3-8 must be the 6-digit administrative division code")
        }
        _ = sum
        code = text
    }

    /// A code as given, quoted with Swift's escapes (`\0`, `\u{1B}`), at most 64 characters: an
    /// error echoed a NUL or a terminal escape in it to the terminal raw (found by black-box testing).
    static func shown(_ text: String) -> String { String(text.prefix(64)).debugDescription }

    /// The check character for the first 17 characters, or nil when one is outside the alphabet.
    public static func checkCharacter(forFirst17 prefix: String) -> Character? {
        let chars = Array(prefix)
        guard chars.count == 17 else { return nil }
        var sum = 0
        for (i, c) in chars.enumerated() {
            guard let v = values[c] else { return nil }
            sum += v * weights[i]
        }
        let check = (31 - sum % 31) % 31
        return alphabet[check]
    }

    public var description: String { code }
    /// Registration department code (character 1): '9' is market supervision (工商).
    public var departmentCode: Character { code.first! }
    /// Organisation category (character 2): with department '9', '1' enterprise, '2' individual business.
    public var categoryCode: Character { Array(code)[1] }
    /// The 6-digit administrative division code (characters 3-8).
    public var divisionCode: String { String(Array(code)[2...7]) }

    public static func < (lhs: USCC, rhs: USCC) -> Bool { lhs.code < rhs.code }

    /// The subject kind this code denotes, when it is one the ledger serves.
    public var subjectKind: SubjectKind? {
        // Byte-wise: a valid code is ASCII, and this runs for every record decoded.
        var bytes = code.utf8.makeIterator()
        guard bytes.next() == UInt8(ascii: "9") else { return nil }
        switch bytes.next() {
        case UInt8(ascii: "1"): return .enterprise
        case UInt8(ascii: "2"): return .individualBusiness
        default: return nil
        }
    }
}

/// Builds valid codes for demos and tests from an injected random source.
public struct USCCGenerator {
    /// A few real county-level division codes (GB/T 2260) used for demo data.
    public static let demoDivisions = ["330106", "330108", "330110", "320506", "440305", "510107", "370102", "420111"]
    private static let organisationAlphabet: [Character] = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")

    /// `random(n)` must return a value in 0..<n.
    public static func make(kind: SubjectKind, division: String? = nil, random: (Int) -> Int) -> USCC {
        let div = division ?? demoDivisions[random(demoDivisions.count)]
        // GB 11714 organisation code: 8 characters and a mod-11 check character.
        var org = ""
        var sum = 0
        let w = [3, 7, 9, 10, 5, 8, 4, 2]
        for i in 0..<8 {
            let c = i == 0 ? organisationAlphabet[1 + random(9)] : organisationAlphabet[random(10)]
            org.append(c)
            sum += Int(String(c))! * w[i]
        }
        let c9 = 11 - sum % 11
        org.append(c9 == 10 ? "X" : c9 == 11 ? "0" : Character(String(c9)))
        let prefix = "9" + (kind == .enterprise ? "1" : "2") + div + org
        return try! USCC(prefix + String(USCC.checkCharacter(forFirst17: prefix)!))
    }
}

/// Who a record is about. Only market-registered enterprises and individual businesses.
public enum SubjectKind: UInt8, Sendable, Codable, CaseIterable {
    /// 个体工商户: USCC begins "92".
    case individualBusiness = 1
    /// 企业 (micro, small and medium enterprises): USCC begins "91".
    case enterprise = 2

    public var name: String {
        switch self {
        case .individualBusiness: return "individual_business"
        case .enterprise: return "enterprise"
        }
    }

    public init?(name: String) {
        guard let k = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = k
    }
}
