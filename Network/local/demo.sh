#!/usr/bin/env bash
# The main job: installs dependencies, builds, starts the local consortium network (four
# validators and an auditor follower on loopback) and runs the demo against it: sample
# attestations are signed by the bureaus, encrypted to the custodians, ordered by BFT
# consensus and committed on every node; a receipt is fetched and checked offline, and the
# auditor's copy of the chain is verified. The network keeps running afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
source Network/local/network.env
source Network/lib.sh
bash Network/install-deps.sh
echo "building credit-node and credit-verify ($CREDITLEDGER_BUILD)…"
swift build -c "$CREDITLEDGER_BUILD" --product credit-node 2>&1 | tail -n 1
swift build -c "$CREDITLEDGER_BUILD" --product credit-verify 2>&1 | tail -n 1
binpath="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)"
bash Network/local/start.sh
dir="$CREDITLEDGER_LOCAL_DIR"
if ! grep -q '"policies"' "$dir/genesis.json"; then
  echo "the local network in $dir predates query policies (its genesis installs none); reset it with:"
  echo "  bash Network/local/stop.sh && rm -rf $dir && bash Network/local/demo.sh"
  exit 1
fi
url="$(cat "$(data_dir "$dir/samr-330106")/http.addr")"
# Banks reach the bureau's node on its member listener: queries, policies, proofs, submissions
# only (a network set up before it existed has none: its operator address stands in).
members="$url"
if grep -q '"member_http"' "$dir/samr-330106/node.json"; then
  for _ in $(seq 1 100); do [ -f "$(data_dir "$dir/samr-330106")/member-http.addr" ] && break; sleep 0.1; done
  members="$(cat "$(data_dir "$dir/samr-330106")/member-http.addr")"   # fails the demo if the listener never came up
fi
"$binpath/credit-node" demo --node "$url" --genesis "$dir/genesis.json" --key "$dir/keys/samr-330106.key" --count "${DEMO_COUNT:-200}"

# Each run scores subjects of its own. On a network that an earlier run left with data, that
# run's subjects already hold bank A's consent, so the query without consent below would be answered.
run="$(cat "$dir/demo-runs" 2>/dev/null || { [ -f "$dir/demo-records.jsonl" ] && echo 1 || echo 0; })"
echo $((run + 1)) >"$dir/demo-runs"
echo
echo "== scoring (docs/SCORING.md): ${DEMO_SUBJECTS:-300} synthetic subjects, records from the bureaus and bank A"
"$binpath/credit-node" demo-data --subjects "${DEMO_SUBJECTS:-300}" --seed $((2026 + run)) --out "$dir/demo-records.jsonl" --node "$url" \
  --genesis "$dir/genesis.json" --key "$dir/keys/samr-330106.key" --bank-key "$dir/keys/bank-a.key"
sleep 1
echo "each subject was scored live after its block by its designated bureau and endorsed by the other;"
echo "a full re-score (what a model upgrade does), by the supervision bureau, endorsed by the data bureau:"
for model in individual-business enterprise; do
  "$binpath/credit-node" rescore --data-dir "$dir/samr-330106/data" --model "$model" --submit "$url" \
    --key "$dir/keys/samr-330106.key" --endorser-key "$dir/keys/data-330106.key"
done
"$binpath/credit-node" rescore --data-dir "$dir/samr-330106/data" --model risk-warning --watch-list | tail -n 8
subject="$(head -n 1 "$dir/demo-records.jsonl" | sed 's/.*"subject":"\([0-9A-Z]*\)".*/\1/')"
score="$(curl -fsS "$url/v1/subjects/$subject/history" | tr '{' '\n' | grep score_update | tail -n 1 | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')"
bank="$(cat "$(data_dir "$dir/bank-b")/http.addr")"
curl -fsS "$bank/v1/transactions/$score/provenance" >"$dir/provenance.json"
echo "provenance of score $score of $subject, fetched from bank B's node, checked offline:"
"$binpath/credit-verify" provenance "$dir/provenance.json" --genesis "$dir/genesis.json"

