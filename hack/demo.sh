#!/usr/bin/env bash
# The main job, from a fresh machine: bring up the local stack and show it.
source "$(dirname "$0")/lib.sh"
"$REPO_ROOT/hack/up.sh"
source "$SAGAZ_STATE/env"
echo
echo "\$ kubectl get nodes"
kubectl get nodes
echo
echo "The stack keeps running; use it with 'source .dev/env', stop it with 'make down'."
