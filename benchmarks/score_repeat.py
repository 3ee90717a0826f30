"""Are a study's probe scores the same on another CPU? One encoder of a study, its random-init arm for one seed (no
training: the scores depend only on the probes' arithmetic), scored as the study scores it (its plan's preset,
scenes, probes and sizes, ``tools.ablation.score_arm``) in fresh processes, one per instruction-set limit: the
CPU's own, and AVX2 only (what a CPU without AVX-512 runs), beside the scores that study records hold for it.

    python benchmarks/score_repeat.py [--plan benchmarks/plans/decoder.yaml] [--seed 0] [--isa native avx2]
                                      [--probes linear_object ...] [--compare docs/results/targets.json ...]
                                      [--record FILE]

A limit is set in the environment of its process before torch loads: ``ATEN_CPU_CAPABILITY`` (torch's own
vectorised kernels), ``MKL_ENABLE_INSTRUCTIONS`` (MKL's matmuls) and ``ONEDNN_MAX_CPU_ISA`` (oneDNN's). torch
reports the capability it runs with, and a limit it does not honour (asking for AVX-512 on a CPU without it) is
refused before any scoring; MKL's and oneDNN's limits are asked for, not verified. Every score is printed as a count
of validation scenes, so a difference of one scene shows. The records compared (``--compare``) must hold the same
arm, seed, scene kind, probes and sizes; their machine lines say where they were scored.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the probes load in the child processes.
from milan_lab.cli import OneLineParser, nonnegative_int
from milan_lab.commands.common import record_option
from milan_lab.errors import ConfigError, MilanLabError

CHECKOUT = Path(__file__).resolve().parents[1]
ARM = "random init"
# Per limit: the environment that asks for it, and what torch.backends.cpu.get_cpu_capability() says under it.
LIMITS = {"native": ({}, None),
          "avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "AVX2"),
          "avx512": ({"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                      "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "AVX512")}
LIMIT_VARIABLES = sorted({k for env, _ in LIMITS.values() for k in env})


def environment(limit: str) -> dict:
    """This process's environment with ``limit``'s variables, and none of another limit's."""
    env = {k: v for k, v in os.environ.items() if k not in LIMIT_VARIABLES}
    return {**env, **LIMITS[limit][0]}


