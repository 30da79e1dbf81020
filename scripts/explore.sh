#!/usr/bin/env bash
# Set up, then open JupyterLab on the quick-start notebook with the explorer on the shipped
# reference agent. Headless: prints the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/rlvision explore "$@"
