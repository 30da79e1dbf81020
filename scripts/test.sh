#!/usr/bin/env bash
# Set up everything the tests need, then run the whole test suite (unit, engine, browser,
# JupyterLab/Notebook end-to-end and notebook execution).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
export PYTHONUNBUFFERED=1 RLVISION_NOTEBOOK_SMALL=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
