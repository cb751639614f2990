#!/usr/bin/env bash
# Prometheus and promtool for the alert and dashboard tests (tests/integration/test_alerts.py,
# tests/e2e/test_dashboard.py): never needed by the operator itself. Built once per machine
# from the Go module proxy into the cache, like the cluster binaries (hack/tools.sh):
#   $SAGAZ_CACHE/bin/prometheus-<version>/{prometheus,promtool}
# The Go module's v0.3xx.y tags follow Prometheus 3.xx.y. Built without the `builtinassets`
# tag, the server has no embedded web UI (its HTTP API, which the tests use, is complete) and
# the build needs no Node.js. Measured here: 22 min on 2 cores shared with other builds
# (8.6 min of CPU), once per machine.
#
#   hack/prometheus.sh path       print the directory holding both binaries, building first
#   hack/prometheus.sh promtool   print promtool's path, building first
source "$(dirname "$0")/lib.sh"

target=$SAGAZ_CACHE/bin/prometheus-$PROMETHEUS_VERSION
module=github.com/prometheus/prometheus

build() {
  local started=$SECONDS ticker
  command -v go >/dev/null ||
    die "Go is needed to build Prometheus $PROMETHEUS_VERSION (https://go.dev/dl)"
  log "building Prometheus and promtool $PROMETHEUS_VERSION from the Go module proxy (once per machine)"
  ( while sleep 30; do log "  ... still building prometheus ($((SECONDS - started))s)"; done ) &
  ticker=$!
  rm -rf "$target.tmp"; mkdir -p "$target.tmp"
  if ! CGO_ENABLED=0 GOBIN=$target.tmp GOFLAGS=-trimpath nice -n 10 \
       go install -ldflags "-s -w" \
         "$module/cmd/prometheus@$PROMETHEUS_VERSION" "$module/cmd/promtool@$PROMETHEUS_VERSION" >&2; then
    kill "$ticker" 2>/dev/null; die "building Prometheus failed"
  fi
  kill "$ticker" 2>/dev/null || true
  rm -rf "$target"; mv "$target.tmp" "$target"
  log "built Prometheus and promtool in $((SECONDS - started))s"
}

ensure() { [[ -x $target/prometheus && -x $target/promtool ]] || build; }

case ${1:-} in
  path) ensure; echo "$target" ;;
  promtool) ensure; echo "$target/promtool" ;;
  *) die "usage: $0 path|promtool" ;;
esac
