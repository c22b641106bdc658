#!/usr/bin/env bash
# Stops every node of the local network (or the members named as arguments) with SIGTERM.
# `stop.sh --kill bank-b` sends SIGKILL instead (to try crash recovery).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/local/network.env
signal=TERM
if [ "${1:-}" = "--kill" ]; then signal=KILL; shift; fi
dir="$CREDITLEDGER_LOCAL_DIR"
for m in ${*:-$CREDITLEDGER_LOCAL_MEMBERS}; do
  pidfile="$dir/$m/node.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid="$(cat "$pidfile")"; kill -"$signal" "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "$m stopped ($signal)"
  else
    echo "$m is not running"
  fi
  rm -f "$pidfile"
done
