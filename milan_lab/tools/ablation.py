"""The ablation studio: MILAN's three ideas, one factor at a time, in paired runs.

Arms: MILAN itself (CLIP targets + semantic masking + prompting decoder); each idea switched off
alone (pixel targets with MAE's normalised-pixel loss, random masking, the MAE decoder); the MAE
corner (all three off), once at the same number of steps and once at MILAN's training FLOPs (the
corner skips the teacher, so it gets more steps for the same compute); and a randomly initialised
encoder (no training: the floor). *Paired*: for a seed, every arm starts from the same initial
student weights and sees the same images and mask noise (the engine seeds them from the run's seed,
not from what an arm did before), so only the studied factor differs.

Every frozen encoder is probed on its class token **and** on the mean of its patch tokens (only
the CLIP arms supervise the class token directly, so a class-token probe alone would favour them):
kNN and a quick linear probe for each pooling, and the dense probe's mIoU. One metric is declared
primary before a run (``PRIMARY``); the rest are secondary. The effect of an idea is the paired
difference MILAN - arm over seeds with its 95 % t-interval; p-values of the paired t-test are
adjusted over the whole family of reported comparisons (Holm), and a difference is marked only
when its adjusted p is below 0.05. With the table comes the minimum detectable effect at 80 %
power from the observed spread: what these seeds could have resolved. Finished runs are reused
(``result.json`` in each run folder), so a re-run continues where it stopped.
"""
from __future__ import annotations

import functools
import json
import math
import statistics
from pathlib import Path

from milan_lab.config import get_config
from milan_lab.errors import ConfigError
from milan_lab.engine.distributed import resolve_device
from milan_lab.evaluation.stats import T_TEST, holm, min_detectable_effect, paired_test, t_interval, tost
from milan_lab.evaluation.suite import SIZES, metrics_of, probe_named, score, write_result
from milan_lab.factory.models import load_encoder
from milan_lab.jobs.pretrain import pretrain
from milan_lab.tools.info import model_info
from milan_lab.tools.plans import Plan, check_against_plan, check_run, finished_run, run_start, runs_table, write_run_result

BASELINE = "MILAN"
RANDOM = "random init"
EQUAL_COMPUTE = "MAE, equal FLOPs"
ARMS = {
    BASELINE: {},
    "pixel targets": {"target": "pixels", "norm_pix_loss": True},
    "random masking": {"sampler": "random"},
    "MAE decoder": {"decoder": "mae"},
    "MAE (all three)": {"target": "pixels", "norm_pix_loss": True, "sampler": "random", "decoder": "mae"},
    EQUAL_COMPUTE: {"target": "pixels", "norm_pix_loss": True, "sampler": "random", "decoder": "mae"},
    RANDOM: {},
}
# The arms the lab's studies add (benchmarks/plans/: targets, masking, decoder), one factor each against MILAN:
# what the teacher knows (its captions never name the shape, the probes' label: the shipped offline-noshape,
# its targets as wide as the shape-aware one's) and the decoder's depth (the tiny preset's is 2).
STUDY_ARMS = {
    "label-free teacher": {"teacher": "offline-noshape"},
    "prompting, 4 layers": {"decoder_depth": 4},
    "MAE decoder, 4 layers": {"decoder": "mae", "decoder_depth": 4},
}
KNOWN_ARMS = {**ARMS, **STUDY_ARMS}  # every arm a run may name: the studio's and the studies'
PROBES = ("knn_cls", "knn_mean", "linear_cls", "linear_mean", "miou")  # probes of evaluation.suite, one metric each
PRIMARY = "linear_mean"  # declared before the runs: the probe that favours no arm's supervision
NAMES = {"knn_cls": "kNN, class token", "knn_mean": "kNN, mean patch", "linear_cls": "linear, class token",
         "linear_mean": "linear, mean patch", "miou": "dense mIoU", "knn_object": "kNN, object-pooled",
         "linear_object": "linear, object-pooled"}  # the accuracies a table shows in points


