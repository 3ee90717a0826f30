"""The ablation studio: MILAN's three ideas, one factor at a time, in paired runs.

Arms: MILAN itself (CLIP targets + semantic masking + prompting decoder), each idea switched off
alone (pixel targets, random masking, the MAE decoder), and the MAE corner (all three off).
*Paired*: for a seed, every arm starts from the same initial student weights and sees the same
images, crops and mask noise (the engine seeds all three from the run's seed, not from what an
arm did before), so only the studied factor differs. Each run is scored on the frozen encoder by
kNN, a quick linear probe and the dense probe's mIoU, plus its final loss and time per step.

The effect of an idea is the paired difference MILAN - arm over seeds, reported with a 95 %
t-interval; it is called a difference only when the interval excludes 0. Finished runs are
reused (``result.json`` in each run folder), so a re-run continues where it stopped.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from scipy import stats

from milan_lab.config import get_config
from milan_lab.data.segmentation import SegScenes
from milan_lab.errors import ConfigError
from milan_lab.evaluation.dense import seg_probe
from milan_lab.evaluation.knn import knn_top1
from milan_lab.evaluation.probes import offline_features, quick_linear_probe
from milan_lab.factory.models import load_encoder
from milan_lab.jobs.pretrain import pretrain

BASELINE = "MILAN"
ARMS = {
    BASELINE: {},
    "pixel targets": {"target": "pixels"},
    "random masking": {"sampler": "random"},
    "MAE decoder": {"decoder": "mae"},
    "MAE (all three)": {"target": "pixels", "sampler": "random", "decoder": "mae"},
}
METRICS = ("knn", "linear", "miou", "final_loss", "ms_per_step")


def run_arm(preset: str, arm: str, seed: int, output_dir: str | Path, overrides: dict | None = None,
            eval_train: int = 1024, eval_val: int = 512, seg_train: int = 512, seg_val: int = 256,
            seg_steps: int = 200) -> dict:
    """Pretrain one arm for one seed and score it; reuses a finished run's ``result.json``."""
    out = Path(output_dir) / f"{arm.replace(' ', '_').replace('(', '').replace(')', '')}_s{seed}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = get_config("pretrain", preset, {**(overrides or {}), **ARMS[arm], "seed": seed, "knn_every": 0,
                                          "output_dir": str(out), "progress": False})
    t = time.perf_counter()
    summary = pretrain(cfg)
    ms_per_step = 1e3 * (time.perf_counter() - t) / max(1, summary["steps"])
    encoder = load_encoder(str(out), cfg.model)
    size = cfg.model.image_size
    train, val = offline_features(encoder, size, eval_train, eval_val, seed=seed)
    seg, _ = seg_probe(encoder, SegScenes("train", seg_train, size, seed), SegScenes("val", seg_val, size, seed),
                       len(SegScenes.classes), steps=seg_steps, seed=seed)
    row = {"arm": arm, "seed": seed, **ARMS[arm], "knn": knn_top1(train, val),
           "linear": quick_linear_probe(train, val, int(train[1].max()) + 1, seed=seed), "miou": seg["miou"],
           "final_loss": summary["final_loss"], "ms_per_step": ms_per_step, "steps": summary["steps"]}
    done.write_text(json.dumps(row, indent=1))
    return row


def run_ablation(preset: str, seeds=(0, 1, 2, 3, 4), output_dir: str = "outputs/ablation", overrides: dict | None = None,
                 arms=tuple(ARMS), **eval_sizes) -> list[dict]:
    """Every arm for every seed (seed-major, so stopping early leaves whole pairs); one row each."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ConfigError(f"unknown arm {unknown[0]!r}; known arms: {', '.join(ARMS)}")
    if not seeds or not arms:
        raise ConfigError(f"an ablation needs at least one seed and one arm (seeds={list(seeds)}, arms={list(arms)})")
    bad = {k: v for k, v in eval_sizes.items() if v < 1}
    if bad:
        raise ConfigError(f"bad value for {next(iter(bad))!r}: must be at least 1, got {next(iter(bad.values()))}")
    return [run_arm(preset, arm, seed, output_dir, overrides, **eval_sizes) for seed in seeds for arm in arms]


def t_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean of paired differences."""
    n = len(diffs)
    mean = statistics.mean(diffs)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(diffs) / n ** 0.5
    return mean, mean - half, mean + half


def summarise(rows: list[dict], metrics=METRICS) -> list[dict]:
    """Per arm: mean and std over seeds of each metric, and for every arm but MILAN the paired
    difference MILAN - arm with its 95 % interval (seeds present in both)."""
    by_arm: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    out = []
    for arm, runs in by_arm.items():
        row = {"arm": arm, "runs": len(runs)}
        for m in metrics:
            vals = [r[m] for r in runs.values()]
            row[m] = statistics.mean(vals)
            row[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            if arm != BASELINE and BASELINE in by_arm:
                seeds = sorted(set(runs) & set(by_arm[BASELINE]))
                diff, lo, hi = t_interval([by_arm[BASELINE][s][m] - runs[s][m] for s in seeds])
                row[f"{m}_milan_minus_arm"] = diff
                row[f"{m}_ci"] = (lo, hi)
                row[f"{m}_differs"] = bool(lo > 0 or hi < 0)  # NaN bounds (one seed) compare False
        out.append(row)
    return out


def markdown_tables(summary: list[dict], metrics=("knn", "linear", "miou")) -> str:
    """Two Markdown tables (what the README shows): per arm mean ± std over seeds (points), and
    per idea the paired difference MILAN - arm with its 95 % interval, * where it excludes 0."""
    names = {"knn": "kNN", "linear": "linear", "miou": "mIoU"}
    lines = ["| arm | runs | " + " | ".join(f"{names.get(m, m)} %" for m in metrics) + " | final loss | ms / step |",
             "| --- | --- | " + " | ".join("---" for _ in metrics) + " | --- | --- |"]
    for r in summary:
        cells = [f"{100 * r[m]:.1f} ± {100 * r[m + '_std']:.1f}" for m in metrics]
        lines.append(f"| {r['arm']} | {r['runs']} | " + " | ".join(cells)
                     + f" | {r['final_loss']:.3f} | {r['ms_per_step']:.0f} |")
    lines += ["", "| MILAN - arm (points, 95 % CI) | " + " | ".join(names.get(m, m) for m in metrics) + " |",
              "| --- | " + " | ".join("---" for _ in metrics) + " |"]
    for r in summary:
        if f"{metrics[0]}_ci" not in r:
            continue
        cells = []
        for m in metrics:
            lo, hi = r[f"{m}_ci"]
            cells.append(f"{100 * r[m + '_milan_minus_arm']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                         + (" *" if r[f"{m}_differs"] else ""))
        lines.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
