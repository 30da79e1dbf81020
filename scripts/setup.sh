#!/usr/bin/env bash
# Idempotent set-up: .venv at the repository root with the CPU build of torch (CUDA where a GPU
# is present), procgen2, the package in editable mode with its dev and ray extras (the tests run
# the Ray engine too), and the JS bundle.
# Usage: bash scripts/setup.sh [--browser]   (--browser also installs Debian's chromium for tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null
if ! "$VPY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo "[setup] GPU found: installing torch (CUDA build)"
    "$VPY" -m pip install -q torch
  else
    echo "[setup] no GPU: installing the CPU build of torch"
    "$VPY" -m pip install -q torch==2.13.0
  fi
fi
if [ ! -f rlvision_widgets/widgets/static/explorer.js ] || [ -n "$(find js -newer rlvision_widgets/widgets/static/explorer.js -type f 2>/dev/null | head -1)" ]; then
  echo "[setup] building the JS bundle"
  if [ ! -d node_modules ]; then npm ci --no-audit --no-fund --loglevel=error; fi
  npm run --silent build
fi
echo "[setup] installing rlvision_widgets (editable, dev and ray extras)"
"$VPY" -m pip install -q -e ".[dev,ray]" 2>&1 | grep -v -E "^(WARNING: Location|  Location)" || true
"$VPY" -c "import rlvision_widgets, procgen, torch, ray" 2>/dev/null || { echo "[setup] install failed"; exit 1; }
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  echo "[setup] installing Debian's chromium for browser tests"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "[setup] done"
