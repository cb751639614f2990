#!/usr/bin/env bash
# Brings up the whole local stack (idempotent): the package in .venv, the Kubernetes control
# plane, PostgreSQL and Kafka. Writes .dev/env for `source .dev/env`.
source "$(dirname "$0")/lib.sh"

started=$SECONDS
"$REPO_ROOT/hack/deps.sh"
"$REPO_ROOT/hack/venv.sh"
"$REPO_ROOT/hack/tools.sh"
"$REPO_ROOT/hack/cluster.sh" up
database_url=$("$REPO_ROOT/hack/postgres.sh" start)
kafka_servers=$("$REPO_ROOT/hack/kafka.sh" start)
# The port of the read API of the operator hack/operator.sh runs, chosen once per checkout.
[[ -s $SAGAZ_STATE/api.port ]] || free_port >"$SAGAZ_STATE/api.port"

cat >"$SAGAZ_STATE/env" <<ENV
# Written by \`make up\`: the local stack of this checkout. Use it with: source .dev/env
export KUBECONFIG=$SAGAZ_STATE/admin.kubeconfig
export SAGAZ_DATABASE_URL=$database_url
export SAGAZ_KAFKA_BOOTSTRAP_SERVERS=$kafka_servers
export SAGAZ_API_URL=http://127.0.0.1:$(cat "$SAGAZ_STATE/api.port")
export PATH=$SAGAZ_STATE/bin:$REPO_ROOT/.venv/bin:\$PATH
ENV
log "local stack up in $((SECONDS - started))s; use it with: source .dev/env"