@functools.lru_cache(maxsize=None)  # model_info builds and counts the models: once per preset, not per seed
def compute_factor(preset: str) -> float:
    """Training FLOPs per image of MILAN over those of the MAE corner (teacher forward + 3x the
    student's forward for MILAN; 3x the student's with MAE's decoder for the corner)."""
    info = model_info(preset)
    enc, dec = info["gflops_encoder_masked"], info["gflops_decoder_by_type"]
    return (info["gflops_teacher"] + 3 * (enc + dec["prompting"])) / (3 * (enc + dec["mae"]))


def run_folder(output_dir: str | Path, arm: str, seed: int) -> Path:
    return Path(output_dir) / f"{arm.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}_s{seed}"


def restore_runs(rows: list, plan: Plan, output_dir: str | Path, scored_on: dict) -> list[str]:
    """Write back, as ``result.json`` in their run folders under ``output_dir``, the finished runs a study's record
    holds (``rows``: its ``result["rows"]``, each a run's result as it was written) where the folder has none, so
    that a study continues from its record when its run folders are gone (a wiped scratch disk, another machine).
    Every row is checked first, as a finished run in a folder would be (``plans.check_run``: made under ``plan``,
    scored on ``scored_on``, the probes, sizes and device this study asks), and nothing is written unless all
    pass (a ConfigError naming the first that does not); a run folder that has its own result keeps it. Restored
    runs are then reused like any finished run and listed with the commit they started from. Returns the
    folders' names, restored ones only."""
    for i, row in enumerate(rows):
        if not (isinstance(row, dict) and isinstance(row.get("arm"), str) and isinstance(row.get("seed"), int)):
            raise ConfigError(f"run {i + 1} of the record is not a run's result (an arm and a seed); restore the record")
        check_run(row, plan, scored_on, f"run {row['arm']!r} seed {row['seed']} of the record",
                  "resume with what it was made with (its device: --device)")
    restored = []
    for row in rows:
        done = run_folder(output_dir, row["arm"], row["seed"]) / "result.json"
        if not done.exists():
            done.parent.mkdir(parents=True, exist_ok=True)
            write_result(done, row)
            restored.append(done.parent.name)
    return restored


def plan_scored_on(plan: Plan, device: str) -> dict:
    """What a planned study's runs are made with, as each run's result records it: probes, sizes, device."""
    return {"probes": list(plan_probes(plan)), "sizes": {**EVAL_SIZES, **plan["sizes"]}, "device": device}


def run_arm(preset: str, arm: str, seed: int, output_dir: str | Path, overrides: dict | None = None,
            eval_train: int = 1024, eval_val: int = 512, seg_train: int = 512, seg_val: int = 256,
            seg_steps: int = 200, variant: str = "dense", plan: Plan | None = None, probes=PROBES,
            device: str = "cpu") -> dict:
    """Pretrain one arm for one seed (none for the random-init arm) on ``device`` and score it there
    (``score_arm``); reuses a finished run's ``result.json`` made under the same ``plan``, scored on the same
    probes and sizes and made on the same device (a ConfigError for one made otherwise, or one that does not
    record its device). The result carries the plan's name and hash, the commit the run started from, and what
    it was made with (``scored_on``: probes, sizes, device)."""
    out = run_folder(output_dir, arm, seed)
    done = out / "result.json"
    sizes = dict(eval_train=eval_train, eval_val=eval_val, seg_train=seg_train, seg_val=seg_val, seg_steps=seg_steps)
    # a finished run scored otherwise, or trained and scored on another device, is not reused
    scored_on = {"probes": list(probes), "sizes": sizes, "device": device}
    previous = finished_run(done, plan, scored_on)
    if previous is not None:
        return previous
    start = run_start(plan)  # provenance when the run starts, not when the study's record is written
    row = score_arm(preset, arm, seed, out, overrides, variant, probes=probes, device=device, **sizes)
    return write_run_result(done, {**row, "scored_on": scored_on}, start)


