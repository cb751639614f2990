#!/usr/bin/env bash
# The main job, from a fresh machine: bring up the local stack, run the operator, run two
# example sagas (one succeeds, one is compensated) and show them with kubectl.
source "$(dirname "$0")/lib.sh"
"$REPO_ROOT/hack/up.sh"
"$REPO_ROOT/hack/operator.sh" start
source "$SAGAZ_STATE/env"
cd "$REPO_ROOT"

show() { printf '\n$ %s\n' "$*"; "$@"; }

# A rerun starts the example sagas afresh.
kubectl delete saga order-1001 order-1002 --ignore-not-found --wait >/dev/null
show kubectl apply -f examples/order-saga/definition.yaml
show kubectl apply -f examples/order-saga/saga.yaml -f examples/order-saga/saga-declined.yaml
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded saga/order-1001 --timeout=120s >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Compensated saga/order-1002 --timeout=120s >/dev/null
show kubectl get sagadefinitions
show kubectl get sagas
show kubectl get saga order-1002 \
  -o jsonpath='{range .status.steps[*]}{.name}{"\t"}{.phase}{"\t"}{.error}{"\n"}{end}'
printf '\n$ kubectl describe saga order-1002   (events)\n'
kubectl describe saga order-1002 | sed -n '/^Events:/,$p'
cat <<'DONE'

Everything keeps running: `source .dev/env`, then try `kubectl get sagas -w` while you
apply your own sagas. `make down` stops it all.
DONE
