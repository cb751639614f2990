#!/usr/bin/env bash
# The money-transfer example in one command: the local stack and the operator (as make demo
# starts them), the bank on 127.0.0.1:18081, then three transfers; prints the sagas and the
# balances. Rerunning starts from fresh accounts. `make down` stops it all.
source "$(dirname "$0")/../../hack/lib.sh"
"$REPO_ROOT/hack/up.sh"
"$REPO_ROOT/hack/operator.sh" start
source "$SAGAZ_STATE/env"
cd "$REPO_ROOT/examples/money-transfer"
BANK=("$REPO_ROOT/.venv/bin/python" -u bank.py)
ACCOUNTS=alice=1000,bob=500,carol=0

kubectl delete saga transfer-ok transfer-insufficient transfer-unknown-account \
  --ignore-not-found --wait >/dev/null
"${BANK[@]}" reset --accounts "$ACCOUNTS"
start_daemon bank "${BANK[@]}" serve --port 18081 --accounts "$ACCOUNTS"
wait_for "the bank" 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/18081'
printf '\nBalances before:\n'; "${BANK[@]}" balances
kubectl apply -f definition.yaml
kubectl apply -f transfer-ok.yaml -f transfer-insufficient.yaml -f transfer-unknown-account.yaml
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded saga/transfer-ok --timeout=120s >/dev/null
for saga in transfer-insufficient transfer-unknown-account; do
  kubectl wait --for=jsonpath='{.status.phase}'=Compensated "saga/$saga" --timeout=120s >/dev/null
done
printf '\n$ kubectl get sagas\n'
kubectl get sagas transfer-ok transfer-insufficient transfer-unknown-account
printf '\nBalances after (alice paid bob 300; the other two moved nothing):\n'
"${BANK[@]}" balances
printf '\nWhat the bank saw (.dev/bank.log):\n'; tail -n 8 "$SAGAZ_STATE/bank.log"
