#!/usr/bin/env bash
# Stops the dev ledger gracefully (SIGTERM: pending transactions are committed first).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/dev/dev.env
pidfile="$CREDITLEDGER_DEV_DIR.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid="$(cat "$pidfile")"; kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "dev ledger stopped"
else
  echo "dev ledger is not running"
fi
rm -f "$pidfile"
