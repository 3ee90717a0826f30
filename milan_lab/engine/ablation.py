"""The ablation grid: target (pixels | clip) x sampler (random | semantic) x decoder (mae |
prompting), several seeds, a small pretraining budget each; every run is scored by kNN and a
quick linear probe on frozen features, and timed per step."""
from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

from milan_lab.config import get_config
from milan_lab.engine.evaluate import encoder_from, offline_features, quick_linear_probe
from milan_lab.engine.knn import knn_top1
from milan_lab.engine.pretrain import pretrain

GRID = {"target": ("pixels", "clip"), "sampler": ("random", "semantic"), "decoder": ("mae", "prompting")}


def run_ablation(preset: str, seeds=(0, 1, 2), output_dir: str = "outputs/ablation", overrides: dict | None = None,
                 eval_train: int = 1024, eval_val: int = 512, grid: dict | None = None) -> list[dict]:
    """One row per (target, sampler, decoder, seed): knn, linear, sec_per_step."""
    grid = grid or GRID
    rows = []
    for combo in itertools.product(*grid.values()):
        setting = dict(zip(grid, combo))
        for seed in seeds:
            name = "_".join(f"{v}" for v in combo) + f"_s{seed}"
            out = Path(output_dir) / name
            cfg = get_config("pretrain", preset, {**(overrides or {}), **setting, "seed": seed, "knn_every": 0,
                                                  "output_dir": str(out), "progress": False})
            t = time.perf_counter()
            summary = pretrain(cfg)
            sec_per_step = (time.perf_counter() - t) / max(1, summary["steps"])
            encoder = encoder_from(str(out), preset)
            train, val = offline_features(encoder, cfg.model.image_size, eval_train, eval_val, seed=seed)
            knn = knn_top1(train, val)
            linear = quick_linear_probe(train, val, int(train[1].max()) + 1, seed=seed)
            rows.append({**setting, "seed": seed, "knn": knn, "linear": linear, "sec_per_step": sec_per_step,
                         "final_loss": summary["final_loss"]})
    return rows


def summarise(rows: list[dict], keys=("target", "sampler", "decoder")) -> list[dict]:
    """Mean and standard deviation over seeds per setting."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for setting, rs in groups.items():
        row = dict(zip(keys, setting), runs=len(rs))
        for metric in ("knn", "linear", "sec_per_step"):
            vals = [r[metric] for r in rs]
            row[metric] = statistics.mean(vals)
            row[f"{metric}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out
