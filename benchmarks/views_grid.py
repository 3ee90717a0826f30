"""Why fixed views change where the class token looks: a grid of short pretraining runs, each probed
for where its class token looks and for what its features hold.

    python benchmarks/views_grid.py [--plan benchmarks/plans/views_grid.yaml] [--steps 300] [--seeds 0 1 2]
                                    [--preset milan_vit-tiny-p8_offline] [--arms ...] [--out outputs/bench/views_grid]

Arms: {fixed full-scene views, random crops (scale 0.2-1)} x {loss on all tokens, loss on the masked
patches and the class token}, all without the teacher cache so that only the views and the loss
differ, plus the K-view teacher cache (4 fixed random crops per scene with their cached targets, one
drawn per epoch) with the loss on all tokens. Each run is scored by the attention metric (object
ratio, agreement with the teacher; ``milan-lab attention``), kNN and the quick linear probe on the
class token and on mean-pooled patch tokens, and the dense probe. Each row also carries the attention probe's
object mass and AUROC (``evaluation.attention``), which the summary does not compare: its metrics are the plan's.
Arms are compared by their paired differences over seeds (``tools.ablation.summarise``: the t-interval and
paired test of ``evaluation.stats``), the recipe-level spread; the bootstrap interval ``milan-lab attention``
prints is over scenes for one model and says nothing about seeds. Runs are reused from their
``result.json``; a JSON record of every run and the summary goes to ``--out``/record.json, rewritten
(atomically) after every finished run (``complete``: false until the last, which adds the summary).
Every option, each run's config and the record's place are checked before the first run.

The study follows its plan (``--plan``, ``milan_lab.tools.plans``): the steps, the preset and the arms,
baseline and primary metrics below are the plan's, and the seeds and arms run are among its own (fewer is a
deviation the table's footer names). Every run's ``result.json`` carries the plan's hash and the commit it
started from; a finished run made under another plan (or none) stops the study with one line before any
work, and the record lists every run with its commit.

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
import sys
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the jobs load when the work starts.
from milan_lab.cli import OneLineParser, nonnegative_int, output_folder, positive_int, preset_name
from milan_lab.config import get_config
from milan_lab.errors import ConfigError, MilanLabError
from milan_lab.io.targets import check_writable
from milan_lab.tools.plans import Plan, check_against_plan, finished_run, load_plan, now, run_start, runs_table, write_run_result

PLAN = Path(__file__).resolve().parent / "plans" / "views_grid.yaml"

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
# What each run is scored on (``milan_lab.evaluation.suite``): its probes and their sizes.
PROBES = ("attention", "knn_cls", "knn_mean", "linear_cls", "linear_mean", "miou")
SIZES = {"attention_scenes": 256, "eval_train": 2048, "eval_val": 1024, "seg_train": 1024, "seg_val": 512, "seg_steps": 300}


def summarise_grid(rows: list[dict], margin: float | None = None) -> list[dict]:
    """Per arm the means over seeds and the paired differences to the baseline, Holm over the primaries
    (with the plan's TOST ``margin``, if it declares one, their equivalence tests too)."""
    from milan_lab.tools.ablation import summarise
    return summarise(rows, METRICS, baseline=BASELINE, family=PRIMARY, diff_key="baseline_minus_arm", extra=(), margin=margin)


def decide(summary: list[dict]) -> str:
    """The declared rule: the baseline unless an arm beats it on the linear probe and does not lose on
    the object ratio, both after Holm's adjustment (differences are baseline - arm)."""
    better = [r for r in summary if r.get("linear_mean_differs") and r["linear_mean_baseline_minus_arm"] < 0
              and not (r.get("object_ratio_differs") and r["object_ratio_baseline_minus_arm"] > 0)]
    return max(better, key=lambda r: r["linear_mean"])["arm"] if better else BASELINE


def arm_config(preset: str, arm: str, seed: int, steps: int, out: Path):
    return get_config("pretrain", preset, {**ARMS[arm], "seed": seed, "max_steps": steps, "knn_every": 0,
                                           "keep_every": 0,  # no timeline snapshots: an arm is scored once, at its end
                                           "output_dir": str(out), "progress": False})


def run_folder(output_dir: str | Path, arm: str, seed: int) -> Path:
    return Path(output_dir) / f"{arm.replace(' ', '_').replace(',', '')}_s{seed}"


def run_arm(preset: str, arm: str, seed: int, steps: int, out: Path, plan: Plan | None = None) -> dict:
    """One arm for one seed in ``out``: a finished run's ``result.json`` made under the same ``plan`` is
    reused (a ConfigError for one made under another); otherwise trained and scored (``score_arm``), its
    row stamped with the plan and the commit it started from and written atomically."""
    done = out / "result.json"
    previous = finished_run(done, plan)
    if previous is not None:
        return previous
    start = run_start(plan)  # provenance when the run starts, not when the record is written
    return write_run_result(done, score_arm(preset, arm, seed, steps, out), start)


def score_arm(preset: str, arm: str, seed: int, steps: int, out: Path) -> dict:
    """Pretrain one arm for one seed in ``out`` and score it on ``PROBES`` at ``SIZES`` (attention metric
    against the run's teacher, kNN and quick linear probe per pooling, dense probe); its row."""
    from milan_lab.evaluation.suite import score
    from milan_lab.factory.models import load_model
    from milan_lab.jobs.pretrain import pretrain
    from milan_lab.tools.records import Timer
    cfg = arm_config(preset, arm, seed, steps, out)
    with Timer() as clock:
        pretrain(cfg)
    model = load_model(str(out), task="pretrain", teacher="auto")
    row = {"arm": arm, "seed": seed, "steps": steps, "train_wall_s": clock.seconds}
    return {**row, **score(model.encoder, PROBES, SIZES, seed=seed, teacher=model.teacher, device="cpu")}


def check_plan(plan: Plan, preset: str, steps: int, arms, seeds) -> None:
    """The study's arguments against its plan (``tools.plans.check_against_plan``), and the plan against
    what this script computes: a preset, arms it knows, its baseline, its primary metrics as the Holm family."""
    if plan["preset"] is None:
        raise ConfigError(f"plan {plan.name}: no 'preset' (the grid trains every arm from the plan's preset)")
    unknown = [a for a in plan["arms"] if a not in ARMS]
    if unknown:
        raise ConfigError(f"plan {plan.name}: arm {unknown[0]!r} is not one of the grid's arms ({', '.join(ARMS)})")
    check_against_plan(plan, study="views_grid", preset=preset, sizes={"steps": steps}, arms=arms, seeds=seeds,
                       baseline=BASELINE, primary=list(PRIMARY), holm_family=list(PRIMARY))


def main(argv=None) -> int:
    p = OneLineParser(prog="views_grid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", default=str(PLAN), help="the study's plan (YAML, tools/plans.py; default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None, help="default: the plan's (it must be the plan's)")
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, help="default: the plan's (or some of them)")
    p.add_argument("--preset", type=preset_name, default=None, help="default: the plan's (it must be the plan's)")
    p.add_argument("--arms", nargs="+", default=None, choices=list(ARMS), help="default: the plan's (or some of them)")
    p.add_argument("--out", type=output_folder, default="outputs/bench/views_grid")
    args = p.parse_args(argv)
    try:  # the plan, every run's config, every reused run and the record's place, before any training
        study = load_plan(args.plan)
        if args.steps is None and "steps" not in study["sizes"]:
            raise ConfigError(f"plan {study.name}: 'sizes' has no 'steps' (the training steps of every run); pass --steps")
        args.steps = study["sizes"]["steps"] if args.steps is None else args.steps
        args.preset, args.seeds, args.arms = (args.preset or study["preset"], args.seeds or study["seeds"],
                                              args.arms or study["arms"])
        check_plan(study, args.preset, args.steps, args.arms, args.seeds)
        plan = [(arm, seed, run_folder(args.out, arm, seed)) for seed in args.seeds for arm in args.arms]
        for arm, seed, out in plan:
            arm_config(args.preset, arm, seed, args.steps, out)
            finished_run(out / "result.json", study)
        record = check_writable(Path(args.out) / "record.json", "record")
    except MilanLabError as e:
        print(f"views_grid: error: {e}", file=sys.stderr)
        return 2
    from milan_lab.tools.ablation import markdown_tables
    from milan_lab.tools.records import RunningRecord
    running = RunningRecord(record, "views-grid")  # rewritten after every run
    base = {"steps": args.steps, "preset": args.preset, "arms": ARMS, "baseline": BASELINE, "metrics": list(METRICS),
            "primary": list(PRIMARY), "planned_runs": len(plan), "plan": study.summary()}
    since = now()  # runs started before this sitting are listed as reused
    rows = []
    for arm, seed, out in plan:
        rows.append(run_arm(args.preset, arm, seed, args.steps, out, study))
        if len(rows) < len(plan):  # the finished runs so far; the summary comes with the last one
            running.write({**base, "rows": rows, "runs": runs_table(rows, since), "complete": False},
                          dict.fromkeys(r["seed"] for r in rows))
    summary = summarise_grid(rows, study["tost_margin"])
    print(markdown_tables(summary, METRICS, primary=PRIMARY, baseline=BASELINE, diff_key="baseline_minus_arm"))
    choice = decide(summary)
    print(f"\noffline default by the declared rule: {choice}")
    running.write({**base, "rows": rows, "runs": runs_table(rows, since), "complete": True, "summary": summary,
                   "choice": choice}, args.seeds)
    print(f"record: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
