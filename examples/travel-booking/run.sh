#!/usr/bin/env bash
# The travel-booking example in one command: the local stack and the operator (as make demo
# starts them), the travel participant on 127.0.0.1:18082, then two trips — one booked, one
# whose hotel is full and whose flight and car are cancelled in parallel. `make down` stops it.
source "$(dirname "$0")/../../hack/lib.sh"
"$REPO_ROOT/hack/up.sh"
"$REPO_ROOT/hack/operator.sh" start
source "$SAGAZ_STATE/env"
cd "$REPO_ROOT/examples/travel-booking"
TRAVEL=("$REPO_ROOT/.venv/bin/python" -u travel.py)

kubectl delete saga trip-lisbon trip-overbooked --ignore-not-found --wait >/dev/null
start_daemon travel "${TRAVEL[@]}" --port 18082
wait_for "the travel participant" 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/18082'
kubectl apply -f definition.yaml -f trip.yaml -f trip-hotel-full.yaml
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded saga/trip-lisbon --timeout=120s >/dev/null
kubectl wait --for=jsonpath='{.status.phase}'=Compensated saga/trip-overbooked --timeout=120s \
  >/dev/null
printf '\n$ kubectl get sagas trip-lisbon trip-overbooked\n'
kubectl get sagas trip-lisbon trip-overbooked
for saga in trip-lisbon trip-overbooked; do
  printf '\n$ kubectl get saga %s   (steps)\n' "$saga"
  kubectl get saga "$saga" -o jsonpath='{range .status.steps[*]}{.name}{"\t"}{.phase}{"\t"}{.attempts}{"\n"}{end}'
done
printf '\nBookings and e-mails (the participant'"'"'s tables):\n'; "${TRAVEL[@]}" --show
printf '\nWhat the participant saw (.dev/travel.log):\n'; tail -n 14 "$SAGAZ_STATE/travel.log"
