#!/usr/bin/env bash
# Shows the dev ledger's height, head hash and log size.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/dev/dev.env
source Network/lib.sh
require_commands curl
# http.addr outlives the process (it is rewritten at each start): the pid file says whether it runs.
if [ -z "$(running_pid "$CREDITLEDGER_DEV_DIR.pid" "$CREDITLEDGER_DEV_DIR")" ] || [ ! -f "$CREDITLEDGER_DEV_DIR/http.addr" ]; then
  echo "dev ledger is not running"; exit 1
fi
# 503 with "status":"write_failure" and the reason when a block could not be written: shown, and exit 1.
health="$(curl -sS "$(cat "$CREDITLEDGER_DEV_DIR/http.addr")/v1/health")"
echo "$health"
case "$health" in *'"status":"ok"'*) ;; *) exit 1 ;; esac
