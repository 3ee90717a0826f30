"""Copy a run's final weights (fp16, plus its config) into milan_lab/assets for shipping.

    python scripts/ship_model.py runs/default milan_lab/assets/milan_tiny_offline.pt
    python scripts/ship_model.py runs/finetune milan_lab/assets/milan_tiny_offline_ft.pt
"""
import sys
from pathlib import Path

import torch

from milan_lab.engine.checkpoint import latest_checkpoint, load_checkpoint

run, dest = Path(sys.argv[1]), Path(sys.argv[2])
state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
weights = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
torch.save({"model": weights, "config": state["config"], "step": state["step"]}, dest)
print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB from {run} step {state['step']}")
