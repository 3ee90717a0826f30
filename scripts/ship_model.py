"""Copy a run's final weights (fp16, its config and task in the metadata) into milan_lab/assets for shipping.

    python scripts/ship_model.py outputs/pretrain milan_lab/assets/milan_tiny_offline.safetensors
    python scripts/ship_model.py outputs/finetune milan_lab/assets/milan_tiny_offline_ft.safetensors
"""
import sys
from pathlib import Path

from milan_lab.factory.models import checkpoint_task, read_checkpoint
from milan_lab.io.weights import save_weights

path, state = read_checkpoint(sys.argv[1])
dest = Path(sys.argv[2])
weights = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
save_weights(dest, weights, {**state["config"], "shipped_from_step": state.get("step")}, task=checkpoint_task(state, path))
print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB from {path}")
