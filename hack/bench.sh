#!/usr/bin/env bash
# `make bench`: the diamond saga run by the operator, Temporal, the sagaz library and the
# bare floor, side by side (hack/benchmarks/bench). Starts (or reuses) the local cluster and
# Kafka, its own PostgreSQL, and builds the Temporal CLI once per machine (hack/temporal.sh).
#
#   hack/bench.sh [--quick] [--profile] [python -m bench arguments]
# Writes docs/benchmarks/results.md and the table in README.md.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
export SAGAZ_BENCH_STARTED=${SAGAZ_BENCH_STARTED:-$(date +%s)}
"$REPO_ROOT/hack/deps.sh"
"$REPO_ROOT/hack/venv.sh"
"$REPO_ROOT/hack/temporal.sh" path >/dev/null
export PYTHONPATH=$REPO_ROOT/hack/benchmarks:$REPO_ROOT/tests${PYTHONPATH:+:$PYTHONPATH}
exec "$REPO_ROOT/.venv/bin/python" -m bench --command "${BENCH_COMMAND:-hack/bench.sh $*}" "$@"
