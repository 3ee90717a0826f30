#!/usr/bin/env bash
# Re-execute every notebook with its defaults, headless; executed copies go to outputs/ (git-ignored).
# Order matters: finetune and linear_probe read outputs/pretrain.
# The tour, explore and segmentation run on the shipped model and an example scene; on your own run and picture:
#   papermill notebooks/tour.ipynb outputs/tour.ipynb -p checkpoint outputs/pretrain -p image photo.jpg
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=agg HF_HUB_OFFLINE=1
mkdir -p outputs
for nb in teacher pretrain finetune linear_probe segmentation explore tour ablation; do
  echo "== $nb"
  papermill --kernel python3 "notebooks/$nb.ipynb" "outputs/$nb.ipynb" "$@"
done
