#!/usr/bin/env bash
# Creates .venv and installs the package (editable) with its dev, participant and tracing
# extras and the benchmark peers (extra `bench`: `make bench` and its smoke test; never a runtime
# dependency). Re-installs only when the package metadata in pyproject.toml changed, so calling
# it before every command costs nothing.
source "$(dirname "$0")/lib.sh"

VENV=$REPO_ROOT/.venv
PYTHON=${PYTHON:-python3}
stamp=$VENV/.installed-from
# Only what pip installs counts: the [project] and [build-system] tables.
want=$(python3 -c 'import hashlib, json, sys, tomllib
doc = tomllib.load(open(sys.argv[1], "rb"))
key = json.dumps([doc.get("project"), doc.get("build-system")], sort_keys=True)
print(hashlib.sha256(key.encode()).hexdigest())' "$REPO_ROOT/pyproject.toml")

if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed (found $("$PYTHON" --version 2>&1))"
log "installing the package and its dev tools into .venv"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$REPO_ROOT[dev,participant,tracing,bench]"
echo "$want" >"$stamp"