def child(limit: str, task: dict | None) -> dict:
    """Run this script as a fresh process under ``limit``: the capability torch reports there, and (with ``task``)
    the arm's scores. A failure in the child is a bug, raised with its error output."""
    args = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(task)]
    done = subprocess.run(args, env=environment(limit), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {limit} process failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_limits(limits) -> None:
    """Each limit started once (seconds) to read the capability torch reports under it; a ConfigError for a limit
    torch does not honour on this CPU, before any scoring."""
    for limit in limits:
        seen, wanted = child(limit, None)["capability"], LIMITS[limit][1]
        if wanted is not None and seen != wanted:
            raise ConfigError(f"--isa {limit}: torch runs {seen} under it on this CPU, not {wanted}")


def run_child(task: dict | None) -> dict:
    """In the child: the capability, and the arm's scores for ``task`` (plan file, seed, probes)."""
    import tempfile

    import torch
    out = {"capability": torch.backends.cpu.get_cpu_capability()}
    if task:
        from milan_lab.tools import ablation
        from milan_lab.tools.plans import load_plan
        plan = load_plan(task["plan"])
        sizes = ablation.plan_scored_on(plan, "cpu")["sizes"]
        with tempfile.TemporaryDirectory() as folder:  # the random-init arm writes nothing; score_arm wants a folder
            row = ablation.score_arm(plan["preset"], ARM, task["seed"], Path(folder), plan["overrides"], plan["variant"],
                                     probes=task["probes"], device="cpu", **sizes)
        out["scores"] = {p: row[p] for p in task["metrics"]}
    return out


def recorded(path: Path, plan, seed: int, metrics) -> dict:
    """The scores a study record holds for the arm at ``seed``, with its machine; a ConfigError naming what differs."""
    from milan_lab.tools.ablation import plan_scored_on
    from milan_lab.tools.records import read_record, shown_path
    rec = read_record(path.stem, path.parent)  # a missing or damaged record: one DataError naming it
    rows = [r for r in (rec.get("result") or {}).get("rows", []) if r.get("arm") == ARM and r.get("seed") == seed]
    if not rows:
        raise ConfigError(f"--compare {path}: no {ARM!r} row for seed {seed}")
    row = rows[0]
    sizes = plan_scored_on(plan, "cpu")["sizes"]
    scored = row.get("scored_on") or {}
    if row.get("variant") != plan["variant"] or {k: scored.get("sizes", {}).get(k) for k in sizes} != sizes:
        raise ConfigError(f"--compare {path}: its {ARM!r} row was scored on {row.get('variant')} scenes at "
                          f"{scored.get('sizes')}, not the plan's {plan['variant']} scenes at {sizes}")
    missing = [m for m in metrics if m not in row]
    if missing:
        raise ConfigError(f"--compare {path}: its row has no {missing[0]!r}")
    return {"record": shown_path(path, CHECKOUT), "commit": rec.get("commit"), "cpu": rec.get("cpu"),
            "cpu_capability": rec.get("cpu_capability"), "matmul_peak_gflops": rec.get("matmul_peak_gflops"),
            "scores": {m: row[m] for m in metrics}}


def table(result: dict) -> str:
    """Per probe, each process's score and each record's, in validation scenes (score x their number) and %."""
    n, metrics = result["eval_val"], result["metrics"]
    cols = [f"this CPU, limit {k} (torch: {v['capability']})" for k, v in result["processes"].items()]
    cols += [f"`{Path(c['record']).name}` (commit {c['commit']}, peak {c['matmul_peak_gflops']:.0f} GFLOP/s)"
             for c in result["compared"]]
    rows = [f"| probe ({n:,} validation scenes) | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for m in metrics:
        cells = [v["scores"][m] for v in result["processes"].values()] + [c["scores"][m] for c in result["compared"]]
        rows.append(f"| {m} | " + " | ".join(f"{round(s * n)} ({100 * s:.2f} %)" for s in cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--child"]:  # the scoring process (see child()); its last line is JSON
        print(json.dumps(run_child(json.loads(sys.argv[2]))))
        return 0
    p = OneLineParser(prog="score_repeat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", type=Path, default=CHECKOUT / "benchmarks" / "plans" / "decoder.yaml",
                   help="the study plan whose random-init arm is scored")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--isa", nargs="+", choices=list(LIMITS), default=["native", "avx2"],
                   help="instruction-set limits, one process each")
    p.add_argument("--probes", nargs="+", default=None, help="the plan's probes to score (default: all of them)")
    p.add_argument("--compare", nargs="*", type=Path, default=[CHECKOUT / "docs" / "results" / f"{name}.json"
                                                                for name in ("targets", "decoder")],
                   help="study records holding the same arm and seed, scored on the same probes and sizes")
    record_option(p)
    args = p.parse_args(argv)
    try:  # the plan, the probes, the records compared and the limits: checked before any scoring
        task, compared = prepare(args)
    except MilanLabError as e:
        p.error(str(e))
    from milan_lab.tools.records import measure_and_record

    def work() -> dict:
        processes = {}
        for limit in args.isa:
            print(f"scoring {ARM!r} seed {args.seed} of plan {task['name']} under limit {limit}", flush=True)
            processes[limit] = child(limit, task)
        return {"plan": task["name"], "plan_hash": task["hash"], "arm": ARM, "seed": args.seed, "variant": task["variant"],
                "eval_val": task["eval_val"], "probes": task["probes"], "metrics": task["metrics"],
                "processes": processes, "compared": compared}
    measure_and_record(args.record, "score-repeat", work, table, [args.seed])
    return 0


def prepare(args) -> tuple[dict, list]:
    """(the children's task, the compared records' scores); a ConfigError for a plan, probe, record or limit
    that does not fit."""
    from milan_lab.evaluation.suite import metrics_of, probe_named
    from milan_lab.tools.ablation import plan_probes, plan_scored_on
    from milan_lab.tools.plans import load_plan
    plan = load_plan(args.plan)
    probes = list(args.probes or plan_probes(plan))
    outside = [name for name in probes if name not in plan_probes(plan)]
    if outside:
        probe_named(outside[0])  # an unknown name is refused with the known ones
        raise ConfigError(f"--probes: {outside[0]!r} is not among plan {plan.name!r}'s probes ({', '.join(plan_probes(plan))})")
    metrics = list(metrics_of(probes))
    compared = [recorded(path, plan, args.seed, metrics) for path in args.compare]
    check_limits(args.isa)
    task = {"plan": str(args.plan), "name": plan.name, "hash": plan.hash, "variant": plan["variant"],
            "eval_val": plan_scored_on(plan, "cpu")["sizes"]["eval_val"], "seed": args.seed, "probes": probes, "metrics": metrics}
    return task, compared


if __name__ == "__main__":
    sys.exit(main())
