#!/usr/bin/env bash
# Stops every node of the local network (or the members named as arguments) with SIGTERM.
# `stop.sh --kill bank-b` sends SIGKILL instead (to try crash recovery).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Network/local/network.env
source Network/lib.sh
signal=TERM
if [ "${1:-}" = "--kill" ]; then signal=KILL; shift; fi
dir="$CREDITLEDGER_LOCAL_DIR"
check_members "$@"
status=0
for m in ${*:-$CREDITLEDGER_LOCAL_MEMBERS}; do
  pidfile="$dir/$m/node.pid"
  pid="$(running_pid "$pidfile" "$dir/$m/node.json")"
  if [ -z "$pid" ]; then
    echo "$m is not running"
  elif stop_pid "$pid" "$signal" 30; then
    echo "$m stopped ($signal)"
  else
    # The pid file stays: the node still holds its store and ports.
    echo "$m (pid $pid) is still running 30 s after SIG$signal; stop it with: bash Network/local/stop.sh --kill $m" >&2
    status=1; continue
  fi
  # Its address files would otherwise name whatever listens there next (status.sh checks too).
  rm -f "$pidfile" "$(data_dir "$dir/$m")/http.addr" "$(data_dir "$dir/$m")/member-http.addr"
done
exit $status
