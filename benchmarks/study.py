"""One planned study, one command: every run of a plan in ``benchmarks/plans/`` (``tools.ablation.run_plan``),
resumable, and its record with the study's tables.

    python benchmarks/study.py --plan benchmarks/plans/masking_mid.yaml [--output-dir outputs/studies/masking_mid]
                               [--record docs/results/masking_mid.json] [--device auto|cpu|cuda]
                               [--seeds 0 1] [--arms MILAN "random init"]

The plan (arms, paired seeds, preset, scene kind, overrides, probe sizes, the probes, the primary metric, the
Holm family, the TOST margin, the decision rule) is checked against the runner before any work: every arm
known, the scene kind one of ``config.SCENE_KINDS``, every probe registered (``evaluation.suite.PROBES``),
the primary and the family among their metrics, and every arm's config (the plan's overrides with the arm's
own) one the config accepts. Runs go seed-major (a stop leaves whole pairs but for the seed it stopped in; the
record's ``seeds`` are the whole ones); a finished run (``OUTPUT_DIR/ARM_sSEED/result.json``, stamped with the
plan's hash and the device it was made on) is reused, one made under another plan or on another device is
refused. ``--device``: where every run trains and is scored (``auto``: CUDA when present).
``--seeds`` / ``--arms``: a subset of the plan's (the footer says what is missing). With ``--record`` the
record is rewritten after every run, so a stopped study still has one with every run it finished.
``--resume RECORD``: continue from a record of the same plan when its run folders are gone (a wiped scratch
disk, another machine): its finished runs, checked like those in a folder (plan, probes, sizes, device), are
written back into the output folder (``tools.ablation.restore_runs``) and reused; runs outside ``--seeds`` /
``--arms`` stay in the new record; and the new record keeps the earlier sittings (``earlier_sittings``: commit,
date, machine, matmul peak, minutes). Pass it in every later sitting: a sitting without it records its own
minutes only.

The tables: per arm mean ± std over seeds of each probe, the paired differences MILAN - arm with their
intervals, raw and Holm-adjusted p and TOST p, the minimum detectable effects, then the references: the
shipped teachers' own probe scores (``docs/results/teacher_ceilings.json``, where recorded for the scene kind)
and this study's random-init floor; under them the plan's file and hash and every deviation from the plan.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Only light modules here: a refused option or plan answers at once; torch loads when the work starts.
from milan_lab import config as C
from milan_lab.commands.common import OneLineParser, nonnegative_int, output_file
from milan_lab.errors import ConfigError, MilanLabError

ROOT = Path(__file__).resolve().parents[1]
CEILINGS = ROOT / "docs" / "results" / "teacher_ceilings.json"
DEVICES = ("auto", "cpu", "cuda")


def check_plan(plan) -> None:
    """A ConfigError naming the plan and the first thing of it this runner cannot run."""
    from milan_lab.evaluation.suite import metrics_of, probe_named
    from milan_lab.tools.ablation import KNOWN_ARMS, check_arms, plan_probes
    where = f"plan {plan.path or plan.name}"
    if plan["study"] != "ablation":
        raise ConfigError(f"{where}: study {plan['study']!r} is not run by benchmarks/study.py (it runs 'ablation' plans)")
    if plan["preset"] not in C.PRESETS:
        raise ConfigError(f"{where}: unknown preset {plan['preset']!r}; known: {', '.join(C.PRESETS)}")
    if plan["variant"] not in C.SCENE_KINDS:
        raise ConfigError(f"{where}: variant {plan['variant']!r} is not a scene kind ({', '.join(C.SCENE_KINDS)})")
    unknown = [a for a in plan["arms"] if a not in KNOWN_ARMS]
    if unknown:
        raise ConfigError(f"{where}: unknown arm {unknown[0]!r}; known arms: {', '.join(KNOWN_ARMS)}")
    for name in plan_probes(plan):
        try:
            probe_named(name)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    metrics = metrics_of(plan_probes(plan))
    outside = [m for m in (*plan["primary"], *plan["holm_family"]) if m not in metrics]
    if outside:
        raise ConfigError(f"{where}: metric {outside[0]!r} of its primary or Holm family is not reported by its probes "
                          f"({', '.join(metrics)})")
    C.get_config("pretrain", plan["preset"], dict(plan["overrides"]))  # overrides the config refuses: refused now
    try:  # and every arm's own settings with them (an arm the preset refuses, before the arms ahead of it train)
        check_arms(plan["preset"], plan["arms"], plan["overrides"], plan["variant"])
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def resolve_device(name: str) -> str:
    """``auto``: CUDA when this machine has it, else the CPU; ``cuda`` without a GPU is one ConfigError
    (the engine's own resolution, imported here so that a bad plan is refused before torch loads)."""
    from milan_lab.engine.distributed import resolve_device as engine_device
    return str(engine_device(name))


def ceilings(variant: str, path: Path = CEILINGS) -> dict:
    """{teacher: {metric: {"mean", "se", "n"}}} of the teacher-ceilings record for scene kind ``variant``
    ({} where the record is missing or has no probes of that kind)."""
    import json
    if not path.is_file():
        return {}
    result = json.loads(path.read_text())["result"]
    train = result.get("train")  # the probes' training scenes: a ceiling reads against a study at the same sizes only
    return {name: {m: {**v, "train": train} for m, v in t["probes"][variant].items()}
            for name, t in result["teachers"].items() if variant in t.get("probes", {})}


def run(plan, output_dir: str, seeds=None, arms=None, device: str = "cpu", record: str | None = None,
        on_seed=None, earlier: list | None = None, kept: list | None = None) -> dict:
    """The plan's runs for ``seeds`` x ``arms`` (default: the plan's), seed by seed, with the result (rows,
    summary, plan, runs, and a resumed record's ``earlier`` sittings and ``kept`` runs, those outside the
    subset) written to ``record`` after every run; returns the result."""
    import time

    from milan_lab.tools.ablation import plan_result, run_plan
    from milan_lab.tools.plans import now
    from milan_lab.tools.records import matmul_peak_gflops, write_record
    since, rows, start = now(), list(kept or []), time.perf_counter()
    peak = matmul_peak_gflops() if record else None  # once per sitting: the record is rewritten after every run
    arms = plan["arms"] if arms is None else arms
    for seed in (plan["seeds"] if seeds is None else seeds):
        lap = time.perf_counter()
        for arm in arms:  # the record after every run: a stop loses none
            rows += run_plan(plan, output_dir, seeds=[seed], arms=[arm], device=device)
            result = {**plan_result(plan, rows, since), "plan_file": _shown(plan.path), "device": device,
                      "output_dir": str(output_dir), **({"earlier_sittings": earlier} if earlier else {})}
            if record:
                write_record(record, "study", result, whole_seeds(rows, arms), time.perf_counter() - start, peak)
        if on_seed:
            on_seed(seed, time.perf_counter() - lap)
    return result


def whole_seeds(rows: list[dict], arms) -> list[int]:
    """The seeds for which every one of ``arms`` and every arm of ``rows`` has run (a study stopped mid-seed has
    whole pairs for the seeds before it only)."""
    done = {(r["arm"], r["seed"]) for r in rows}
    arms = set(arms) | {arm for arm, _ in done}
    return sorted(s for s in {seed for _, seed in done} if all((arm, s) in done for arm in arms))


def resume(path: str, plan, output_dir: str, device: str, seeds=None, arms=None) -> tuple[list[str], list[dict], list[dict]]:
    """``--resume``: the record at ``path`` (a study's, of ``plan``, its runs made on ``device``: otherwise one
    ConfigError or DataError naming the file, before anything is written) restored into ``output_dir``. Returns
    the run folders restored, the sittings the record took (its own and those it had resumed: commit, date,
    machine, matmul peak, minutes) and its runs outside ``seeds`` x ``arms`` (None: the plan's), which the new
    record keeps."""
    from milan_lab.errors import DataError
    from milan_lab.tools.ablation import plan_scored_on, restore_runs
    from milan_lab.tools.records import read_record
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        raise ConfigError(f"{path}: no study record to resume from (a .json file that study.py --record wrote)")
    try:
        prior = read_record(path.stem, path.parent)
    except DataError as e:
        raise ConfigError(f"--resume {e}") from None
    result = prior.get("result") if isinstance(prior.get("result"), dict) else {}
    earlier = result.get("earlier_sittings", [])
    if prior.get("kind") != "study" or not isinstance(result.get("rows"), list) or not isinstance(earlier, list):
        raise ConfigError(f"{path}: not a study's record (kind {prior.get('kind')!r}); --resume reads a record study.py wrote")
    made = (result.get("plan") or {}).get("hash")
    if made != plan.hash:
        raise ConfigError(f"{path}: a record of plan {(result.get('plan') or {}).get('name')!r} ({str(made)[:12]}), "
                          f"not {plan.name!r} ({plan.hash[:12]}); resume it with the plan it was made under")
    try:
        restored = restore_runs(result["rows"], plan, output_dir, plan_scored_on(plan, device))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    asked = (set(plan["seeds"] if seeds is None else seeds), set(plan["arms"] if arms is None else arms))
    outside = [r for r in result["rows"] if not (r["seed"] in asked[0] and r["arm"] in asked[1])]
    sitting = {k: prior.get(k) for k in ("commit", "date", "cpu", "cores", "gpu", "threads", "matmul_peak_gflops", "wall_s")}
    return restored, [*earlier, sitting], outside


def _ceiling_cell(v: dict, n: int | None) -> str:
    """A teacher's score in %, ± its binomial error where it has one (the dense probe's mIoU has none), with its own
    number of validation scenes where that is not the row's ``n``."""
    text = f"{100 * v['mean']:.1f}" + (f" ± {100 * v['se']:.1f}" if "se" in v else "")
    return text + (f" ({v['n']:,} scenes)" if v.get("n") and v["n"] != n else "")


def _shown(path) -> str | None:
    """A plan's path as a record names it: relative to the checkout when inside it."""
    from milan_lab.tools.records import shown_path
    return None if path is None else shown_path(path, ROOT)


def table(result: dict, teacher_ceilings: dict | None = None) -> str:
    """The study's tables (the script prints them; a document's table is the same): ``tools.ablation``'s
    per-arm and paired tables on the plan's probes, primary first, the statistics computed now from the
    per-seed rows; then the references (the teachers' own probe scores from ``teacher_ceilings``, and the
    random-init floor of this study); then the plan's file, hash and deviations."""
    from milan_lab.evaluation.suite import metrics_of
    from milan_lab.tools.ablation import BASELINE, NAMES, PROBES, RANDOM, markdown_tables, summarise
    from milan_lab.tools.plans import plan_footer
    plan = result["plan"]
    metrics = metrics_of(plan.get("probes") or PROBES)
    baseline = plan.get("baseline", BASELINE)
    summary = summarise(result["rows"], metrics, baseline=baseline, family=plan["holm_family"], margin=plan["tost_margin"])
    parts = [markdown_tables(summary, metrics, primary=plan["primary"], baseline=baseline)]
    shown = [m for m in metrics if m in NAMES]
    refs = ["| reference | " + " | ".join(f"{NAMES[m]} %" for m in shown) + " |", "| --- | " + " | ".join("---" for _ in shown) + " |"]
    for name, scores in (teacher_ceilings or {}).items():
        n = next((v["n"] for v in scores.values() if "n" in v), None)  # the ceilings' own validation scenes
        train = next((v["train"] for v in scores.values() if v.get("train")), None)
        sizes = ", ".join(([f"probes trained on {train:,} scenes"] if train else []) + ([f"{n:,} validation scenes"] if n else []))
        refs.append(f"| teacher `{name}` (its own tokens{', ' + sizes if sizes else ''}: the ceiling) | " + " | ".join(
            _ceiling_cell(scores[m], n) if m in scores else "not recorded" for m in shown) + " |")
    floor = next((r for r in summary if r["arm"] == RANDOM), None)
    if floor is not None:
        refs.append(f"| {RANDOM} (this study's floor) | " + " | ".join(
            f"{100 * floor[m]:.1f} ± {100 * floor[m + '_std']:.1f}" if floor.get(m) is not None else "-" for m in shown) + " |")
    if len(refs) > 2:
        parts.append("\n".join(refs))
    variant = result["params"].get("variant")
    note = ("" if teacher_ceilings else f"No teacher ceilings recorded for {variant} scenes. ")
    return "\n\n".join(parts) + f"\n\n{note}Plan file: `{result.get('plan_file')}`. " + plan_footer(result)


def main(argv=None) -> int:
    p = OneLineParser(prog="study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", required=True, help="a plan file (benchmarks/plans/NAME.yaml) of study 'ablation'")
    p.add_argument("--output-dir", default=None, help="the runs' folder (default: outputs/studies/PLAN_NAME)")
    p.add_argument("--record", type=output_file, default=None, help="write the study's JSON record here (after every run)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where every run trains and is scored (auto: CUDA when present)")
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, help="a subset of the plan's seeds")
    p.add_argument("--arms", nargs="+", default=None, help="a subset of the plan's arms")
    p.add_argument("--resume", default=None, metavar="RECORD",
                   help="a record of this plan whose finished runs go back into the output folder (its folders are gone)")
    args = p.parse_args(argv)
    from milan_lab.tools.plans import check_against_plan, load_plan
    try:  # the plan, its arms, probes and overrides, the subsets and the device: checked before any work
        plan = load_plan(args.plan)
        check_plan(plan)
        check_against_plan(plan, **({"seeds": args.seeds} if args.seeds else {}), **({"arms": args.arms} if args.arms else {}))
        device = resolve_device(args.device)
        output_dir = args.output_dir or f"outputs/studies/{plan.name}"
        restored, earlier, kept = resume(args.resume, plan, output_dir, device, args.seeds, args.arms) if args.resume else ([], [], [])
    except MilanLabError as e:
        p.error(str(e))
    if args.resume:
        print(f"resumed from {args.resume}: {len(restored)} finished run(s) written back into {output_dir}",
              file=sys.stderr, flush=True)

    def said(seed, seconds):
        print(f"seed {seed}: {seconds / 60:.1f} min", file=sys.stderr, flush=True)
    try:
        result = run(plan, output_dir, args.seeds, args.arms, device, args.record, on_seed=said, earlier=earlier, kept=kept)
    except MilanLabError as e:  # a finished run of another plan in the output folder, a bad cache size...
        p.error(str(e))
    print(table(result, ceilings(plan["variant"])))
    if args.record:
        print(f"record: {args.record}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
