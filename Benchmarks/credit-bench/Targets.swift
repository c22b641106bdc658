import ArgumentParser
import Foundation

/// The targets of docs/BENCHMARKS.md that a run is held to. Each figure with a target gets a
/// `target:` line saying whether it was met; a run that missed one exits with status 1 once it
/// has printed everything, so a script or a CI job can tell without reading figures. A run made
/// at other settings than a target's (a smaller store, a lower rate) says why the target does not
/// apply to it, and cannot fail it.
final class Targets {
    private(set) var missed: [String] = []

    /// `measured` must be at most `limit` (or below it, with `strictly`).
    func atMost(_ what: String, _ measured: Double, _ limit: Double, unit: String, strictly: Bool = false, unlessBecause notApplicable: String? = nil) {
        let met = strictly ? measured < limit : measured <= limit
        record(what, "\(Self.format(measured)) \(unit) against \(strictly ? "<" : "≤") \(Self.format(limit)) \(unit)", met: met, notApplicable)
    }

    /// `measured` must be at least `limit`.
    func atLeast(_ what: String, _ measured: Double, _ limit: Double, unit: String, unlessBecause notApplicable: String? = nil) {
        record(what, "\(Self.format(measured)) \(unit) against ≥ \(Self.format(limit)) \(unit)", met: measured >= limit, notApplicable)
    }

    /// A target whose condition is not a single figure (all queries answered, say).
    func holds(_ what: String, _ met: Bool, _ detail: String, unlessBecause notApplicable: String? = nil) {
        record(what, detail, met: met, notApplicable)
    }

    private func record(_ what: String, _ detail: String, met: Bool, _ notApplicable: String?) {
        if let why = notApplicable {
            print("target: \(what): \(detail); does not apply to this run (\(why))")
        } else if met {
            print("target: \(what): \(detail): met")
        } else {
            print("target: \(what): \(detail): MISSED")
            missed.append(what)
        }
    }

    /// Exits with status 1 when a target was missed.
    func finish() throws {
        guard !missed.isEmpty else { return }
        print("targets missed: \(missed.joined(separator: "; "))")
        throw ExitCode(1)
    }

    /// 4799.3 → "4,799"; 4.213 → "4.21".
    static func format(_ v: Double) -> String {
        guard abs(v) >= 100 else { return v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v) }
        var digits = String(Int(abs(v).rounded()))
        var grouped = ""
        while digits.count > 3 {
            grouped = "," + digits.suffix(3) + grouped
            digits.removeLast(3)
        }
        return (v < 0 ? "-" : "") + digits + grouped
    }
}
