#!/usr/bin/env bash
# The test suite: offline, CPU only, about 17 minutes on 2 cores (474 tests; the notebooks and the ablation are the slowest).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=agg
exec "${PYTHON:-python3}" -m pytest -q "$@"
