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
members="${*:-$CREDITLEDGER_LOCAL_MEMBERS}"
for m in $members; do
  pidfile="$dir/$m/node.pid"
  pid="$(running_pid "$pidfile" "$dir/$m/node.json")"
  if [ -n "$pid" ]; then
    echo "$m already running (pid $pid)"; continue
  fi
  rm -f "$dir/$m/data/http.addr"
  nohup "$bin" run --config "$dir/$m/node.json" >>"$dir/$m/node.log" 2>&1 &
  echo $! >"$pidfile"
done
for m in $members; do
  for _ in $(seq 1 300); do
    [ -f "$dir/$m/data/http.addr" ] && break
    if ! kill -0 "$(cat "$dir/$m/node.pid")" 2>/dev/null; then
      echo "$m failed to start:" >&2; tail -n 20 "$dir/$m/node.log" >&2; exit 1
    fi
    sleep 0.1
  done
  if [ ! -f "$dir/$m/data/http.addr" ]; then
    echo "$m did not start serving within 30 s (pid $(cat "$dir/$m/node.pid")); see $dir/$m/node.log" >&2; exit 1
  fi
  echo "$m running (pid $(cat "$dir/$m/node.pid")) at $(cat "$dir/$m/data/http.addr"); log: $dir/$m/node.log"
done
