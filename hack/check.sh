#!/usr/bin/env bash
# Static checks: lint, formatting, strict types and the import layers of DESIGN.md §4.1.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/hack/venv.sh"
V=$REPO_ROOT/.venv/bin
log "ruff";          "$V/ruff" check operator participant tests examples hack/benchmarks
                     "$V/ruff" format --check --quiet operator participant tests examples hack/benchmarks
log "mypy --strict"; "$V/mypy" --no-error-summary
                     MYPYPATH=operator:tests "$V/mypy" --no-error-summary hack/benchmarks
log "import layers"; "$V/lint-imports" --no-cache >/dev/null || "$V/lint-imports" --no-cache
