#!/usr/bin/env bash
# Installs the system packages the local stack needs, when they are missing (Debian/Ubuntu):
# openssl and curl (cluster certificates, health checks), a Java runtime and Maven (Kafka),
# the PostgreSQL server, Python's venv module, and Chromium (the web UI's browser tests drive
# Debian's headless build through Playwright; Playwright's own browser download is not used). Go (1.24+) builds the cluster binaries and is not installed here:
# Debian's own Go is too old for Kubernetes 1.34.
source "$(dirname "$0")/lib.sh"

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    die "missing system packages; install them with: sudo apt-get install -y ${missing[*]}"
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
