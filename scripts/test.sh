#!/usr/bin/env bash
# The test suite: offline, CPU only, about 15 minutes on 2 cores (740 tests; the CLI, notebook and browser tests are the slowest).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False MPLBACKEND=agg
exec "${PYTHON:-python3}" -m pytest -q "$@"
