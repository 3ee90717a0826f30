"""Time to a useful encoder: a reference recipe, the same recipe with only its views changed, and
the current default (or candidates), over seeds, in one run on one machine (machines of one kind
differ by up to 7x, so only same-run ratios mean anything).

    python benchmarks/time_to_quality.py [--seeds 0 1] [--target 0.60] [--eval-every 25] [--val-size 2048]
                                         [--candidate JSON ...] [--out outputs/bench/ttq] [--record FILE]

Each run evaluates kNN (8 shape classes, k=20) every ``--eval-every`` steps on ``--val-size``
validation scenes; the time to the target is interpolated linearly between the last evaluation
below it and the first at or above it, on the training wall-clock (the evaluations' own time is
left out: they are far denser here than a user's run would make them). For each recipe it prints,
per seed, the training seconds, steps, images and training FLOPs (teacher forward + 3x student
forward per image, from ``milan-lab info``) at the target, and the final kNN; then, paired by seed,
each recipe's time to the target over the reference's, with its range over seeds. A JSON record
goes to ``--out``/record.json, rewritten (atomically) after every finished run, so that a stopped
study keeps what it measured (``complete`` says whether every planned run is in). Finished runs
are reused from their ``result.json`` (only if made with the same ``--target``, ``--eval-every`` and
``--val-size``; otherwise the script stops with one line), so seeds can be added later. Every option,
and every place it writes, is checked before the first run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the jobs load when the work starts.
from milan_lab.cli import OneLineParser, nonnegative_int, output_file, output_folder, positive_int
from milan_lab.config import get_config
from milan_lab.errors import ConfigError, MilanLabError
from milan_lab.io.targets import check_writable

PRESET = "milan_vit-tiny-p8_offline"
# The reference recipe: 6 epochs x 12,800 scenes at batch 128, random crops, one masked view per teacher
# pass (rendered scenes kept in memory, as in every recipe here).
REFERENCE = dict(epochs=6, warmup_epochs=1, batch_size=128, base_lr=1.5e-3, offline_size=12800, masks_per_image=1,
                 teacher_cache=False, fixed_views=False, min_crop_scale=0.2)
# The reference with only its views changed: the full scene, no crop or flip (same batch, lr, schedule, no cache).
VIEWS_ONLY = {**REFERENCE, "fixed_views": True, "min_crop_scale": 1.0}


def interpolate_time(curve: list[tuple[int, float, float]], target: float):
    """(step, seconds) at which a kNN curve [(step, seconds, knn), ...] reaches ``target``,
    interpolated linearly between the last evaluation below it and the first at or above it;
    None if it never does."""
    previous = (0, 0.0, 0.0)
    for step, seconds, knn in curve:
        if knn >= target:
            s0, t0, k0 = previous
            f = 1.0 if knn == k0 else (target - k0) / (knn - k0)
            return s0 + f * (step - s0), t0 + f * (seconds - t0)
        previous = (step, seconds, knn)
    return None


def finished(out: Path, settings: dict) -> dict | None:
    """The result of a run finished in an earlier sitting (reused, so a study may span several), None
    if there is none; a ConfigError if it was made with other settings."""
    done = out / "result.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    if result.get("settings") != settings:
        raise ConfigError(f"{out}: a finished run made with {result.get('settings')}, not {settings}; pass another --out")
    return result


def run(name: str, overrides: dict, out: Path, target: float, seed: int = 0, eval_every: int = 25,
        val_size: int = 2048, preset: str = PRESET) -> dict:
    """One recipe (``overrides`` of ``preset``) for one seed in ``out``, kNN every ``eval_every`` steps; its
    result (reused from ``out``/result.json when made with the same settings)."""
    from milan_lab.evaluation.suite import write_result
    from milan_lab.jobs.pretrain import pretrain
    from milan_lab.tools.info import model_info
    from milan_lab.tools.records import Timer
    settings = {"target": target, "eval_every": eval_every, "val_size": val_size}
    result = finished(out, settings)
    if result is not None:
        return result
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts again: its clock must be one run's
    # keep_every 0: no timeline snapshots (their fsynced writes would count in the recipe's clock); a recipe may set it
    cfg = get_config("pretrain", preset, {"knn_train_size": 2048, "knn_val_size": val_size, "keep_every": 0, **overrides, "seed": seed,
                                          "output_dir": str(out), "progress": False, "knn_every_steps": eval_every})
    with Timer() as wall:
        summary = pretrain(cfg)
    history = json.loads((out / "metrics.json").read_text())["history"]
    curve = [(r["step"], r["train_s"], r["knn_acc"]) for r in history if "knn_acc" in r]
    info = model_info(preset)
    per_image, teacher = info["gflops_pretrain_step_per_image"], info["gflops_teacher"]
    k = cfg.model.masks_per_image

    def cost(steps: float) -> dict:
        # k student passes (forward + backward ~ 3x forward) per image; a teacher pass per image,
        # or with the teacher cache one per training scene, all at the first step
        images = steps * cfg.batch_size
        teacher_passes = cfg.offline_size if cfg.teacher_cache else images
        return {"steps": steps, "images": images, "tflops": (teacher_passes * teacher + images * k * (per_image - teacher)) / 1e3}
    hit = interpolate_time(curve, target)
    result = {"recipe": name, "seed": seed, "settings": settings, "overrides": overrides, "batch_size": cfg.batch_size,
              "teacher_cache": cfg.teacher_cache, "fixed_views": cfg.fixed_views,
              "at_target": {**cost(hit[0]), "train_s": hit[1]} if hit else None,
              "final": {**cost(curve[-1][0]), "train_s": curve[-1][1], "knn": curve[-1][2]},
              "final_knn": summary["knn_acc"], "total_wall_s": wall.seconds, "knn_curve": curve}
    return write_result(out / "result.json", result)


def parse_candidates(texts: list[str]) -> list[tuple[str, dict]]:
    """Each --candidate as (name, overrides), every one checked as a full config before any training."""
    candidates = []
    for i, text in enumerate(texts):
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
        candidates.append((f"candidate {i + 1}", over))
    return candidates or [("current default", {})]


def ratios(results: list[dict]) -> dict:
    """Per recipe: time to the target over the reference's, paired by seed."""
    ref = {r["seed"]: r["at_target"]["train_s"] for r in results if r["recipe"] == "reference" and r["at_target"]}
    out = {}
    for r in results:
        if r["recipe"] != "reference" and r["at_target"] and r["seed"] in ref:
            out.setdefault(r["recipe"], []).append(r["at_target"]["train_s"] / ref[r["seed"]])
    return out


