#!/usr/bin/env bash
# The GPU check (about 5 minutes on one H200; hard limit 8): prints one JSON object with the
# ViT-B/16 MILAN step in bf16 (eager and torch.compile), the JPEG-folder input pipeline with 16 workers
# against that step (does the data keep up; how many cores it needs), the offline default end to end on the GPU
# with its data pipeline alone, and a ViT-B/16 fine-tuning step; MFU against a bf16 matmul peak
# measured in the same run. Exits 2 with one line where there is no GPU. Options: see
# `python benchmarks/gpu_check.py --help` (e.g. --no-compile, --batch 128).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
exec timeout --signal=TERM --kill-after=10 480 "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
