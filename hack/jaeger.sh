#!/usr/bin/env bash
# Jaeger (its v2 binary, built on the OpenTelemetry Collector) as the real OTLP receiver the
# tracing tests export to and read back from. Built once per machine from the Go module proxy
# into the cache, like the cluster binaries (hack/tools.sh). Its go.mod has a replace directive,
# which `go install module@version` refuses, so the module's source is fetched from the proxy
# (`go mod download`) and built as the main module, with its own go.sum:
#   $SAGAZ_CACHE/bin/jaeger-<version>/jaeger
# The module as the proxy serves it embeds no UI assets (the binary serves a placeholder page);
# the query API, which is all the tests use, is complete.
#
#   hack/jaeger.sh path     print the binary's path, building it first if it is missing
#   hack/jaeger.sh config   print the path of its configuration (hack/jaeger/config.yaml): OTLP
#                           HTTP in, in-memory storage, the query API; ports from the environment
#                           (JAEGER_OTLP_HTTP_PORT, JAEGER_QUERY_PORT, JAEGER_QUERY_GRPC_PORT,
#                           JAEGER_HEALTH_PORT), all on 127.0.0.1
source "$(dirname "$0")/lib.sh"

target=$SAGAZ_CACHE/bin/jaeger-$JAEGER_VERSION

build() {
  local started=$SECONDS ticker
  command -v go >/dev/null ||
    die "Go is needed to build Jaeger $JAEGER_VERSION (https://go.dev/dl)"
  log "building Jaeger $JAEGER_VERSION from the Go module proxy (once per machine)"
  ( while sleep 30; do log "  ... still building jaeger ($((SECONDS - started))s)"; done ) &
  ticker=$!
  rm -rf "$target.tmp"; mkdir -p "$target.tmp"
  local src
  if ! src=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" |
                python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'); then
    kill "$ticker" 2>/dev/null; die "fetching Jaeger $JAEGER_VERSION from the Go module proxy failed"
  fi
  cp -r "$src" "$target.tmp/src" && chmod -R u+w "$target.tmp/src"
  if ! (cd "$target.tmp/src" && CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod -buildvcs=false" \
        go build -ldflags "-s -w" -o "$target.tmp/jaeger" ./cmd/jaeger >&2); then
    kill "$ticker" 2>/dev/null; die "building Jaeger failed"
  fi
  kill "$ticker" 2>/dev/null || true
  rm -rf "$target.tmp/src" "$target"; mv "$target.tmp" "$target"
  log "built Jaeger in $((SECONDS - started))s"
}

case ${1:-} in
  path) [[ -x $target/jaeger ]] || build; echo "$target/jaeger" ;;
  config) echo "$REPO_ROOT/hack/jaeger/config.yaml" ;;
  *) die "usage: $0 path|config" ;;
esac
