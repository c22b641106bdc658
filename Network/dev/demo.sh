#!/usr/bin/env bash
# Installs dependencies, builds, starts the dev ledger (if it is not running) and runs the demo:
# sample attestations are signed, encrypted to the custodian and committed; an inclusion proof
# and the signed checkpoint are printed and checked. The node keeps running afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
source Network/dev/dev.env
bash Network/install-deps.sh
echo "building credit-node ($CREDITLEDGER_BUILD)…"
swift build -c "$CREDITLEDGER_BUILD" --product credit-node 2>&1 | tail -n 1
swift build -c "$CREDITLEDGER_BUILD" --product credit-verify 2>&1 | tail -n 1
bin="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-node"
verify="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-verify"
bash Network/dev/start.sh
url="$(cat "$CREDITLEDGER_DEV_DIR/http.addr")"
"$bin" demo --node "$url" --genesis "$CREDITLEDGER_DEV_DIR/genesis.json" --key "$CREDITLEDGER_DEV_DIR/keys/dev.key" --count "${DEMO_COUNT:-200}"

key="$CREDITLEDGER_DEV_DIR/keys/dev.key"
if curl -fsS "$url/v1/models" | grep -q individual-business; then
  echo
  echo "== scoring (docs/SCORING.md): ${DEMO_SUBJECTS:-300} synthetic subjects, scored under the genesis models"
  # Each run records subjects of its own: the same seed again would record every subject's
  # registration, penalties… a second time (new nonces) and shift their grades.
  run="$(cat "$CREDITLEDGER_DEV_DIR.demo-runs" 2>/dev/null || { [ -f "$CREDITLEDGER_DEV_DIR.demo-records.jsonl" ] && echo 1 || echo 0; })"
  echo $((run + 1)) >"$CREDITLEDGER_DEV_DIR.demo-runs"
  "$bin" demo-data --subjects "${DEMO_SUBJECTS:-300}" --seed $((2026 + run)) --out "$CREDITLEDGER_DEV_DIR.demo-records.jsonl" --node "$url" --key "$key"
  for model in individual-business enterprise; do
    "$bin" rescore --data-dir "$CREDITLEDGER_DEV_DIR" --model "$model" --submit "$url" --key "$key"
  done
  "$bin" rescore --data-dir "$CREDITLEDGER_DEV_DIR" --model risk-warning --watch-list
  subject="$(head -n 1 "$CREDITLEDGER_DEV_DIR.demo-records.jsonl" | sed 's/.*"subject":"\([0-9A-Z]*\)".*/\1/')"
  score="$(curl -fsS "$url/v1/subjects/$subject/history" | tr '{' '\n' | grep score_update | tail -n 1 | sed 's/.*"id":"\([0-9a-f]*\)".*/\1/')"
  curl -fsS "$url/v1/transactions/$score/provenance" >"$CREDITLEDGER_DEV_DIR.provenance.json"
  echo "provenance of score $score of $subject (every input with its inclusion proof), checked offline:"
  "$verify" provenance "$CREDITLEDGER_DEV_DIR.provenance.json" --genesis "$CREDITLEDGER_DEV_DIR/genesis.json"
  "$verify" recompute "$score" --data-dir "$CREDITLEDGER_DEV_DIR/ledger" --genesis "$CREDITLEDGER_DEV_DIR/genesis.json" --key "$key" | head -n 5
else
  echo "(this dev ledger's genesis has no scoring models; remove $CREDITLEDGER_DEV_DIR to start one that has)"
fi
echo
echo "submit your own record:  $bin submit --node $url --genesis $CREDITLEDGER_DEV_DIR/genesis.json --key $CREDITLEDGER_DEV_DIR/keys/dev.key --file Genesis/examples/penalty.json"
echo "status / stop:           bash Network/dev/status.sh   /   bash Network/dev/stop.sh"
