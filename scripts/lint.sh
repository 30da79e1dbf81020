#!/usr/bin/env bash
# The habits that keep the package tidy: ruff (lint + format check) and the TypeScript type
# check. scripts/test.sh runs this before the tests; the layering rule is a test
# (tests/test_layering.py). Fix formatting with: .venv/bin/ruff format . && .venv/bin/ruff check --fix .
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[lint] ruff check"
.venv/bin/ruff check --no-cache .
echo "[lint] ruff format --check"
.venv/bin/ruff format --no-cache --check .
echo "[lint] npm run typecheck"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent typecheck
echo "[lint] ok"
