#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline, plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${PRODCAT_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$VENV/bin/ruff" check prodcat_pipeline tests bench
"$VENV/bin/python" -m pytest "$@"
