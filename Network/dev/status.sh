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
curl -fsS "$(cat "$CREDITLEDGER_DEV_DIR/http.addr")/v1/health"; echo
