/// Industry codes of GB/T 4754-2017 (国民经济行业分类): a section letter A–T (门类), optionally
/// followed by the section's division (2 digits, 大类), a group in it (3, 中类) or a class (4, 小类),
/// as in "C", "C13", "C131", "C1311".
///
/// The check holds the standard's sections and the divisions each spans. Groups and classes are
/// checked for their division only: the standard's 1,380 classes are not held here.
public enum IndustryCode {
    /// Each section's letter and its divisions, from the standard.
    static let sections: [UInt8: ClosedRange<Int>] = [
        UInt8(ascii: "A"): 1...5, UInt8(ascii: "B"): 6...12, UInt8(ascii: "C"): 13...43, UInt8(ascii: "D"): 44...46,
        UInt8(ascii: "E"): 47...50, UInt8(ascii: "F"): 51...52, UInt8(ascii: "G"): 53...60, UInt8(ascii: "H"): 61...62,
        UInt8(ascii: "I"): 63...65, UInt8(ascii: "J"): 66...69, UInt8(ascii: "K"): 70...70, UInt8(ascii: "L"): 71...72,
        UInt8(ascii: "M"): 73...75, UInt8(ascii: "N"): 76...79, UInt8(ascii: "O"): 80...82, UInt8(ascii: "P"): 83...83,
        UInt8(ascii: "Q"): 84...85, UInt8(ascii: "R"): 86...90, UInt8(ascii: "S"): 91...96, UInt8(ascii: "T"): 97...97,
    ]

    /// What is wrong with `code` as a GB/T 4754-2017 code, or nil when it is one.
    public static func problem(_ code: String) -> String? {
        let bytes = Array(code.utf8)
        guard let letter = bytes.first else { return "it is empty" }
        guard let divisions = sections[letter] else {
            if letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "t") {
                return "the section letter is written in capitals (\"\(Character(UnicodeScalar(letter - 32)))\", not \"\(Character(UnicodeScalar(letter)))\")"
            }
            return "it must begin with a section letter A-T (\"C\" manufacturing, \"F\" wholesale and retail, …)"
        }
        let digits = bytes.dropFirst()
        guard digits.isEmpty || (2...4).contains(digits.count) else {
            return "after the section letter come 2 digits (division), 3 (group) or 4 (class), or nothing"
        }
        guard digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return "after the section letter come digits only" }
        if digits.isEmpty { return nil }
        let division = Int(digits[digits.startIndex] - 0x30) * 10 + Int(digits[digits.startIndex + 1] - 0x30)
        guard divisions.contains(division) else {
            let span = divisions.count == 1 ? String(format2(divisions.lowerBound))
                : "\(format2(divisions.lowerBound))-\(format2(divisions.upperBound))"
            return "section \(Character(UnicodeScalar(letter))) has divisions \(span), not \(format2(division))"
        }
        return nil
    }

    /// Throws `invalidValue`, naming the problem, when `code` is not a GB/T 4754-2017 code.
    public static func check(_ code: String) throws {
        if let p = problem(code) { throw LedgerError(.invalidValue, "industry \"\(code.clipped())\" is not a GB/T 4754-2017 code: \(p)") }
    }

    private static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
