# Shared helpers for the hack/ scripts. Source it; do not run it.
#
# Layout on disk:
#   $SAGAZ_CACHE   built binaries and jars, keyed by component and version, shared by every
#                  checkout on the machine (default ~/.cache/sagaz); never inside the repo.
#   $SAGAZ_STATE   the running local stack of this checkout: data dirs, logs, pid files,
#                  kubeconfig (default <repo>/.dev, git-ignored).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=hack/versions.sh
source "$REPO_ROOT/hack/versions.sh"
SAGAZ_CACHE=${SAGAZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sagaz}
SAGAZ_STATE=${SAGAZ_STATE:-$REPO_ROOT/.dev}
SAGAZ_HOST=127.0.0.1
mkdir -p "$SAGAZ_CACHE" "$SAGAZ_STATE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not become ready within ${seconds}s"
    sleep 0.2
  done
}

# start_daemon NAME COMMAND...: start COMMAND in the background, log to $SAGAZ_STATE/NAME.log,
# remember its pid in $SAGAZ_STATE/NAME.pid. A daemon that is already running is left alone.
start_daemon() {
  local name=$1; shift
  if daemon_running "$name"; then return 0; fi
  setsid "$@" >"$SAGAZ_STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$SAGAZ_STATE/$name.pid"
}

daemon_running() {
  local pidfile=$SAGAZ_STATE/$1.pid
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# stop_daemon NAME: TERM the process we started (by its pid, and only it), then KILL after 10 s.
stop_daemon() {
  local name=$1 pidfile=$SAGAZ_STATE/$1.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# free_port: a free TCP port on the loopback address.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
