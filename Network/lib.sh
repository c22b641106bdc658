# Shared by the start, stop and status scripts (sourced, not run).

# Prints the pid in PIDFILE if that process is alive and is the node started with MARK on its
# command line (its config or data directory); a pid file left by a crash or a reboot, whose
# pid now belongs to another process, prints nothing.
running_pid() {
  local pidfile="$1" mark="$2" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  case "$pid" in ''|*[!0-9]*) return 0 ;; esac
  kill -0 "$pid" 2>/dev/null || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark" || return 0
  echo "$pid"
}

# Sends SIGNAL to PID and waits up to SECONDS for it to exit; fails if it is still alive.
stop_pid() {
  local pid="$1" signal="$2" seconds="$3"
  kill -"$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# Fails with a message naming what is missing when a command the scripts use is not installed.
require_commands() {
  local missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: ${missing[*]} not installed (run bash Network/install-deps.sh)" >&2
    exit 1
  fi
}

# Fails naming the member when an argument is not one of the local network's members (a typo
# such as bank_b would otherwise read as "not running").
check_members() {
  local m
  for m in "$@"; do
    case " $CREDITLEDGER_LOCAL_MEMBERS " in
      *" $m "*) ;;
      *) echo "error: $m is not a member of the local network (members: $CREDITLEDGER_LOCAL_MEMBERS)" >&2; exit 1 ;;
    esac
  done
}

# Prints the data directory that MEMBER_DIR/node.json names (`data_dir`, relative to that
# directory unless absolute; `data` when the config does not say), so the scripts find the
# node's address files after an operator moved its data elsewhere.
data_dir() {
  local member_dir="$1" d
  d="$(sed -n 's/.*"data_dir"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$member_dir/node.json" 2>/dev/null | head -n 1)"
  [ -n "$d" ] || d="data"
  case "$d" in /*) echo "$d" ;; *) echo "$member_dir/$d" ;; esac
}
