#!/usr/bin/env bash
# One line per node: height, head hash, consensus round/step, connected peers, mempool.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/local/network.env
source Network/lib.sh
require_commands curl python3
dir="$CREDITLEDGER_LOCAL_DIR"
printf '%-12s %-9s %7s  %-18s %-16s %7s  %s\n' member mode height head round/step mempool peers
# Exit status 1 when a node is down, not answering, or is not the member it is listed as.
unwell=0
for m in $CREDITLEDGER_LOCAL_MEMBERS; do
  pid="$(running_pid "$dir/$m/node.pid" "$dir/$m/node.json")"
  addr="$(cat "$(data_dir "$dir/$m")/http.addr" 2>/dev/null || true)"
  if [ -z "$addr" ] || ! body="$(curl -fsS --max-time 2 "$addr/v1/status" 2>/dev/null)"; then
    if [ -n "$pid" ]; then printf '%-12s %s\n' "$m" "not answering (pid $pid is running)"; else printf '%-12s %s\n' "$m" "down"; fi
    unwell=1; continue
  fi
  python3 - "$m" "$body" <<'PY' || unwell=1
import json, sys
m, s = sys.argv[1], json.loads(sys.argv[2])
if s.get("member") != m:
    # An address file left behind, now answered by some other node.
    print("%-12s down (its address now answers as %s)" % (m, s.get("member", "a node that is not a consortium member")))
    sys.exit(1)
c = s.get("consensus", {})
# A follower tracks the validators' rounds but casts no vote: its step is not shown as if it did.
step = "%s/%s/%s" % (c.get("height", "-"), c.get("round", "-"), c.get("step", "-")) if s.get("mode") != "follower" else "(no vote)"
print("%-12s %-9s %7d  %-18s %-16s %7d  %s" % (m, s.get("mode", "?"), s["height"], s["head_hash"][:16] + "…",
      step, s.get("mempool", 0), ",".join(s.get("peers", []))))
# A disk slow to sync holds up every commit and query answer: said under the node's line.
w = s.get("synced_block_writes", {})
if w.get("slow", 0) > 0:
    last = w.get("last_slow", {})
    print("%-12s   %d of %d block writes took over %d ms to sync (slowest %d ms; last at block %s, %s ms)" % (
          "", w["slow"], w.get("count", 0), w.get("slow_threshold_ms", 0), w.get("slowest_ms", 0), last.get("height", "?"), last.get("ms", "?")))
PY
done
exit $unwell
