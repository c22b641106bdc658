#!/usr/bin/env bash
# Starts every node of the local network (or only the members named as arguments) in the
# background, unless already running, and waits until each serves its HTTP API.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"
source Network/local/network.env
source Network/lib.sh
bash Network/local/setup.sh
bin="$(swift build -c "$CREDITLEDGER_BUILD" --show-bin-path)/credit-node"
dir="$CREDITLEDGER_LOCAL_DIR"
check_members "$@"
members="${*:-$CREDITLEDGER_LOCAL_MEMBERS}"
declare -A started logstart
for m in $members; do
  pidfile="$dir/$m/node.pid"
  pid="$(running_pid "$pidfile" "$dir/$m/node.json")"
  if [ -n "$pid" ]; then
    echo "$m already running (pid $pid)"; continue
  fi
  rm -f "$(data_dir "$dir/$m")/http.addr" "$(data_dir "$dir/$m")/member-http.addr"
  # What this start writes to the log, apart from earlier runs' lines.
  logstart[$m]=$(( $(stat -c %s "$dir/$m/node.log" 2>/dev/null || echo 0) + 1 ))
  nohup "$bin" run --config "$dir/$m/node.json" >>"$dir/$m/node.log" 2>&1 &
  echo $! >"$pidfile"
  started[$m]=1
done
# Each node started here must serve its API (and its member API, when it has one) and still be
# running a moment later: a listener that fails after the first is up ends the node then.
failed=0
for m in $members; do
  [ -n "${started[$m]:-}" ] || continue
  pid="$(cat "$dir/$m/node.pid")"
  want=("$(data_dir "$dir/$m")/http.addr")
  if grep -q '"member_http"' "$dir/$m/node.json"; then want+=("$(data_dir "$dir/$m")/member-http.addr"); fi
  ok=""
  # 30 s, or up to an hour while the node upgrades an older store (it says so in its log first).
  waited=0
  while kill -0 "$pid" 2>/dev/null; do
    ready=1
    for f in "${want[@]}"; do [ -f "$f" ] || ready=""; done
    if [ -n "$ready" ]; then sleep 1; kill -0 "$pid" 2>/dev/null && ok=1; break; fi
    if [ "$waited" -ge 300 ]; then
      tail -c "+${logstart[$m]}" "$dir/$m/node.log" | grep -c "upgrading the store" >/dev/null && [ "$waited" -lt 36000 ] || break
      [ "$waited" -eq 300 ] && echo "$m is upgrading its store (see $dir/$m/node.log); waiting for it" >&2
    fi
    sleep 0.1; waited=$((waited + 1))
  done
  if [ -z "$ok" ]; then
    if kill -0 "$pid" 2>/dev/null; then
      echo "$m did not start serving within 30 s (pid $pid); see $dir/$m/node.log" >&2
    else
      echo "$m failed to start:" >&2; tail -c "+${logstart[$m]}" "$dir/$m/node.log" | tail -n 20 >&2
      rm -f "$dir/$m/node.pid" "$(data_dir "$dir/$m")/http.addr" "$(data_dir "$dir/$m")/member-http.addr"
    fi
    failed=1; continue
  fi
  echo "$m running (pid $pid) at $(cat "$(data_dir "$dir/$m")/http.addr"); log: $dir/$m/node.log"
done
exit $failed
