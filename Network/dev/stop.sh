#!/usr/bin/env bash
# Stops the dev ledger gracefully (SIGTERM: pending transactions are committed first).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/dev/dev.env
source Network/lib.sh
pidfile="$CREDITLEDGER_DEV_DIR.pid"
pid="$(running_pid "$pidfile" "$CREDITLEDGER_DEV_DIR")"
if [ -n "$pid" ]; then
  if ! stop_pid "$pid" TERM 30; then
    echo "dev ledger (pid $pid) is still running 30 s after SIGTERM; kill -9 $pid stops it (a committed block is durable)" >&2
    exit 1
  fi
  echo "dev ledger stopped"
else
  echo "dev ledger is not running"
fi
rm -f "$pidfile"
