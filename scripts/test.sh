#!/usr/bin/env bash
# Set up everything the tests need, check lint/format/types (scripts/lint.sh), then run the whole
# test suite (unit, engine, layering, browser, JupyterLab/Notebook end-to-end, notebooks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
bash scripts/lint.sh
export PYTHONUNBUFFERED=1 RLVISION_NOTEBOOK_SMALL=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
