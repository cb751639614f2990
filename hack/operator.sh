#!/usr/bin/env bash
# Runs the operator from this checkout against the local stack, in the background, together
# with the demo shop participant (examples/shop.py on 127.0.0.1:18080) and one outbox relay
# worker publishing the operator's outbox (saga events) to the local Kafka, topic saga-events.
# (On the local cluster OutboxWorker pods are kwok's and run nothing, so the relay runs here.)
#
#   hack/operator.sh start   install the CRDs, start shop + operator + relay (kept if running)
#   hack/operator.sh stop    stop them, and the examples' participants (by pid)
# The operator serves its read API on the loopback port make up chose (SAGAZ_API_URL in .dev/env),
# and the external metrics API the OutboxWorkers' HPAs scale on, registered as the APIService
# v1beta1.external.metrics.k8s.io through an ExternalName Service (localhost; see
# tests/harness/metrics_api.py for why); `stop` removes the APIService first, since one that
# nobody serves keeps namespaces from finishing their deletion.
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
  local metrics_port=$SAGAZ_STATE/external-metrics.port
  if ! daemon_running operator; then free_port >"$metrics_port"; fi
  SAGAZ_API_ADDRESS="127.0.0.1:$(cat "$SAGAZ_STATE/api.port")" \
  SAGAZ_EXTERNAL_METRICS_ADDRESS="127.0.0.1:$(cat "$metrics_port")" \
  SAGAZ_EXTERNAL_METRICS_CERT_FILE="$SAGAZ_STATE/pki/external-metrics.crt" \
  SAGAZ_EXTERNAL_METRICS_KEY_FILE="$SAGAZ_STATE/pki/external-metrics.key" \
    start_daemon operator "$REPO_ROOT/.venv/bin/sagaz-operator" --namespace '!e2e-*' --standalone \
      --liveness "http://127.0.0.1:$(cat "$port_file")/healthz"
  wait_for "the operator" 60 curl -fsS "http://127.0.0.1:$(cat "$port_file")/healthz"
  register_external_metrics "$(cat "$metrics_port")"
  local relay_port=$SAGAZ_STATE/relay.port
  if ! daemon_running relay; then free_port >"$relay_port"; fi
  SAGAZ_WORKER_ADDRESS="127.0.0.1:$(cat "$relay_port")" SAGAZ_OUTBOXWORKER_NAME=local \
    start_daemon relay "$REPO_ROOT/.venv/bin/sagaz-outbox-worker"
  log "operator and relay running (logs: .dev/operator.log, .dev/relay.log)"
}

# register_external_metrics PORT: the aggregator proxies external.metrics.k8s.io to PORT.
register_external_metrics() {
  kubectl apply --server-side --force-conflicts -f - >/dev/null <<MANIFEST
apiVersion: v1
kind: Namespace
metadata: {name: sagaz-system}
---
apiVersion: v1
kind: Service
metadata: {name: sagaz-external-metrics, namespace: sagaz-system}
spec: {type: ExternalName, externalName: localhost}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  service: {namespace: sagaz-system, name: sagaz-external-metrics, port: $1}
  caBundle: $(base64 -w0 "$SAGAZ_STATE/pki/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
MANIFEST
  if ! kubectl wait --for condition=Available --timeout=60s \
      apiservice/v1beta1.external.metrics.k8s.io >/dev/null 2>&1; then
    # E.g. an API server started before the aggregation-layer flags: it has no front-proxy
    # certificate, so the operator refuses it. Leave no unavailable APIService behind.
    kubectl delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found >/dev/null
    log "warning: the API server cannot reach the external metrics API (HPAs report" \
      "FailedGetExternalMetric); restart the stack with: make down && make up"
  fi
}

stop() {
  if [[ -f $SAGAZ_STATE/env ]]; then
    source "$SAGAZ_STATE/env"
    kubectl delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found --request-timeout=10s >/dev/null 2>&1 || true
  fi
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
