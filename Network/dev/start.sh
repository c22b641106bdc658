#!/usr/bin/env bash
# Starts the dev ledger in the background unless it is already running.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
source Network/dev/dev.env
source Network/lib.sh
bin="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-node"
pidfile="$CREDITLEDGER_DEV_DIR.pid"
pid="$(running_pid "$pidfile" "$CREDITLEDGER_DEV_DIR")"
if [ -n "$pid" ]; then
  echo "dev ledger already running (pid $pid) at $(cat "$CREDITLEDGER_DEV_DIR/http.addr")"
  exit 0
fi
mkdir -p "$(dirname "$CREDITLEDGER_DEV_DIR")"
rm -f "$CREDITLEDGER_DEV_DIR/http.addr"
# --models and --policies install the shipped scoring models and query policies in the genesis
# made on first start; a restart opens that genesis as it is (the node refuses model or policy
# files its genesis does not hold, such as ones edited since).
install=()
if [ ! -f "$CREDITLEDGER_DEV_DIR/genesis.json" ]; then install=(--models Genesis/models --policies Genesis/policies); fi
nohup "$bin" dev --data-dir "$CREDITLEDGER_DEV_DIR" --http "$CREDITLEDGER_DEV_HTTP" \
  --block-interval-ms "$CREDITLEDGER_DEV_BLOCK_INTERVAL_MS" "${install[@]}" >"$CREDITLEDGER_DEV_DIR.log" 2>&1 &
echo $! >"$pidfile"
# 20 s, or up to an hour while the node upgrades an older store (it says so in its log first).
waited=0
while [ ! -f "$CREDITLEDGER_DEV_DIR/http.addr" ]; do
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "dev ledger failed to start:" >&2; cat "$CREDITLEDGER_DEV_DIR.log" >&2; exit 1
  fi
  if [ "$waited" -ge 200 ]; then
    grep -q "upgrading the store" "$CREDITLEDGER_DEV_DIR.log" 2>/dev/null && [ "$waited" -lt 36000 ] || break
    [ "$waited" -eq 200 ] && echo "the dev ledger is upgrading its store (see $CREDITLEDGER_DEV_DIR.log); waiting for it" >&2
  fi
  sleep 0.1; waited=$((waited + 1))
done
if [ ! -f "$CREDITLEDGER_DEV_DIR/http.addr" ]; then
  echo "dev ledger did not start serving within 20 s (pid $(cat "$pidfile")); see $CREDITLEDGER_DEV_DIR.log" >&2; exit 1
fi
echo "dev ledger running (pid $(cat "$pidfile")) at $(cat "$CREDITLEDGER_DEV_DIR/http.addr"); log: $CREDITLEDGER_DEV_DIR.log"
