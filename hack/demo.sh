#!/usr/bin/env bash
# The main job, from a fresh machine: bring up the local stack, run the operator, run the
# example sagas (HTTP steps, and HTTP + Job steps; each once succeeding, once compensated)
# against the demo shop (examples/shop.py, on sagaz_participant), show them with kubectl, and
# print one saga's events from Kafka through a consumer inbox (hack/saga-events.py).
source "$(dirname "$0")/lib.sh"
"$REPO_ROOT/hack/up.sh"
"$REPO_ROOT/hack/operator.sh" start
source "$SAGAZ_STATE/env"
cd "$REPO_ROOT"

show() { printf '\n$ %s\n' "$*"; "$@"; }

# A rerun starts the example sagas afresh.
kubectl delete saga order-1001 order-1002 order-2001 order-2002 order-1003 --ignore-not-found \
  --wait >/dev/null
show kubectl apply -f examples/order-saga/definition.yaml -f examples/mixed-saga/definition.yaml
show kubectl apply -f examples/order-saga/saga.yaml -f examples/order-saga/saga-declined.yaml
show kubectl apply -f examples/mixed-saga/saga.yaml -f examples/mixed-saga/saga-declined.yaml
for saga in order-1001 order-2001; do
  kubectl wait --for=jsonpath='{.status.phase}'=Succeeded "saga/$saga" --timeout=120s >/dev/null
done
for saga in order-1002 order-2002; do
  kubectl wait --for=jsonpath='{.status.phase}'=Compensated "saga/$saga" --timeout=120s >/dev/null
done
show kubectl get sagadefinitions
show kubectl get sagas
show kubectl get jobs -l sagaz.io/saga=order-2002
show kubectl get saga order-1002 \
  -o jsonpath='{range .status.steps[*]}{.name}{"\t"}{.phase}{"\t"}{.error}{"\n"}{end}'
printf '\n$ kubectl describe saga order-1002   (events)\n'
kubectl describe saga order-1002 | sed -n '/^Events:/,$p'
printf '\n# The same story reached Kafka through the outbox (topic saga-events, key = saga uid),\n'
printf '# read by a consumer on sagaz_participant'"'"'s inbox (each event printed once, ever):\n'
uid=$(kubectl get saga order-1002 -o jsonpath='{.metadata.uid}')
"$REPO_ROOT/.venv/bin/python" "$REPO_ROOT/hack/saga-events.py" "$uid"

printf '\n# A human in the loop: the warehouse is down while order-1003 (declined) is undone.\n'
outage() {
  curl -fsS -X POST -H 'Content-Type: application/json' http://127.0.0.1:18080/admin/outage \
    -d "{\"path\": \"/inventory/release\", \"down\": $1}" >/dev/null
}
outage true
show kubectl apply -f examples/order-saga/saga-stuck-release.yaml
kubectl wait --for=jsonpath='{.status.phase}'=CompensationFailed saga/order-1003 --timeout=120s \
  >/dev/null
outage false   # the warehouse is back
show kubectl sagaz get
show kubectl sagaz get order-1003
show kubectl sagaz retry order-1003 --wait
show kubectl sagaz history order-1003

cat <<DONE

The web UI (read-only; sagas live, each saga's graph, timeline and journal):
  $SAGAZ_API_URL/
  e.g. the compensated one: $SAGAZ_API_URL/#/sagas/default/order-1002

Everything keeps running: \`source .dev/env\`, then try \`kubectl get sagas -w\` while you
apply your own sagas, and \`kubectl sagaz --help\`. \`make down\` stops it all.
DONE
