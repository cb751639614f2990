#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it: static checks, then pytest. The tests start
# (or reuse) the local cluster and Kafka and a throw-away PostgreSQL themselves, and stop
# whatever they started. Extra arguments go to pytest, e.g. hack/test.sh -k outbox.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/hack/deps.sh"
"$REPO_ROOT/hack/check.sh"
"$REPO_ROOT/hack/tools.sh"
"$REPO_ROOT/hack/jaeger.sh" path >/dev/null  # the traces' receiver (tests/harness/jaeger.py)
"$REPO_ROOT/hack/prometheus.sh" path >/dev/null  # prometheus + promtool for the alert and dashboard tests
log "pytest"
exec "$REPO_ROOT/.venv/bin/pytest" -p no:cacheprovider "$@"
