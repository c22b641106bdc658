import Foundation
import Hummingbird
import LedgerCore
import LedgerStore

/// Prometheus's text exposition format (version 0.0.4): one `# HELP` and `# TYPE` line per
/// metric, then its samples. Names and help texts are this file's own; label values are escaped.
struct PrometheusText {
    private(set) var text = ""

    mutating func metric(_ name: String, type: String, help: String, _ samples: [(suffix: String, labels: [(String, String)], value: String)]) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for s in samples {
            let labels = s.labels.isEmpty ? "" : "{" + s.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
            text += "\(name)\(s.suffix)\(labels) \(s.value)\n"
        }
    }

    mutating func gauge(_ name: String, _ help: String, _ value: Double) {
        metric(name, type: "gauge", help: help, [("", [], Self.number(value))])
    }

    mutating func counter(_ name: String, _ help: String, _ value: Double) {
        metric(name, type: "counter", help: help, [("", [], Self.number(value))])
    }

    /// A histogram's series, each with its labels: cumulative buckets, sum and count.
    mutating func histogram(_ name: String, _ help: String, _ series: [(labels: [(String, String)], DurationHistogram)]) {
        var samples: [(suffix: String, labels: [(String, String)], value: String)] = []
        for (labels, h) in series {
            samples += zip(DurationHistogram.bounds, h.cumulative).map { ("_bucket", labels + [("le", Self.number($0))], "\($1)") }
            samples.append(("_bucket", labels + [("le", "+Inf")], "\(h.count)"))
            samples.append(("_sum", labels, Self.number(h.sumSeconds)))
            samples.append(("_count", labels, "\(h.count)"))
        }
        metric(name, type: "histogram", help: help, samples)
    }

    /// Integers without a fraction, others as Go's `strconv.FormatFloat(v, 'g', -1, 64)` would
    /// read them back.
    static func number(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// A status figure as a number (the status dictionary holds Int, UInt64 and the like).
    static func value(_ any: Any?) -> Double? {
        switch any {
        case let v as Int: Double(v)
        case let v as UInt64: Double(v)
        case let v as Int64: Double(v)
        case let v as UInt32: Double(v)
        case let v as Double: v
        default: nil
        }
    }
}

extension LedgerAPI {
    /// `GET /metrics` on the operator's address: the figures of `GET /v1/status` that a monitor
    /// graphs and alerts on, in Prometheus's text format, and the time each synced block write
    /// took as a histogram (what every commit and every query's audit record waits for).
    func metrics() -> Response {
        let head = store.head
        let status = ledger.status()
        var m = PrometheusText()
        m.metric("creditledger_info", type: "gauge", help: "The node's software version, chain, member and mode (value 1).",
                 [("", [("version", Release.version), ("chain_id", genesis.chainID), ("member", ledger.nodeKeys.memberID),
                        ("mode", status["mode"] as? String ?? "")], "1")])
        m.gauge("creditledger_height", "Height of the newest committed block.", Double(head.height))
        m.gauge("creditledger_log_size", "Transactions in the log (the size of its Merkle tree).", Double(head.logSize))
        m.gauge("creditledger_write_failure", "1 while the node writes no blocks (a failed synced write, which holds until a restart, or a full disk, until space is freed), else 0.",
                ledger.writeFailureReason == nil ? 0 : 1)
        let writes = ledger.blockWrites.histogram
        m.histogram("creditledger_synced_block_write_seconds", "Time each block's synced write to the store took.", [([], writes.times)])
        m.counter("creditledger_synced_block_writes_slow_total", "Synced block writes that took over \(BlockWriteWatch.thresholdMillis) ms.", Double(writes.slow))
        if case .success(let q) = queries {
            m.counter("creditledger_queries_turned_away_total", "Queries turned away unrecorded past a refusal budget.", Double(q.turnedAway))
        }
        if let consensus = status["consensus"] as? [String: any Sendable] {
            if let h = PrometheusText.value(consensus["height"]) { m.gauge("creditledger_consensus_height", "Height being decided.", h) }
            if let r = PrometheusText.value(consensus["round"]) { m.gauge("creditledger_consensus_round", "Round of the height being decided (above 0: rounds failed).", r) }
        }
        if let n = PrometheusText.value(status["mempool"]) { m.gauge("creditledger_mempool_transactions", "Transactions admitted and waiting for a block.", n) }
        if let peers = status["peers"] as? [String] { m.gauge("creditledger_peers_connected", "Peers with an open session.", Double(peers.count)) }
        if let (_, known) = ledger.connectivity, let behind = known {
            m.gauge("creditledger_behind_blocks", "How far the height f+1 validator peers report is above this node's head.", Double(behind))
        }
        if let ms = PrometheusText.value(status["uncommitted_for_ms"]) {
            m.gauge("creditledger_uncommitted_seconds", "How long no block has committed while work is pending (0 when idle or moving).", ms / 1000)
        }
        if let n = PrometheusText.value(status["own_key_equivocations"]) {
            m.counter("creditledger_own_key_equivocations_total", "Conflicting votes or proposals signed with this member's key seen here: another node holds the key.", n)
        }
        if let n = PrometheusText.value(status["missing_envelopes"]) {
            m.gauge("creditledger_missing_envelopes", "Records committed without their envelope and not erased (fetched again from peers).", n)
        }
        m.histogram("creditledger_http_request_duration_seconds",
                    "Time from a request's head to its response's head (a commit wait included), by listener, method, route template and status.",
                    requestTimings.snapshot.map { s, h in
                        ([("listener", s.listener), ("method", s.method), ("route", s.route), ("status", String(s.status))], h)
                    })
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: m.text)))
    }
}
