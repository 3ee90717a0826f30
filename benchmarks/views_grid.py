"""Why fixed views change where the class token looks: a grid of short pretraining runs, each probed
for where its class token looks and for what its features hold.

    python benchmarks/views_grid.py [--steps 300] [--seeds 0 1 2] [--preset milan_vit-tiny-p8_offline]
                                    [--out outputs/bench/views_grid]

Arms: {fixed full-scene views, random crops (scale 0.2-1)} x {loss on all tokens, loss on the masked
patches and the class token}, all without the teacher cache so that only the views and the loss
differ, plus the K-view teacher cache (4 fixed random crops per scene with their cached targets, one
drawn per epoch) with the loss on all tokens. Each run is scored by the attention metric (object
ratio, agreement with the teacher; ``milan-lab attention``), kNN and the quick linear probe on the
class token and on mean-pooled patch tokens, and the dense probe. Runs are reused from their
``result.json``; a JSON record of every run and the summary goes to ``--out``/record.json, rewritten
(atomically) after every finished run (``complete``: false until the last, which adds the summary).
Every option, each run's config and the record's place are checked before the first run.

Declared before any result was read: two primary metrics, the object ratio (where the class token looks) and the
linear probe on mean-pooled patches (what the features hold, favouring no loss's supervision of the class
token); every arm is compared with ``fixed views, all tokens`` (the current default's views and loss;
its teacher cache changes only when the teacher runs), paired by seed, Holm over arms x primaries; the
other metrics are secondary (raw p). Decision rule for the offline default: keep the current default
unless an arm is better on the linear probe after adjustment and not worse on the object ratio after
adjustment; among such arms, the best linear probe.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the jobs load when the work starts.
from milan_lab.cli import OneLineParser, nonnegative_int, output_folder, positive_int, preset_name
from milan_lab.config import get_config
from milan_lab.errors import MilanLabError
from milan_lab.io.targets import check_writable

CROPS = {"teacher_cache": False, "fixed_views": False, "min_crop_scale": 0.2}
FIXED = {"teacher_cache": False, "fixed_views": True}
ARMS = {
    "fixed views, all tokens": {**FIXED, "loss_on": "all"},
    "fixed views, masked + cls": {**FIXED, "loss_on": "masked+cls"},
    "random crops, all tokens": {**CROPS, "loss_on": "all"},
    "random crops, masked + cls": {**CROPS, "loss_on": "masked+cls"},
    "4 cached crops, all tokens": {"teacher_cache": True, "cache_views": 4, "min_crop_scale": 0.2, "loss_on": "all"},
}
BASELINE = "fixed views, all tokens"
METRICS = ("object_ratio", "linear_mean", "agreement", "knn_cls", "knn_mean", "linear_cls", "miou")
PRIMARY = ("object_ratio", "linear_mean")


def summarise_grid(rows: list[dict]) -> list[dict]:
    """Per arm the means over seeds and the paired differences to the baseline, Holm over the primaries."""
    from milan_lab.tools.ablation import summarise
    return summarise(rows, METRICS, baseline=BASELINE, family=PRIMARY, diff_key="baseline_minus_arm", extra=())


def decide(summary: list[dict]) -> str:
    """The declared rule: the baseline unless an arm beats it on the linear probe and does not lose on
    the object ratio, both after Holm's adjustment (differences are baseline - arm)."""
    better = [r for r in summary if r.get("linear_mean_differs") and r["linear_mean_baseline_minus_arm"] < 0
              and not (r.get("object_ratio_differs") and r["object_ratio_baseline_minus_arm"] > 0)]
    return max(better, key=lambda r: r["linear_mean"])["arm"] if better else BASELINE


def arm_config(preset: str, arm: str, seed: int, steps: int, out: Path):
    return get_config("pretrain", preset, {**ARMS[arm], "seed": seed, "max_steps": steps, "knn_every": 0,
                                           "output_dir": str(out), "progress": False})