def arm_config(preset: str, arm: str, seed: int, out: str | Path, overrides: dict | None, variant: str,
               device: str = "cpu"):
    """The pretraining config of one arm's run in ``out``: the study's ``overrides``, then the arm's own, then the
    run's (seed, folder, scene kind and ``device``, always: the preset's ``device: auto`` would pick CUDA on a GPU
    machine whatever the study was asked); the equal-compute arm trains MILAN's FLOPs' worth of epochs."""
    over = {"keep_every": 0,  # no timeline snapshots unless the study's overrides ask: an arm is scored at its end
            **(overrides or {}), **KNOWN_ARMS[arm], "seed": seed, "knn_every": 0, "output_dir": str(out), "progress": False,
            "offline_variant": variant, "device": device}
    cfg = get_config("pretrain", preset, over)
    if arm == EQUAL_COMPUTE:
        cfg = get_config("pretrain", preset, {**over, "epochs": max(1, round(cfg.epochs * compute_factor(preset)))})
    return cfg


def check_arms(preset: str, arms, overrides: dict | None, variant: str, device: str = "cpu") -> None:
    """Every arm's config built before any run (``arm_config``): one the config refuses (the ViT-B preset refuses
    the label-free teacher's settings) is one ConfigError naming the arm now, not after the arms before it trained."""
    for arm in arms:
        try:
            arm_config(preset, arm, 0, "unused", overrides, variant, device)
        except ConfigError as e:
            raise ConfigError(f"arm {arm!r}: {e}") from None


def score_arm(preset: str, arm: str, seed: int, out: Path, overrides: dict | None, variant: str, probes=PROBES,
              device: str = "cpu", **sizes) -> dict:
    """One arm's run for one seed in ``out``: trained (but the random-init arm) on ``device`` and scored there on
    ``probes`` (``evaluation.suite``) at ``sizes``; its row."""
    for name in probes:  # an unknown probe is refused before the training
        probe_named(name)
    cfg = arm_config(preset, arm, seed, out, overrides, variant, device)
    row = {"arm": arm, "seed": seed, "variant": variant, **KNOWN_ARMS[arm], "device": device}
    if arm == RANDOM:
        encoder = load_encoder("random", cfg.model, seed=seed)
        row.update(steps=0, ms_per_step=None)
    else:
        # the steps alone: the job's result carries its whole trained model (student, decoder, teacher), which
        # would stay in memory (on the GPU where it trained) while the saved encoder is loaded and scored
        steps = pretrain(cfg)["steps"]
        history = json.loads((out / "metrics.json").read_text())["history"]
        rates = [r["img_per_s"] for r in history if r.get("img_per_s")]  # training steps only, between log rows
        row.update(steps=steps, ms_per_step=1e3 * cfg.batch_size / statistics.median(rates) if rates else None)
        encoder = load_encoder(str(out), cfg.model)
    row.update(score(encoder.to(device), probes, sizes, seed=seed, variant=variant, device=device))
    return row


def check_study(seeds, arms, **eval_sizes) -> None:
    unknown = [a for a in arms if a not in KNOWN_ARMS]
    if unknown:
        raise ConfigError(f"unknown arm {unknown[0]!r}; known arms: {', '.join(KNOWN_ARMS)}")
    if not seeds or not arms:
        raise ConfigError(f"an ablation needs at least one seed and one arm (seeds={list(seeds)}, arms={list(arms)})")
    bad = {k: v for k, v in eval_sizes.items() if v < 1}
    if bad:
        raise ConfigError(f"bad value for {next(iter(bad))!r}: must be at least 1, got {next(iter(bad.values()))}")


EVAL_SIZES = {k: SIZES[k] for k in ("eval_train", "eval_val", "seg_train", "seg_val", "seg_steps")}  # run_arm's


def run_ablation(preset: str, seeds=(0, 1, 2), output_dir: str = "outputs/ablation", overrides: dict | None = None,
                 arms=tuple(ARMS), variant: str = "dense", plan: Plan | None = None, probes=PROBES,
                 device: str = "auto", **eval_sizes) -> list[dict]:
    """Every arm for every seed (seed-major, so stopping early leaves whole pairs); one row each, scored on
    ``probes`` (names in ``evaluation.suite.PROBES``). With a ``plan`` the arguments are checked against it
    first (arms and seeds among its own, everything else equal) and every run is stamped with it. Every arm's
    config is built before the first run (``check_arms``). ``device``: where every run trains and is scored
    ("auto": CUDA where there is one, resolved once so that every row names the device it ran on)."""
    device = str(resolve_device(device))  # "cuda:1" stays "cuda:1"
    check_study(seeds, arms, **eval_sizes)
    for name in probes:
        probe_named(name)
    if plan is not None:
        check_against_plan(plan, study="ablation", preset=preset, variant=variant, overrides=dict(overrides or {}),
                           sizes={**EVAL_SIZES, **eval_sizes}, arms=list(arms), seeds=list(seeds))
    check_arms(preset, arms, overrides, variant, device)  # a refused arm is refused before the first run
    return [run_arm(preset, arm, seed, output_dir, overrides, variant=variant, plan=plan, probes=probes, device=device,
                    **eval_sizes) for seed in seeds for arm in arms]


