#!/usr/bin/env bash
# Pretraining-step throughput, stage split and MFU for the offline default and ViT-B/16 (random weights).
# On a GPU machine: bash benchmarks/pretrain_step.sh --device cuda
set -euo pipefail
milan-lab bench milan_vit-tiny-p8_offline --steps 10 "$@"
milan-lab bench milan_vit-base-p16_16xb256-amp-coslr-400e_in1k --steps 3 --batch-size 8 "$@"
