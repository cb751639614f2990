#!/usr/bin/env bash
# The Temporal CLI (its dev server) for `make bench`: never needed by the operator or its tests
# other than the benchmark's smoke test. Built once per machine from the Go module proxy
# (about 3 minutes on 2 cores) into the cache, like the cluster binaries (hack/tools.sh):
#   $SAGAZ_CACHE/bin/temporal-<version>/temporal
#
#   hack/temporal.sh path     print the binary's path, building it first if it is missing
source "$(dirname "$0")/lib.sh"

target=$SAGAZ_CACHE/bin/temporal-$TEMPORAL_CLI_VERSION

build() {
  local started=$SECONDS ticker
  command -v go >/dev/null ||
    die "Go is needed to build the Temporal CLI $TEMPORAL_CLI_VERSION (https://go.dev/dl)"
  log "building the Temporal CLI $TEMPORAL_CLI_VERSION from the Go module proxy (once per machine)"
  ( while sleep 30; do log "  ... still building temporal ($((SECONDS - started))s)"; done ) &
  ticker=$!
  rm -rf "$target.tmp"; mkdir -p "$target.tmp"
  if ! CGO_ENABLED=0 GOBIN=$target.tmp GOFLAGS=-trimpath \
       go install -ldflags "-s -w" "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION" >&2; then
    kill "$ticker" 2>/dev/null; die "building the Temporal CLI failed"
  fi
  kill "$ticker" 2>/dev/null || true
  rm -rf "$target"; mv "$target.tmp" "$target"
  log "built the Temporal CLI in $((SECONDS - started))s"
}

case ${1:-} in
  path) [[ -x $target/temporal ]] || build; echo "$target/temporal" ;;
  *) die "usage: $0 path" ;;
esac
