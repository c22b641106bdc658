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
bash Network/install-deps.sh
echo "building credit-node and credit-verify ($CREDITLEDGER_BUILD)…"
swift build -c "$CREDITLEDGER_BUILD" --product credit-node 2>&1 | tail -n 1
swift build -c "$CREDITLEDGER_BUILD" --product credit-verify 2>&1 | tail -n 1
binpath="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)"
bash Network/local/start.sh
dir="$CREDITLEDGER_LOCAL_DIR"
url="$(cat "$dir/samr-330106/data/http.addr")"
"$binpath/credit-node" demo --node "$url" --key "$dir/keys/samr-330106.key" --count "${DEMO_COUNT:-200}"
echo
echo "every node, after the demo:"
sleep 1
bash Network/local/status.sh
echo
echo "the auditor (a follower that never votes) verifies its own copy of the chain:"
"$binpath/credit-verify" chain --data-dir "$dir/auditor/data/ledger" --genesis "$dir/genesis.json"
echo
echo "status / stop:  bash Network/local/status.sh   /   bash Network/local/stop.sh"
echo "crash a node:   bash Network/local/stop.sh --kill bank-b; bash Network/local/start.sh bank-b"
