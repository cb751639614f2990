#!/usr/bin/env bash
# Runs the operator from this checkout against the local stack, in the background, together
# with the demo shop participant (examples/shop.py on 127.0.0.1:18080) and one outbox relay
# worker publishing the operator's outbox (saga events) to the local Kafka, topic saga-events.
# (On the local cluster OutboxWorker pods are kwok's and run nothing, so the relay runs here.)
#
#   hack/operator.sh start   install the CRDs, start shop + operator + relay (kept if running)
#   hack/operator.sh stop    stop them, and the examples' participants (by pid)
# The operator serves its read API on the loopback port make up chose (SAGAZ_API_URL in .dev/env).
# Logs: .dev/operator.log, .dev/shop.log, .dev/relay.log
source "$(dirname "$0")/lib.sh"

start() {
  [[ -f $SAGAZ_STATE/env ]] || die "the local stack is not up: run make up"
  source "$SAGAZ_STATE/env"
  kubectl apply --server-side --force-conflicts -f "$REPO_ROOT/crds/" >/dev/null
  kubectl wait --for condition=established --timeout=60s -f "$REPO_ROOT/crds/" >/dev/null
  start_daemon shop "$REPO_ROOT/.venv/bin/python" -u "$REPO_ROOT/examples/shop.py" --port 18080 \
    --database-url "$SAGAZ_DATABASE_URL"
  local port_file=$SAGAZ_STATE/operator.port
  if ! daemon_running operator; then free_port >"$port_file"; fi
  # Every namespace but the test suite's own (e2e-*), which its own operators serve.
  [[ -s $SAGAZ_STATE/api.port ]] || free_port >"$SAGAZ_STATE/api.port"  # a stack from before
  SAGAZ_API_ADDRESS="127.0.0.1:$(cat "$SAGAZ_STATE/api.port")" \
    start_daemon operator "$REPO_ROOT/.venv/bin/sagaz-operator" --namespace '!e2e-*' --standalone \
      --liveness "http://127.0.0.1:$(cat "$port_file")/healthz"
  wait_for "the operator" 60 curl -fsS "http://127.0.0.1:$(cat "$port_file")/healthz"
  local relay_port=$SAGAZ_STATE/relay.port
  if ! daemon_running relay; then free_port >"$relay_port"; fi
  SAGAZ_WORKER_ADDRESS="127.0.0.1:$(cat "$relay_port")" SAGAZ_OUTBOXWORKER_NAME=local \
    start_daemon relay "$REPO_ROOT/.venv/bin/sagaz-outbox-worker"
  log "operator and relay running (logs: .dev/operator.log, .dev/relay.log)"
}

stop() {
  # The examples' participants (examples/*/run.sh start them), then the demo's own.
  stop_daemon bank
  stop_daemon travel
  stop_daemon relay
  stop_daemon operator
  stop_daemon shop
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