def main(argv=None) -> int:
    p = OneLineParser(prog="time_to_quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1])
    p.add_argument("--target", type=float, default=0.60)
    p.add_argument("--eval-every", type=positive_int, default=25, help="steps between kNN evaluations")
    p.add_argument("--val-size", type=positive_int, default=2048, help="validation scenes for kNN")
    p.add_argument("--out", type=output_folder, default="outputs/bench/ttq")
    p.add_argument("--record", type=output_file, default=None,
                   help="where the JSON record goes (default: OUT/record.json); rewritten after every finished run")
    p.add_argument("--candidate", action="append", default=[],
                   help="JSON overrides of the current preset to try instead of it as is (repeatable)")
    args = p.parse_args(argv)
    try:
        if not 0 < args.target <= 1:
            raise ConfigError(f"--target: a kNN accuracy in (0, 1], got {args.target}")
        recipes = [("reference", REFERENCE), ("views only", VIEWS_ONLY)] + parse_candidates(args.candidate)
        plan = [(name, over, seed, Path(args.out) / f"{name.replace(' ', '_')}_s{seed}")
                for seed in args.seeds for name, over in recipes]
        for *_, out in plan:  # every reused run checked before any training
            finished(out, {"target": args.target, "eval_every": args.eval_every, "val_size": args.val_size})
        record = check_writable(args.record or Path(args.out) / "record.json", "record")
    except MilanLabError as e:
        print(f"time_to_quality: error: {e}", file=sys.stderr)
        return 2
    from milan_lab.tools.records import RunningRecord
    running = RunningRecord(record, "time-to-quality")  # rewritten after every run
    results = []
    for name, over, seed, out in plan:
        results.append(run(name, over, out, args.target, seed, args.eval_every, args.val_size))
        running.write({"target": args.target, "eval_every": args.eval_every, "val_size": args.val_size, "runs": results,
                       "ratios": ratios(results), "planned_runs": len(plan), "complete": len(results) == len(plan)},
                      dict.fromkeys(r["seed"] for r in results))
    print(f"target kNN top-1 {args.target:.0%}; kNN every {args.eval_every} steps on {args.val_size} scenes")
    print(f"{'recipe':<16} {'seed':>4} {'train s':>8} {'steps':>7} {'images':>8} {'TFLOP':>7}   final kNN")
    for r in results:
        h = r["at_target"]
        cells = (f"{h['train_s']:>8.0f} {h['steps']:>7.0f} {h['images']:>8.0f} {h['tflops']:>7.1f}" if h
                 else f"{'not reached':>33}")
        print(f"{r['recipe']:<16} {r['seed']:>4} {cells}   {r['final']['knn']:.3f}")
    paired = ratios(results)
    for name, values in paired.items():
        print(f"time to the target / reference's, {name}: mean {sum(values) / len(values):.2f}, "
              f"range {min(values):.2f}-{max(values):.2f} over {len(values)} seeds")
    print(f"record: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
