#!/usr/bin/env bash
# Stops everything `make up` started (by pid), keeping data for a fast next start.
# With --purge, also deletes the data, certificates and kubeconfigs.
source "$(dirname "$0")/lib.sh"

"$REPO_ROOT/hack/operator.sh" stop
"$REPO_ROOT/hack/kafka.sh" stop
"$REPO_ROOT/hack/postgres.sh" stop
"$REPO_ROOT/hack/cluster.sh" down
if [[ ${1:-} == --purge ]]; then
  "$REPO_ROOT/hack/postgres.sh" destroy
  "$REPO_ROOT/hack/cluster.sh" reset
  rm -rf "$SAGAZ_STATE/kafka" "$SAGAZ_STATE/env"
fi
log "local stack stopped"
