#!/usr/bin/env bash
# One line per node: height, head hash, consensus round/step, connected peers, mempool.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/local/network.env
source Network/lib.sh
require_commands curl python3
dir="$CREDITLEDGER_LOCAL_DIR"
printf '%-12s %-9s %7s  %-18s %-16s %7s  %s\n' member mode height head round/step mempool peers
for m in $CREDITLEDGER_LOCAL_MEMBERS; do
  addr="$(cat "$dir/$m/data/http.addr" 2>/dev/null || true)"
  if [ -z "$addr" ] || ! body="$(curl -fsS --max-time 2 "$addr/v1/status" 2>/dev/null)"; then
    printf '%-12s %s\n' "$m" "down"; continue
  fi
  python3 - "$m" "$body" <<'PY'
import json, sys
m, s = sys.argv[1], json.loads(sys.argv[2])
c = s.get("consensus", {})
print("%-12s %-9s %7d  %-18s %-16s %7d  %s" % (m, s.get("mode", "?"), s["height"], s["head_hash"][:16] + "…",
      "%s/%s/%s" % (c.get("height", "-"), c.get("round", "-"), c.get("step", "-")), s.get("mempool", 0), ",".join(s.get("peers", []))))
PY
done