def plan_probes(plan: Plan) -> tuple[str, ...]:
    """The probes a plan's runs are scored on: its own (``probes``), or the studio's (:data:`PROBES`)."""
    return tuple(plan["probes"] or PROBES)


def run_plan(plan: Plan, output_dir: str, seeds=None, arms=None, device: str = "auto") -> list[dict]:
    """The runs of a plan (all its seeds and arms, or the given subsets of them), on ``device``."""
    return run_ablation(plan["preset"], plan["seeds"] if seeds is None else seeds, output_dir, plan["overrides"],
                        plan["arms"] if arms is None else arms, plan["variant"], plan=plan, probes=plan_probes(plan),
                        device=device, **plan["sizes"])


def plan_result(plan: Plan, rows: list[dict], since: str | None = None) -> dict:
    """What a planned ablation's record holds: the rows, their summary by the plan's family and TOST
    margin, the plan (name, hash, planned seeds) and per run the commit it started from (reused: started
    before ``since``, an ISO date)."""
    summary = summarise(rows, metrics_of(plan_probes(plan)), baseline=plan["baseline"], family=plan["holm_family"],
                        margin=plan["tost_margin"])
    params = {"preset": plan["preset"], "variant": plan["variant"], "arms": list(plan["arms"]),
              "primary": plan["primary"][0] if len(plan["primary"]) == 1 else list(plan["primary"]),
              **plan["overrides"], **{**EVAL_SIZES, **plan["sizes"]}}
    return {"params": params, "rows": rows, "summary": summary, "plan": plan.summary(), "runs": runs_table(rows, since)}


