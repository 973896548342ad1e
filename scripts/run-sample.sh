#!/usr/bin/env bash
# Set up (if needed) and run the whole pipeline on the bundled synthetic sample (pipeline.yaml):
# embed once, train linear/v2/v3, k-NN, then print one comparison table (also runs/sample/comparison.md/.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${PRODCAT_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$VENV/bin/prodcat" run --config pipeline.yaml --overwrite "$@"  # --overwrite: a second run replaces runs/sample
