import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import Policy
import Scoring

struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Ask a node a signed query under a policy; prints the desensitized result and saves the answer receipt with --out.",
        discussion: """
        The answer (or refusal) is recorded on the ledger before the node replies; the receipt proves it
        offline with `credit-verify receipt FILE --genesis genesis.json`. Policies: GET /v1/policies.
        Examples:
          credit-node query --node http://127.0.0.1:8601 --key keys/bank-a.key --policy credit-grade \\
            --subject 91330106MA27XKT2XT --purpose loan_application --out answer.json
          credit-node query --node http://127.0.0.1:8601 --key keys/bank-a.key --policy loan-pre-check \\
            --subject 91330106MA27XKT2XT --purpose loan_application --param amount_yuan=200000
          credit-node query --node http://127.0.0.1:8601 --key keys/bank-a.key --policy industry-statistics \\
            --purpose statistics --param model=individual-business --param industry=F52
        """)
    @Option(help: "API base URL of the answering node (a custodian's node for policies that read payloads).")
    var node: String = "http://127.0.0.1:8480"
    @Option(help: "Secret key file of the requesting member.") var key: String
    @Option(help: "Policy name, name@version, or its SHA-256 in hex.") var policy: String
    @Option(help: "The subject's USCC (omit for aggregate policies).") var subject: String = ""
    @Option(help: "Purpose: loan_application, post_loan_monitoring, supervision, statistics, subject_access.") var purpose: String
    @Option(name: .customLong("param"), help: "A policy parameter name=value (repeatable).") var params: [String] = []
    @Option(help: "Write the answer receipt here (without it the receipt, the proof of the answer, is not kept).") var out: String?
    @Option(help: "The consortium's genesis file: the node must serve the same, and the receipt is verified against it before it is printed or saved.")
    var genesis: String?

    func run() throws {
        do {
            if let out { try checkOutput(out, inputs: [key, genesis]) }
            // A malformed subject or purpose would be refused by the node, and that refusal is on
            // the ledger for good and spends the member's refusal budget: say so here instead.
            guard QueryPurpose(name: purpose) != nil, purpose != QueryPurpose.unspecified.name else {
                throw fail("--purpose \(purpose) is not one of \(QueryPurpose.allCases.dropFirst().map(\.name).joined(separator: ", ")); nothing was sent")
            }
            if !subject.isEmpty {
                do { _ = try USCC(subject) } catch { throw fail("--subject: \(error); nothing was sent") }
            }
            let keys = try MemberSecretKeys.load(from: key)
            let client = LedgerClient(baseURL: node)
            let g = try consortiumGenesis(client, trusted: genesis, signers: [keys])
            let parameters = try params.map { p -> (name: String, value: String) in
                guard let eq = p.firstIndex(of: "="), eq != p.startIndex else { throw fail("--param must be name=value, got \(p); nothing was sent") }
                return (String(p[..<eq]), String(p[p.index(after: eq)...]))
            }
            // Fields too long for a request are named before anything is asked of the node.
            do {
                try QueryRequest(chainID: g.chainID, requester: keys.memberID, keyID: 0, policy: Hashes.zero, subject: subject,
                                 purpose: purpose, parameters: parameters, nonce: 0, issuedAtMillis: 0).checkFields()
            } catch let e as LedgerError { throw fail("\(e.reason); nothing was sent") }
            // The wire takes 255 bytes, the policies 64: a longer value was sent and refused
            // `parameters_too_large` on the record (found by black-box testing).
            if let long = parameters.first(where: { $0.value.utf8.count > PolicyEngine.maxParameterBytes }) {
                throw fail("--param \(long.name.clipped()) is \(long.value.utf8.count) bytes; policies take values of at most \(PolicyEngine.maxParameterBytes); nothing was sent")
            }
            let policyHash = try client.policyHash(policy)
            // A subject policy without --subject was sent and refused `invalid_uscc` on the ledger
            // (found by black-box testing); an aggregate one with a subject likewise.
            if let listed = try client.policies().first(where: { $0["sha256"] as? String == policyHash.hexString }) {
                if let scope = listed["scope"] as? String {
                    if scope != "aggregate", subject.isEmpty { throw fail("policy \(policy) answers about one subject: give --subject USCC; nothing was sent") }
                    if scope == "aggregate", !subject.isEmpty { throw fail("policy \(policy) answers about no single subject: leave out --subject; nothing was sent") }
                }
                // Who may call it and for which purposes, as the node lists them and checks them
                // first: a bank calling full-profile, or credit-grade for supervision, was refused
                // on the record, in the subject's query log (found by black-box testing).
                if let purposes = listed["purposes"] as? [String], !purposes.contains(purpose) {
                    throw fail("policy \(policy) answers for \(purposes.joined(separator: ", ")), not \(purpose); nothing was sent")
                }
                if let callers = listed["callers"] as? [String], let me = g.member(keys.memberID),
                   !callers.contains("member:\(me.id)"), !me.roles.contains(where: { callers.contains("role:\($0.rawValue)") }) {
                    let roles = me.roles.map(\.rawValue).sorted().joined(separator: ", ")
                    throw fail("\(me.id) (roles: \(roles)) may not call \(policy); it is for \(callers.joined(separator: ", ")); nothing was sent")
                }
                // Parameters as the policy takes them: an unknown name, a missing one or a value out
                // of range (months=-5) was refused `invalid_parameters` on the record, spending the
                // member's refusal budget (found by black-box testing). Nodes before 2026-12-07 list
                // no specs, and a spec this tool cannot read (a newer parameter type) leaves the
                // check to the node: a partial list would refuse a query the node takes.
                if let listedSpecs = listed["parameter_specs"] as? [[String: Any]],
                   case let specs = listedSpecs.compactMap(PolicyDocument.parameter(listed:)), specs.count == listedSpecs.count {
                    do { _ = try PolicyDocument.checkParameters(parameters, against: specs, policy: listed["name"] as? String ?? policy) } catch {
                        throw fail("\(error); nothing was sent")
                    }
                }
            }
            let request = try QueryClient.request(genesis: g, keys: keys, policy: policyHash, subject: subject,
                                                  purpose: purpose, parameters: parameters, issuedAtMillis: nowMillis())
            let (_, receipt) = try client.query(request)
            // Verified before it is saved: a receipt that fails is not left behind as if it were good.
            if genesis != nil {
                do { _ = try receipt.verify(genesis: g) } catch { throw fail("the node's receipt does not verify: \(error); it was not saved") }
            }
            let audit = receipt.facts.first { $0.role == "audit_record" }
            let auditID = audit.flatMap { [UInt8](base64: $0.transaction) }.flatMap { try? Transaction.decode($0, maxBytes: Int.max) }?.id.hexString ?? "?"
            if let out {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let bytes = try encoder.encode(receipt)
                do { try writeOutput(bytes, to: out, inputs: [key, genesis]) } catch {
                    // The query is answered (or refused) and recorded by now, and the receipt is the
                    // only copy of its result and salt: it goes to stdout rather than nowhere (it was
                    // lost, under "nothing was written"; found by black-box testing).
                    FileHandle.standardOutput.write(bytes + Data("\n".utf8))
                    throw fail("the query was \(receipt.outcome) and recorded (audit record \(auditID) by \(receipt.answered_by)), but its receipt could not be saved: "
                        + "\(error); the receipt, the only copy of the result and its salt, is on standard output above: keep it")
                }
            } else {
                FileHandle.standardError.write(Data("no --out: the answer receipt (the proof of this answer, and its result's salt) was not saved\n".utf8))
            }
            if receipt.outcome == "answered" {
                let pretty = (try? JSONSerialization.jsonObject(with: Data(receipt.result.utf8)))
                    .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) }
                print(pretty.map { String(decoding: $0, as: UTF8.self) } ?? receipt.result)
                // On stderr, so that stdout is the result alone (`| jq` failed on this line; found
                // by black-box testing).
                FileHandle.standardError.write(Data("answered by \(receipt.answered_by) at height \(receipt.as_of_height); audit record \(auditID)\(genesis == nil ? "" : " (receipt verified)")\n".utf8))
                if let next = PolicyEngine.nextBefore(inResult: receipt.result) {
                    FileHandle.standardError.write(Data("older query records are on the next page: run again with --param before_log_index=\(next) (my-queries; another policy names its own paging parameter)\n".utf8))
                }
            } else {
                FileHandle.standardError.write(Data("refused (\(receipt.reason)): \(receipt.message)\naudit record \(auditID) by \(receipt.answered_by)\n".utf8))
                throw ExitCode(3)
            }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct ConsentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent",
        abstract: "Record a subject's consent to a bank (or revoke it) on the ledger.",
        discussion: """
        The bank (for itself) or a government issuer records the consent; --evidence is the signed consent
        form the submitter keeps. The ledger gets a salted commitment to it, never the form: the salt is
        kept in an evidence record beside the form (FORM.evidence.json, or --evidence-record FILE), made
        on first use and read again after; keep it with the form (credit-verify consent-evidence checks
        the two against the ledger).
        Examples:
          credit-node consent --node http://127.0.0.1:8603 --key keys/bank-a.key --subject 91330106MA27XKT2XT \\
            --grantee bank-a --purpose loan_application --days 90 --evidence consent-form.pdf
          credit-node consent --node http://127.0.0.1:8603 --key keys/bank-a.key --subject 91330106MA27XKT2XT \\
            --grantee bank-a --purpose loan_application --revoke GRANT_ID
        The nonce is derived from what the consent says (a grant: also its term and the hour it is signed in),
        so running the command again after a timeout, before the next full hour (UTC), is recorded once: it
        answers "sent_before" with the first copy. A grant whose first copy was revoked since is recorded
        again (on an operator address, which serves the subject's history). To record the same grant again
        in that hour for another reason, pass --nonce.
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "Secret key file of the recording member.") var key: String
    @Option(help: "The subject's USCC.") var subject: String
    @Option(help: "The bank the consent is given to (member id).") var grantee: String
    @Option(help: "loan_application or post_loan_monitoring.") var purpose: String
    @Option(help: "Days until the consent expires (a grant; default 90).") var days: Int?
    @Option(help: "The signed consent form (file; required for a grant); a salted commitment to it is recorded.") var evidence: String?
    @Option(help: "The evidence record holding the form's salt (default: the form's path + .evidence.json); made if missing, never replaced.")
    var evidenceRecord: String?
    @Option(help: "Revoke this grant (its transaction id) instead of granting.") var revoke: String?
    @Option(help: "The consortium's genesis file; when given, the node must serve the same.") var genesis: String?
    @Option(help: "Transaction nonce (default: derived from the consent, so running the command again is recorded once).")
    var nonce: UInt64?

    func run() throws {
        do {
            let keys = try MemberSecretKeys.load(from: key)
            let client = LedgerClient(baseURL: node)
            guard let p = ConsentBody.Purpose(name: purpose) else { throw fail("--purpose must be loan_application or post_loan_monitoring") }
            // A revocation ends the consent when it is recorded: a term given with one did nothing, silently (found by black-box testing).
            if revoke != nil, days != nil { throw fail("--days goes with a grant; a revocation ends the consent when it is recorded; nothing was sent") }
            let days = days ?? 90
            guard (1...3650).contains(days) else { throw fail("--days must be 1-3650") }
            // A grantee past a member id's length stopped the command on a precondition (exit
            // 132) while it derived the nonce (found by black-box testing, 2026-12-07).
            guard grantee.utf8.count <= FieldLimits.memberID else {
                throw fail("--grantee is \(grantee.utf8.count) bytes; a member id is at most \(FieldLimits.memberID)")
            }
            // Validators take no grant without the form's hash (since 2026-12-07).
            if revoke == nil && evidence == nil {
                throw fail("a grant needs --evidence FILE, the signed consent form you keep: a salted commitment to it is recorded (never the form)")
            }
            if evidence == nil, evidenceRecord != nil { throw fail("--evidence-record goes with --evidence FILE, the consent form") }
            // The form is read now, so that a wrong file is named before anything else; its
            // evidence record is made below, once everything else has been checked.
            let formHash = try evidence.map { try Self.hashOfFile($0) }
            var target: Hash? = nil
            if let r = revoke {
                guard let h = [UInt8](hex: r), h.count == 32 else { throw fail("--revoke must be a transaction id (64 hex digits)") }
                // The ledger takes the purpose from the grant revoked; a revocation naming another
                // purpose would read as one for that purpose once the grant is out of sight.
                // Checked here when the node serves transactions (its operator's address); a
                // member listener does not, and the ledger checks the same (grantee, subject and
                // purpose) when the revocation is submitted.
                var status: [String: Any]? = nil
                do { status = try client.getJSON("/v1/transactions/\(r)") } catch let e as LedgerClient.HTTPFailure where e.status == 404 {
                    if e.code == LedgerError.Code.operatorOnly.rawValue {
                        FileHandle.standardError.write(Data("note: \(node) does not serve transactions (a member listener); the ledger checks the grant when the revocation is submitted\n".utf8))
                    } else {
                        throw fail("\(r) is not a committed transaction on \(node)")
                    }
                }
                if let status {
                    guard let encoded = (status["encoded"] as? String).flatMap({ [UInt8](base64: $0) }),
                          case .consent(let grant) = try Transaction.decode(encoded).body else {
                        throw fail("\(r) is not a committed consent grant on \(node)")
                    }
                    guard grant.action == .grant else { throw fail("\(r) is a revocation, not a grant") }
                    guard grant.purpose == p, grant.grantee == grantee, grant.subject == (try USCC(subject)) else {
                        throw fail("\(r) grants \(grant.grantee) \(grant.purpose.name) about \(grant.subject.code); revoke it with those --grantee, --purpose and --subject")
                    }
                }
                target = h
            }
            let issuedAt = nowMillis()
            let expires = revoke == nil ? issuedAt / 1000 + UInt64(days) * 86_400 : 0
            let uscc = try USCC(subject)
            let g = try consortiumGenesis(client, trusted: genesis, signers: [keys])
            // The nonce is derived from the salted evidence, under the member's secret key: from
            // the form's own hash it let anyone holding a replica test a guessed form against the
            // nonce (found in review, 2026-12-07). A rerun reads the same evidence record, so it
            // is recorded once; one given a new record is a new grant, whose evidence that record proves.
            let evidenceHash = try evidence.map { form in
                try Self.evidenceRecord(for: form, formHash: formHash!, at: evidenceRecord ?? form + ".evidence.json", recorder: keys.memberID)
            } ?? Hashes.zero
            var derived = QueryClient.consentNonce(keys: keys, subject: uscc, grantee: grantee, purpose: p, evidence: evidenceHash,
                                                   days: days, revoking: target, issuedAtMillis: issuedAt)
            var result: [String: Any] = [:]
            // A grant run again finds its first copy; if that was revoked since, the same command
            // means "grant again": the next nonce is derived from the revocation, so a retry of
            // that is recorded once too (it answered "already on the ledger" and recorded nothing;
            // found by black-box testing). Whether it was revoked is read from the subject's
            // history, which an operator address serves and a member listener does not.
            var standing: String? = nil
            for _ in 0..<8 {
                let s = try QueryClient.consent(genesis: g, keys: keys, subject: uscc, grantee: grantee,
                                                purpose: p, expiresAt: expires, evidence: evidenceHash, revoking: target,
                                                nonce: nonce ?? derived, issuedAtMillis: issuedAt)
                let id = s.transaction.id.hexString
                // Printed before sending, as `submit` does: after a timeout the id says what to look for.
                FileHandle.standardError.write(Data("submitting transaction \(id) (nonce \(s.transaction.header.nonce))\n".utf8))
                do {
                    result = try client.submit(s)
                } catch let f as LedgerClient.HTTPFailure where f.status == 409 && f.committed != nil && nonce == nil {
                    let first = f.committed!
                    if revoke == nil {
                        switch try Self.revocation(of: first, subject: uscc, grantee: grantee, purpose: p, client: client) {
                        case .revoked(let by):
                            FileHandle.standardError.write(Data("this grant was recorded before as \(first.id) and revoked since by \(by.hexString); recording it again\n".utf8))
                            derived = AttestationRequest.derivedNonce("CreditLedger/v1/consent-regrant-nonce\n", keys: keys) { w in
                                w.u64(derived); w.raw(by)
                            }
                            continue
                        case .stands: standing = "stands"
                        case .unknown(let why):
                            standing = "not checked: \(why); to record a new grant before the next full hour (UTC), pass --nonce N"
                            // Said where a person reads, not only in the JSON: a bank took "already
                            // on the ledger" for a grant in force (found by black-box testing).
                            FileHandle.standardError.write(Data("warning: this grant was recorded before (\(first.id)); whether it was revoked since could not be checked here (\(why)). If it was, it was NOT recorded again: run this against your node's operator address, or pass --nonce N\n".utf8))
                        }
                    } else {
                        // A revocation run again after the bank recorded a grant since its first
                        // copy means "stop" again: it is recorded again, once (its nonce derived
                        // from that grant), and ends that grant too. It answered "already on the
                        // ledger" and the later grant answered on (found by black-box testing).
                        switch try Self.newer(than: first, subject: uscc, client: client, matching: { r in
                            r["action"] as? String == "grant" && r["grantee"] as? String == grantee && r["purpose"] as? String == p.name
                        }) {
                        case .found(let grant):
                            FileHandle.standardError.write(Data("this revocation was recorded before as \(first.id), and \(grantee) recorded grant \(grant.hexString) since; revoking again, which ends every grant recorded before it\n".utf8))
                            derived = AttestationRequest.derivedNonce("CreditLedger/v1/consent-rerevoke-nonce\n", keys: keys) { w in
                                w.u64(derived); w.raw(grant)
                            }
                            continue
                        case .none: break
                        case .unknown(let why): standing = "not checked: \(why); if \(grantee) recorded a grant since, pass --nonce N to revoke again"
                        }
                    }
                    // The nonce is derived from this consent: the transaction holding it is an
                    // earlier run of this command (a timeout, a retry). Recorded once, as asked.
                    result = sentBefore(first, what: "this consent", then: "; nothing was added")
                } catch let f as LedgerClient.HTTPFailure where f.status == 409 {
                    throw fail("\(f); if this command ran before, its first copy may be waiting for a block: run it again later, or pass \(nonce == nil ? "--nonce" : "another --nonce") to record another on purpose")
                } catch let f as LedgerClient.HTTPFailure {
                    throw fail("\(f)")
                } catch {
                    throw fail("\(error)\nwhether transaction \(id) committed is unknown; running the same command again before the next full hour (UTC) is safe (it is recorded once)")
                }
                break
            }
            // Eight grants revoked in turn within the hour: nothing was recorded, and it is said.
            guard !result.isEmpty else {
                throw fail(revoke == nil ? "this grant was recorded and revoked 8 times this hour; nothing was added: pass --nonce N to record it again"
                                          : "this revocation was recorded 8 times, each after a new grant; nothing was added: pass --nonce N to revoke again")
            }
            if let standing { result["standing"] = standing }
            result["consent"] = revoke == nil ? "grant" : "revoke"
            if revoke == nil, result["sent_before"] == nil { result["expires_at"] = expires }
            print(String(decoding: JSONView.data(result), as: UTF8.self))
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }

    enum Standing { case stands, revoked(by: Hash), unknown(String) }

    /// The evidence to record for the form: read from its evidence record, or, the first time,
    /// committed with a fresh salt and written there (synced) before anything is sent, so that
    /// the salt the ledger's evidence needs is never lost to a crash. A record of another form,
    /// or of another recorder, is refused, never replaced.
    static func evidenceRecord(for form: String, formHash: Hash, at path: String, recorder: String) throws -> Hash {
        if FileManager.default.fileExists(atPath: path) {
            let record: ConsentEvidence.Record
            do {
                record = try ConsentEvidence.Record.read(try readInputFile(path, limit: ConsentEvidence.maxRecordBytes, what: "evidence record"), path: path)
            } catch let e as ToolInputError { throw fail("\(e); nothing was sent") } catch {
                throw fail("\((error as? LedgerError)?.reason ?? "\(error)"); nothing was sent. It may hold the salt of a consent already on the ledger: "
                    + "check it before you move it, or name another file with --evidence-record")
            }
            guard record.formSHA256 == formHash else {
                throw fail("\(path) is the evidence record of another form (SHA-256 \(record.form_sha256)), not of \(form) (\(formHash.hexString)): "
                    + "if the form was changed, name a new --evidence-record; nothing was sent")
            }
            guard record.recorder == recorder else {
                throw fail("\(path) holds \(record.recorder)'s salt for this form, and this key is \(recorder)'s: give \(recorder) its own --evidence-record; nothing was sent")
            }
            return record.evidenceHash!
        }
        // A link to nowhere read as missing, and the create then failed "File exists" (found by black-box testing).
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
            var info = stat()
            let code = stat(path, &info) == 0 ? 0 : errno
            let why = code == 0 || code == ENOENT ? "which does not exist" : "which cannot be reached (\(String(cString: strerror(code))))"
            throw fail("--evidence-record \(path) is a symbolic link to \(target), \(why); name the record itself, or a new file; nothing was sent")
        }
        let record = ConsentEvidence.Record(recorder: recorder, formSHA256: formHash, salt: SecureRandom.bytes(ConsentEvidence.saltBytes))
        do { try DurableFile.create(atPath: path, contents: record.encoded + Data("\n".utf8), mode: 0o600) } catch {
            throw fail("cannot write the evidence record \(path): \(error); nothing was sent (give --evidence-record FILE in a writable place)")
        }
        FileHandle.standardError.write(Data("the consent form's salt is in \(path): keep it with the form; the ledger's evidence can be shown to be this form only with both\n".utf8))
        return record.evidenceHash!
    }

    /// The SHA-256 of a consent form (`ConsentEvidence.hashForm`).
    static func hashOfFile(_ path: String) throws -> Hash {
        do { return try ConsentEvidence.hashForm(atPath: path, option: "--evidence") } catch { throw fail((error as? LedgerError)?.reason ?? "\(error)") }
    }

    /// Whether the grant `first` was revoked, read from the subject's history after it: by any
    /// later revocation for its grantee and purpose, since every revocation ends the grants before
    /// it (one naming an earlier grant too; it looked only for one naming `first`, and said a
    /// grant ended that way "stands"; found in review, 2026-12-07).
    static func revocation(of first: LedgerClient.CommittedTransaction, subject: USCC, grantee: String, purpose: ConsentBody.Purpose,
                           client: LedgerClient) throws -> Standing {
        switch try newer(than: first, subject: subject, client: client, matching: { r in
            r["action"] as? String == "revoke" && r["grantee"] as? String == grantee && r["purpose"] as? String == purpose.name
        }) {
        case .found(let id): return .revoked(by: id)
        case .none: return .stands
        case .unknown(let why): return .unknown(why)
        }
    }

    enum Found { case found(Hash), none, unknown(String) }

    /// The first consent in the subject's history after `first` that `matching` takes.
    static func newer(than first: LedgerClient.CommittedTransaction, subject: USCC, client: LedgerClient,
                      matching: ([String: Any]) -> Bool) throws -> Found {
        var after = first.logIndex
        for _ in 0..<16 {
            let page: [String: Any]
            do { page = try client.getJSON("/v1/subjects/\(subject.code)/history?after=\(after)&limit=\(LedgerAPI.maxHistory)") } catch let e as LedgerClient.HTTPFailure {
                return .unknown(e.code == LedgerError.Code.operatorOnly.rawValue
                    ? "this address does not serve the subject's history (a member listener), so whether the first copy was revoked since is not known"
                    : "the subject's history could not be read (\(e))")
            } catch {
                return .unknown("the subject's history could not be read (\(error))")
            }
            let records = page["records"] as? [[String: Any]] ?? []
            for r in records where r["kind"] as? String == "consent" && matching(r) {
                if let id = (r["id"] as? String).flatMap({ [UInt8](hex: $0) }) { return .found(id) }
            }
            guard records.count == LedgerAPI.maxHistory, let last = (records.last?["log_index"] as? NSNumber)?.uint64Value else { return .none }
            after = last
        }
        return .unknown("the subject's history after it is longer than was read")
    }
}

struct InstallPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-policy",
        abstract: "Install a query policy by governance: approved by every custodian, submitted by one.",
        discussion: """
        The node checks the document before it reaches the ledger: a policy that would return raw payload
        fields to a non-custodian, or let banks see a subject without consent, is refused.
        Each custodian approves on its own machine with `credit-node approve policy` and sends the approval
        file; the submitter passes them with --approval (its own key may approve with --approver-key).
        Every approval file is checked against the document and the node's genesis before anything is sent.
        Example:
          credit-node install-policy --node http://127.0.0.1:8601 --file my-policy.json --key keys/samr-330106.key \\
            --approval samr-330106.approval.json --approval data-330106.approval.json
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "Policy document.") var file: String
    @OptionGroup var signers: GovernanceSigners

    func run() throws {
        do {
            try signers.submit(to: node) { g in
                let (proposal, parsed) = try QueryClient.policyProposal(genesis: g, document: try readFile(file))
                return (proposal, ["policy": "\(parsed.name)@\(parsed.version)", "sha256": parsed.hash.hexString])
            }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct InstallModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-model",
        abstract: "Install a scoring model (a new model, or a new version of one) by governance: approved by every custodian, submitted by one.",
        discussion: """
        The document is compiled as a model, and its name and version read from it, before anything is sent
        (the node then refuses a name and version, or a document, already installed). Once the block with the
        install commits, the scorers re-score every subject the model covers (docs/SCORING.md §8).
        Each custodian approves on its own machine with `credit-node approve model` and sends the approval
        file; the submitter passes them with --approval (its own key may approve with --approver-key).
        Every approval file is checked against the document and the node's genesis before anything is sent.
        Example:
          credit-node install-model --node http://127.0.0.1:8601 --file individual-business-v2.json --key keys/samr-330106.key \\
            --approval samr-330106.approval.json --approval data-330106.approval.json
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(help: "Model document.") var file: String
    @OptionGroup var signers: GovernanceSigners

    func run() throws {
        do {
            try signers.submit(to: node) { _ in
                // The models the node holds, with their kinds, so a kind change is named before sending.
                let (proposal, model) = try QueryClient.modelProposal(document: try readFile(file), installed: try installedModels(node: node))
                return (proposal, ["model": "\(model.name)@\(model.version)", "sha256": model.hash.hexString])
            }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

struct Erase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Crypto-shred records: every node deletes their payload envelopes (and wrapped keys); the chain still verifies.",
        discussion: """
        An erase_records governance transaction, approved by every custodian. The records' clear metadata and
        commitments stay in the log; their raw payloads become unreadable everywhere.
        Each custodian approves on its own machine with `credit-node approve erase --id RECORD_ID` and sends
        the approval file; the ids may be listed in any order.
        Example:
          credit-node erase --node http://127.0.0.1:8601 --id RECORD_ID --key keys/samr-330106.key \\
            --approval samr-330106.approval.json --approval data-330106.approval.json
        """)
    @Option(help: "Node API base URL.") var node: String = "http://127.0.0.1:8480"
    @Option(name: .customLong("id"), help: "Transaction id of a record to erase (repeatable).") var ids: [String] = []
    @OptionGroup var signers: GovernanceSigners

    func run() throws {
        do {
            let records = try recordIDs(ids)
            // The ids as signed: sorted, without repeats (they were printed as typed; found by black-box testing).
            let proposal = QueryClient.erasureProposal(records: records)
            try signers.submit(to: node) { _ in (proposal, ["erased": proposal.erasedRecords.map(\.hexString)]) }
        } catch let e as ExitCode { throw e } catch { throw fail("\(error)") }
    }
}

/// The record ids of `--id` options (an erasure names at least one).
/// The models a node holds (`/v1/models`: name, version, kind), installed by governance as well as
/// in genesis.
func installedModels(node: String) throws -> [(name: String, version: UInt32, kind: String?)] {
    let listed = (try LedgerClient(baseURL: node).getJSON("/v1/models")["models"] as? [[String: Any]]) ?? []
    return listed.compactMap { m in
        guard let name = m["name"] as? String, let version = (m["version"] as? NSNumber)?.uint32Value else { return nil }
        return (name, version, m["kind"] as? String)
    }
}

/// One record's transaction id, given as `option`.
func recordID(_ id: String, option: String = "--corrects") throws -> Hash {
    guard let h = [UInt8](hex: id), h.count == 32 else { throw fail("\(option) must be a transaction id (64 hex digits), got \(id.prefix(80))") }
    return h
}

func recordIDs(_ ids: [String]) throws -> [Hash] {
    let records = try ids.map { id -> Hash in
        guard let h = [UInt8](hex: id), h.count == 32 else { throw fail("--id must be a transaction id (64 hex digits), got \(id)") }
        return h
    }
    guard !records.isEmpty else { throw fail("name at least one --id") }
    // The validators' bound, before any custodian approves (an approval of 1,025 ids was
    // written, and only the final submission refused; found by black-box testing).
    let distinct = Set(records.map(HashKey.init)).count
    guard distinct <= FieldLimits.erasedRecords else {
        throw fail("an erasure names at most \(FieldLimits.erasedRecords) records; \(distinct) were given: split them over several erasures")
    }
    return records
}

/// Who signs a governance transaction: the submitting custodian's key, and every custodian's
/// approval, as a key held here (--approver-key) or as a file the custodian made on its own
/// machine with `credit-node approve` (--approval).
struct GovernanceSigners: ParsableArguments {
    @Option(help: "Secret key of the submitting custodian.") var key: String
    @Option(name: .customLong("approver-key"), help: "Secret key of an approving custodian held on this machine (repeatable).")
    var approverKeys: [String] = []
    @Option(name: .customLong("approval"), help: "Approval file made by a custodian with `credit-node approve` (repeatable).")
    var approvalFiles: [String] = []
    @Option(help: "The consortium's genesis file; when given, the node must serve the same, and approvals are checked against it.")
    var genesis: String?

    func submitter() throws -> MemberSecretKeys { try MemberSecretKeys.load(from: key) }
    func approvers() throws -> [MemberSecretKeys] { try approverKeys.map { try MemberSecretKeys.load(from: $0) } }

    /// Fetches the node's genesis (which must be `--genesis`, when given), builds the proposal
    /// against it, signs it with every approval, submits it and prints the node's answer with
    /// `fields` added. What install-policy, install-model and erase do once their options parse.
    func submit(to node: String, _ build: (Genesis) throws -> (proposal: GovernanceBody, fields: [String: Any])) throws {
        let client = LedgerClient(baseURL: node)
        let g = try consortiumGenesis(client, trusted: genesis, signers: [try submitter()] + (try approvers()))
        let (proposal, fields) = try build(g)
        var result = try client.submit(try submission(genesis: g, proposal: proposal))
        for (k, v) in fields { result[k] = v }
        print(String(decoding: JSONView.data(result), as: UTF8.self))
    }

    /// The signed transaction for `proposal`. Every approval file must approve exactly this
    /// proposal on this chain, by a custodian, with its genesis key; every custodian must have
    /// approved. Nothing is sent when a check fails.
    func submission(genesis: Genesis, proposal: GovernanceBody) throws -> Submission {
        let keys = try approvers()
        let files = try GovernanceApproval.signatures(files: approvalFiles, for: proposal, genesis: genesis)
        let approved = Set(keys.map(\.memberID) + files.map(\.member))
        let missing = genesis.custodians.map(\.id).filter { !approved.contains($0) }
        guard missing.isEmpty else {
            throw fail("every custodian must approve; no approval from \(missing.joined(separator: ", ")) "
                       + "(each runs `credit-node approve` on its own machine and sends the file; pass it with --approval)")
        }
        return try QueryClient.governance(genesis: genesis, proposal, submitter: try submitter(), approvers: keys, approvals: files,
                                          issuedAtMillis: nowMillis())
    }
}