echo
echo "== privacy (docs/PRIVACY.md): bank A asks the supervision bureau's node about $subject, on its member listener $members"
echo "without consent, the query is refused, and the refusal is on the ledger:"
refused=0
"$binpath/credit-node" query --node "$members" --key "$dir/keys/bank-a.key" --policy credit-grade --subject "$subject" \
  --purpose loan_application || refused=$?
# Exit 3 is a refusal by the policy; anything else (0: answered; 1: node unreachable…) is not what the demo shows.
case "$refused" in
  3) ;;
  0) echo "bank A was answered about $subject without its consent: privacy broken"; exit 1 ;;
  *) echo "the query failed (exit $refused) instead of being refused"; exit 1 ;;
esac
bank_a="$(cat "$(data_dir "$dir/bank-a")/http.addr")"
echo "the business consents (bank A records it with a salted commitment to the signed form), then bank A asks again:"
form="$dir/consent-form-$((run + 1)).txt"   # one per run: its evidence record (the salt) sits beside it
echo "consent form of $subject for bank-a, $(date -u +%F)" >"$form"
consent="$("$binpath/credit-node" consent --node "$bank_a" --key "$dir/keys/bank-a.key" --subject "$subject" --grantee bank-a \
  --purpose loan_application --days 90 --evidence "$form" --genesis "$dir/genesis.json")"
# Committed on bank A's node; the supervision bureau's node answers once it holds that block too.
height="$(echo "$consent" | sed 's/.*"height":\([0-9]*\).*/\1/')"
for _ in $(seq 1 100); do
  at="$(curl -fsS "$url/v1/health" | sed 's/.*"height":\([0-9]*\).*/\1/')"
  [ "$at" -ge "$height" ] && break
  sleep 0.1
done
"$binpath/credit-node" query --node "$members" --key "$dir/keys/bank-a.key" --policy credit-grade --subject "$subject" \
  --purpose loan_application --genesis "$dir/genesis.json" --out "$dir/answer-$((run + 1)).json"
"$binpath/credit-node" query --node "$members" --key "$dir/keys/bank-a.key" --policy loan-pre-check --subject "$subject" \
  --purpose loan_application --param amount_yuan=100000
echo "the answer receipt (audit record, consent, score, quorum checkpoint), checked offline:"
"$binpath/credit-verify" receipt "$dir/answer-$((run + 1)).json" --genesis "$dir/genesis.json"
echo "the consent the answer relied on records this signed form (the form and its salt, against the receipt):"
"$binpath/credit-verify" consent-evidence --form "$form" --receipt "$dir/answer-$((run + 1)).json" --genesis "$dir/genesis.json"
echo "industry statistics for any member (only industry×district cells of at least 10 subjects are counted):"
"$binpath/credit-node" query --node "$members" --key "$dir/keys/bank-b.key" --policy industry-statistics --purpose statistics \
  --param model=individual-business || true
echo "who looked at $subject (the bureau answers for the business):"
"$binpath/credit-node" query --node "$url" --key "$dir/keys/samr-330106.key" --policy my-queries --subject "$subject" \
  --purpose subject_access
echo "bank A's node stores the records encrypted: its data directory holds no payload text:"
name="$(grep -m1 "$subject" "$dir/demo-records.jsonl" | sed 's/.*"name":"\([^"]*\)".*/\1/')"
if grep -rqF "$name" "$dir/bank-a/data"; then echo "FOUND \"$name\" in bank A's data: privacy broken"; exit 1; fi
echo "  \"$name\" (the business's name, in its registration payload): not found in $dir/bank-a/data"

echo
echo "every node, after the demo:"
sleep 1
bash Network/local/status.sh
echo
echo "the auditor (a follower that never votes) verifies its own copy of the chain, complete up to"
echo "the latest checkpoint the supervision bureau's node signed with the others:"
"$binpath/credit-node" checkpoint --node "$members" >"$dir/latest.checkpoint"
"$binpath/credit-verify" chain --data-dir "$(data_dir "$dir/auditor")/ledger" --genesis "$dir/genesis.json" --checkpoint "$dir/latest.checkpoint"
echo
echo "status / stop:  bash Network/local/status.sh   /   bash Network/local/stop.sh"
echo "crash a node:   bash Network/local/stop.sh --kill bank-b; bash Network/local/start.sh bank-b"
