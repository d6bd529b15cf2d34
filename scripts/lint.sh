#!/usr/bin/env bash
# Static checks as CI runs them: ruff (lint + format) over the repo, mypy --strict per package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check . --quiet
.venv/bin/ruff format --check --quiet .
for src in shared/src services/*/src; do
  .venv/bin/mypy "$src" --no-error-summary
done
echo "lint: ok"
