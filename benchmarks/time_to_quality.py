"""Time to a useful encoder: a reference recipe against the current default (or candidates),
in one run on one machine (machines of one kind differ by up to 7x, so only a same-run ratio
means anything).

    python benchmarks/time_to_quality.py [--target 0.60] [--out outputs/bench/ttq] [--candidate JSON ...]

For each recipe it prints the steps, images, training FLOPs (teacher forward + 3x student
forward per image, from ``milan-lab info``) and wall-clock up to the first kNN evaluation at or
above the target (validation, 8 shape classes, k=20), and the final kNN. kNN is evaluated at the
end of every epoch in every recipe; its time counts, as it does for a user.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from milan_lab.cli import OneLineParser
from milan_lab.config import get_config
from milan_lab.jobs.pretrain import pretrain
from milan_lab.errors import ConfigError
from milan_lab.tools.info import model_info

PRESET = "milan_vit-tiny-p8_offline"
# The reference recipe: 6 epochs x 12,800 scenes at batch 128, random crops, one masked view per teacher
# pass, scenes rendered anew every epoch.
REFERENCE = dict(epochs=6, warmup_epochs=1, batch_size=128, base_lr=1.5e-3, offline_size=12800, masks_per_image=1,
                 offline_cache_mb=0, teacher_cache=False, min_crop_scale=0.2)


def run(name: str, overrides: dict, out: Path, target: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cfg = get_config("pretrain", PRESET, {**overrides, "output_dir": str(out), "progress": False, "knn_every": 1})
    t = time.perf_counter()
    summary = pretrain(cfg)
    wall = time.perf_counter() - t
    history = json.loads((out / "metrics.json").read_text())["history"]
    evals = [r for r in history if "knn_acc" in r]
    hit = next((r for r in evals if r["knn_acc"] >= target), None)
    info = model_info(PRESET)
    per_image, teacher = info["gflops_pretrain_step_per_image"], info["gflops_teacher"]
    k = cfg.model.masks_per_image

    def at(row):
        # k student passes (forward + backward ~ 3x forward) per image; a teacher pass per image,
        # or with the teacher cache one per training scene, all at the first step
        steps = row["step"]
        images = steps * cfg.batch_size
        teacher_passes = cfg.offline_size if cfg.teacher_cache else images
        tflops = (teacher_passes * teacher + images * k * (per_image - teacher)) / 1e3
        return {"steps": steps, "images": images, "tflops": tflops, "wall_s": row["elapsed_s"], "knn": row["knn_acc"]}
    return {"recipe": name, "overrides": overrides, "batch_size": cfg.batch_size, "masks_per_image": k,
            "teacher_cache": cfg.teacher_cache,
            "first_at_target": at(hit) if hit else None, "final": at(evals[-1]), "final_knn": summary["knn_acc"], "total_wall_s": wall,
            "knn_curve": [(r["step"], round(r["elapsed_s"], 1), round(r["knn_acc"], 4)) for r in evals]}


def parse_candidates(texts: list[str]) -> list[tuple[str, dict]]:
    """Each --candidate as (name, overrides), every one checked as a full config before any training."""
    candidates = []
    for i, text in enumerate(texts):
        name = f"candidate {i + 1}"
        try:
            over = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--candidate {i + 1}: not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
        if not isinstance(over, dict):
            raise ConfigError(f"--candidate {i + 1}: expected a JSON object of options, got {text!r}")
        try:
            get_config("pretrain", PRESET, over)
        except ConfigError as e:
            raise ConfigError(f"--candidate {i + 1}: {e}") from None
        candidates.append((name, over))
    return candidates or [("current default", {})]


def main(argv=None) -> int:
    p = OneLineParser(prog="time_to_quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", type=float, default=0.60)
    p.add_argument("--out", default="outputs/bench/ttq")
    p.add_argument("--candidate", action="append", default=[],
                   help="JSON overrides of the current preset to try instead of it as is (repeatable)")
    args = p.parse_args(argv)
    try:
        if not 0 < args.target <= 1:
            raise ConfigError(f"--target: a kNN accuracy in (0, 1], got {args.target}")
        candidates = parse_candidates(args.candidate)
    except ConfigError as e:
        print(f"time_to_quality: error: {e}", file=sys.stderr)
        return 2
    results = [run(name, over, Path(args.out) / name.replace(" ", "_"), args.target) for name, over in candidates]
    results.insert(0, run("reference", REFERENCE, Path(args.out) / "reference", args.target))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; target kNN top-1 {args.target:.0%}")
    print(f"{'recipe':<18} {'steps':>6} {'images':>8} {'TFLOP':>7} {'wall s':>7} {'kNN':>6}   final kNN   total s")
    for r in results:
        h = r["first_at_target"]
        cells = (f"{h['steps']:>6} {h['images']:>8} {h['tflops']:>7.1f} {h['wall_s']:>7.0f} {h['knn']:>6.3f}" if h
                 else f"{'not reached':>38}")
        print(f"{r['recipe']:<18} {cells}   {r['final_knn']:.3f}       {r['total_wall_s']:.0f}")
    a = results[0]["first_at_target"]
    for r in results[1:]:
        if a and r["first_at_target"]:
            print(f"wall-clock to the target: {r['recipe']} / reference = {r['first_at_target']['wall_s'] / a['wall_s']:.2f}")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