def run_arm(preset: str, arm: str, seed: int, steps: int, out: Path) -> dict:
    from milan_lab.data.segmentation import SegScenes
    from milan_lab.evaluation.attention import encoder_attention_report
    from milan_lab.evaluation.dense import seg_probe
    from milan_lab.evaluation.knn import knn_top1
    from milan_lab.evaluation.probes import offline_features, quick_linear_probe
    from milan_lab.factory.models import load_encoder, load_model
    from milan_lab.io.weights import atomic_write
    from milan_lab.jobs.pretrain import pretrain
    from milan_lab.tools.records import Timer
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = arm_config(preset, arm, seed, steps, out)
    with Timer() as clock:
        pretrain(cfg)
    model = load_model(str(out), task="pretrain", teacher="auto")
    randoms = [load_encoder("random", cfg.model, seed=k) for k in range(3)]
    attention = encoder_attention_report(model.encoder, model.teacher, 256, seed, randoms)
    size = cfg.model.image_size
    row = {"arm": arm, "seed": seed, "steps": steps, "train_wall_s": clock.seconds,
           "object_ratio": attention["encoder"]["object_ratio"]["mean"],
           "agreement": attention["encoder"]["agreement"]["mean"]}
    for pool in ("cls", "mean"):
        train, val = offline_features(model.encoder, size, 2048, 1024, pool=pool, seed=seed)
        row[f"knn_{pool}"] = knn_top1(train, val)
        row[f"linear_{pool}"] = quick_linear_probe(train, val, int(train[1].max()) + 1, seed=seed)
    row["miou"] = seg_probe(model.encoder, SegScenes("train", 1024, size, seed), SegScenes("val", 512, size, seed),
                            len(SegScenes.classes), steps=300, seed=seed)[0]["miou"]
    atomic_write(done, lambda tmp: tmp.write_text(json.dumps(row, indent=1)))
    return row


def main(argv=None) -> int:
    p = OneLineParser(prog="views_grid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=positive_int, default=300)
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", type=preset_name, default="milan_vit-tiny-p8_offline")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--out", type=output_folder, default="outputs/bench/views_grid")
    args = p.parse_args(argv)
    plan = [(arm, seed, Path(args.out) / f"{arm.replace(' ', '_').replace(',', '')}_s{seed}")
            for seed in args.seeds for arm in args.arms]
    try:  # every run's config and the record's place, before any training
        for arm, seed, out in plan:
            arm_config(args.preset, arm, seed, args.steps, out)
        record = check_writable(Path(args.out) / "record.json", "record")
    except MilanLabError as e:
        print(f"views_grid: error: {e}", file=sys.stderr)
        return 2
    from milan_lab.tools.ablation import markdown_tables
    from milan_lab.tools.records import Timer, matmul_peak_gflops, write_record
    peak = matmul_peak_gflops()  # once, before the runs: the record is rewritten after each of them
    base = {"steps": args.steps, "preset": args.preset, "arms": ARMS, "baseline": BASELINE, "metrics": list(METRICS),
            "primary": list(PRIMARY), "planned_runs": len(plan)}
    rows = []
    with Timer() as wall:
        for arm, seed, out in plan:
            rows.append(run_arm(args.preset, arm, seed, args.steps, out))
            if len(rows) < len(plan):  # the finished runs so far; the summary comes with the last one
                write_record(record, "views-grid", {**base, "rows": rows, "complete": False},
                             list(dict.fromkeys(r["seed"] for r in rows)), time.perf_counter() - wall.start, peak=peak)
    summary = summarise_grid(rows)
    print(markdown_tables(summary, METRICS, primary=PRIMARY, baseline=BASELINE, diff_key="baseline_minus_arm"))
    choice = decide(summary)
    print(f"\noffline default by the declared rule: {choice}")
    write_record(record, "views-grid", {**base, "rows": rows, "complete": True, "summary": summary, "choice": choice},
                 args.seeds, wall.seconds, peak=peak)
    print(f"record: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
