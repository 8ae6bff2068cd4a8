#!/usr/bin/env bash
# First-GPU-day smoke test of the paper profile (what it runs and reports: benchmarks/gpu_smoke.py).
#   benchmarks/gpu_smoke.sh [--dry-run] [--out FILE] [other options of gpu_smoke.py]
# Uses the project's virtual environment (.venv) when present, else python3 on the PATH.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
cd "$repo"
export PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DVC_NO_ANALYTICS=1
exec "$python" benchmarks/gpu_smoke.py "$@"