def summarise(rows: list[dict], metrics=PROBES, baseline: str = BASELINE, family=None,
              diff_key: str = "milan_minus_arm", extra=("ms_per_step",), margin: float | None = None) -> list[dict]:
    """Per arm: mean and std over seeds of each metric (and of ``extra``); for every arm but the
    baseline the paired difference baseline - arm (seeds present in both, stored as
    ``{metric}_{diff_key}``) with its 95 % interval, raw p (and ``{metric}_test``, the test that gave it:
    see ``evaluation.stats.paired_test``) and the minimum detectable effect; Holm-adjusted
    p over the family of reported intervals: every arm and metric, or every arm and the metrics in
    ``family`` (the others keep their raw p only). With a TOST ``margin`` (declared in the study's plan),
    the family's comparisons also get ``{metric}_p_tost`` and ``{metric}_equivalent``."""
    family_metrics = metrics if family is None else family
    by_arm: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    out, family = [], []
    for arm, runs in by_arm.items():
        row = {"arm": arm, "runs": len(runs)}
        for m in (*metrics, *extra):
            vals = [r[m] for r in runs.values() if r.get(m) is not None]
            row[m] = statistics.mean(vals) if vals else None
            row[f"{m}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        if arm != baseline and baseline in by_arm:
            seeds = sorted(set(runs) & set(by_arm[baseline]))
            for m in metrics:
                diffs = [by_arm[baseline][s][m] - runs[s][m] for s in seeds]
                diff, lo, hi = t_interval(diffs)
                row[f"{m}_{diff_key}"], row[f"{m}_ci"] = diff, (lo, hi)
                test = paired_test(diffs)
                row[f"{m}_p"], row[f"{m}_test"], row[f"{m}_mde"] = test["p"], test["test"], min_detectable_effect(diffs)
                if m in family_metrics:
                    family.append((row, m))
                    if margin is not None:
                        equivalence = tost(diffs, margin)
                        row[f"{m}_p_tost"], row[f"{m}_equivalent"] = equivalence["p_tost"], equivalence["equivalent"]
        out.append(row)
    for (row, m), p in zip(family, holm([row[f"{m}_p"] for row, m in family])):
        row[f"{m}_p_holm"] = p
        row[f"{m}_differs"] = p < 0.05
    return out


def markdown_tables(summary: list[dict], metrics=PROBES, primary=PRIMARY, baseline: str = BASELINE,
                    diff_key: str = "milan_minus_arm") -> str:
    """The tables the docs show: per arm mean ± std over seeds (probes in points, ratios as they are)
    and time per step where measured; then per arm the paired difference baseline - arm with its 95 %
    interval, raw and Holm-adjusted p (* where the adjusted p < 0.05; metrics outside the adjusted
    family show their raw p only; a p not from the t-test names its test; with a TOST margin its p, and
    = where equivalence is shown), the primary metric(s) first; then the minimum detectable effects."""
    primary = (primary,) if isinstance(primary, str) else tuple(primary)
    metrics = [*primary] + [m for m in metrics if m not in primary]
    label = {m: NAMES.get(m, m.replace("_", " ")) + (" (primary)" if m in primary else "") for m in metrics}
    scale = {m: 100 if m in NAMES else 1 for m in metrics}
    unit = {m: " %" if m in NAMES else "" for m in metrics}
    digits = {m: 1 if m in NAMES else 2 for m in metrics}
    timed = any(r.get("ms_per_step") for r in summary)
    lines = ["| arm | runs | " + " | ".join(f"{label[m]}{unit[m]}" for m in metrics) + (" | ms / step |" if timed else " |"),
             "| --- | --- | " + " | ".join("---" for _ in metrics) + (" | --- |" if timed else " |")]
    for r in summary:
        cells = [f"{scale[m] * r[m]:.{digits[m]}f} ± {scale[m] * r[m + '_std']:.{digits[m]}f}" for m in metrics]
        ms = (f" | {r['ms_per_step']:.0f} |" if r.get("ms_per_step") else " | - |") if timed else " |"
        lines.append(f"| {r['arm']} | {r['runs']} | " + " | ".join(cells) + ms)
    compared = [r for r in summary if f"{metrics[0]}_ci" in r]
    lines += ["", f"| {baseline} - arm: {'points ' if set(metrics) <= set(NAMES) else ''}[95 % CI], p, p Holm | "
              + " | ".join(label[m] for m in metrics) + " |", "| --- | " + " | ".join("---" for _ in metrics) + " |"]
    for r in compared:
        cells = []
        for m in metrics:
            lo, hi = (scale[m] * v for v in r[f"{m}_ci"])
            d, f = scale[m] * r[f"{m}_{diff_key}"], digits[m]
            holm_p = (f", {r[m + '_p_holm']:.3f}" + (" *" if r[f"{m}_differs"] else "")) if f"{m}_p_holm" in r else ""
            exact = f" ({r[m + '_test']})" if r.get(f"{m}_test", T_TEST) != T_TEST else ""  # the t-test was undefined
            tost_p = (f", TOST p {r[m + '_p_tost']:.3f}" + (" =" if r[f"{m}_equivalent"] else "")) if f"{m}_p_tost" in r else ""
            cells.append(f"{d:+.{f}f} [{lo:+.{f}f}, {hi:+.{f}f}], p {r[m + '_p']:.3f}{exact}{holm_p}{tost_p}")
        lines.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
    lines += ["", f"| minimum detectable effect, 80 % power{' (points)' if set(metrics) <= set(NAMES) else ''} | "
              + " | ".join(label[m] for m in metrics) + " |", "| --- | " + " | ".join("---" for _ in metrics) + " |"]
    lines += [f"| {r['arm']} | " + " | ".join(mde_cell(r[m + "_mde"], scale[m], digits[m]) for m in metrics) + " |"
              for r in compared]
    return "\n".join(lines)


def mde_cell(mde: float, scale: float = 1, digits: int = 2) -> str:
    """A minimum detectable effect as a table shows it: "not resolvable" where no effect is detectable
    (inf: equal differences over too few seeds for the exact test, see ``stats.min_detectable_effect``)."""
    return "not resolvable" if math.isinf(mde) else f"{scale * mde:.{digits}f}"
