#!/usr/bin/env bash
# Rebuild the offline models shipped in milan_lab/assets from the presets' defaults, in one go:
#   the pretraining model: `milan-lab pretrain` with milan_vit-tiny-p8_offline's defaults (seed 0), as
#     notebooks/pretrain.ipynb trains it;
#   the classifier: `milan-lab finetune` from that run with the fine-tuning defaults;
#   the dense probe the app's Segmentation tab uses, trained on the shipped (fp16) pretraining model.
# About 20 minutes on a 2-core CPU. Run folders go to the git-ignored DIR (default outputs/ship).
#
#     bash scripts/ship_offline.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/ship}
assets=milan_lab/assets
export HF_HUB_OFFLINE=1

milan-lab pretrain output_dir="$out/pretrain"
python scripts/ship_model.py "$out/pretrain" "$assets/milan_tiny_offline.safetensors"
milan-lab finetune checkpoint="$out/pretrain" output_dir="$out/finetune"
python scripts/ship_model.py "$out/finetune" "$assets/milan_tiny_offline_ft.safetensors"
# a shipped model's probe is never written into the package by seg-probe itself: trained beside the run, then copied
milan-lab seg-probe "$assets/milan_tiny_offline.safetensors" --out "$out/milan_tiny_offline.seg_probe.safetensors"
cp "$out/milan_tiny_offline.seg_probe.safetensors" "$assets/milan_tiny_offline.seg_probe.safetensors"
