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
bin="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-node"
bash Network/dev/start.sh
url="$(cat "$CREDITLEDGER_DEV_DIR/http.addr")"
"$bin" demo --node "$url" --key "$CREDITLEDGER_DEV_DIR/keys/dev.key" --count "${DEMO_COUNT:-200}"
echo
echo "submit your own record:  $bin submit --node $url --key $CREDITLEDGER_DEV_DIR/keys/dev.key --file Genesis/examples/penalty.json"
echo "status / stop:           bash Network/dev/status.sh   /   bash Network/dev/stop.sh"
