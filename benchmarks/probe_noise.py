"""How noisy is the kNN probe itself? The shipped student and a random-init encoder of its preset re-scored on
disjoint draws of validation scenes and memory banks, at 512 and at 2,048 validation scenes, beside the spread
between seeds of a study's record (the dense ablation's by default).

    python benchmarks/probe_noise.py [--checkpoint milan_lab/assets/milan_tiny_offline.safetensors]
                                     [--preset milan_vit-tiny-p8_offline] [--sizes 512 2048] [--sets 4]
                                     [--train 1024] [--memories 2] [--bootstrap 1000] [--seed 0]
                                     [--seed-spread docs/results/ablation_dense.json] [--record FILE]

The kNN probe is the studies' (k = 20, cosine, T = 0.07, ``evaluation.knn``), on the class token and on the mean
patch token (``evaluation.features.extract_readouts``: one forward per batch, the encoder in eval mode).
``--memories`` disjoint memory banks of ``--train`` training scenes and a pool of ``--sets`` times the largest size
of validation scenes are rendered once; the pool is cut into disjoint validation sets of each size (``--sets`` of
the largest, more of the smaller ones), and every (bank, validation set) pair is one draw of the probe: at every
size a draw changes both the memory bank and the validation scenes, so the SDs over draws are like quantities.
Per size and pooling, over draws: each encoder's accuracy and the
paired difference (student - random init, on the same scenes), with their standard deviation; the bootstrap
standard deviation over validation scenes (bank 0, ``--bootstrap`` resamples of the size); and the binomial
standard error. From ``--seed-spread`` (a study record whose rows are per-seed probe scores, ``tools.ablation``'s)
comes the spread the probe's noise is read against: per probe, the standard deviation over seeds of each arm and
of each arm's paired difference to the study's baseline (those seeds changed the training and the probe's scenes
alike, on the validation size the record names). Nothing is trained; the cost is the encoders' forward passes.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the encoders load when the work starts.
from milan_lab.cli import OneLineParser, nonnegative_int, positive_int, preset_name
from milan_lab.commands.common import record_option

CHECKOUT = Path(__file__).resolve().parents[1]
SHIPPED = "milan_lab/assets/milan_tiny_offline.safetensors"
SEED_PROBES = ("knn_cls", "knn_mean", "linear_mean")  # the kNN probes measured here, and the ablation's primary
POOLS = ("cls", "mean")
ENCODERS = ("student", "random init")


def existing_file(text: str) -> Path:
    """argparse type: a file that exists (read before any work)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def seed_spread(path: Path) -> dict:
    """Per probe of a study record (rows of per-seed scores), the SD over seeds of each arm's score and of each arm's
    paired difference to the baseline arm (the first), in points; a record without such rows is a DataError."""
    from milan_lab.errors import DataError
    from milan_lab.tools.records import read_record
    rec = read_record(path.stem, path.parent)
    res = rec.get("result") or {}
    rows = res.get("rows")
    if not rows or not all({"arm", "seed"} <= set(r) for r in rows):
        raise DataError(f"{path}: not a study record with per-seed rows (result.rows of arm, seed and probe scores)")
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    by = {(r["arm"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows if r["arm"] == arms[0]})
    out = {"record": str(path), "commit": rec.get("commit"), "baseline": arms[0], "seeds": seeds,
           "val_images": (res.get("params") or {}).get("eval_val"), "probes": {}}
    for probe in SEED_PROBES:
        if not all(probe in r for r in rows):
            continue
        arm_sd = {a: 100 * statistics.stdev(by[a, s][probe] for s in seeds if (a, s) in by) for a in arms
                  if sum((a, s) in by for s in seeds) >= 2}
        diff_sd = {a: 100 * statistics.stdev(by[arms[0], s][probe] - by[a, s][probe] for s in seeds if (a, s) in by)
                   for a in arms[1:] if sum((a, s) in by for s in seeds) >= 2}
        out["probes"][probe] = {"arm_sd": arm_sd, "diff_sd": diff_sd,
                                "median_arm_sd": statistics.median(arm_sd.values()),
                                "median_diff_sd": statistics.median(diff_sd.values())}
    return out


def scenes_of(split: str, n: int, image_size: int, seed: int):
    """``n`` scenes of ``split``, kept in memory once rendered (both encoders read the same renders)."""
    from milan_lab.data.datasets import OfflineScenes
    from milan_lab.data.transforms import eval_transform
    return OfflineScenes(split, n, image_size, seed, eval_transform(image_size, crop_ratio=1.0),
                         cache_mb=1 + n * image_size ** 2 * 3 // 2 ** 20)


def spread(values: list[float]) -> dict:
    """Mean and SD (points; SD None with one value) of accuracies or differences given as fractions."""
    return {"mean": 100 * statistics.fmean(values), "sd": 100 * statistics.stdev(values) if len(values) > 1 else None,
            "draws": len(values)}


def at_size(correct: dict, n: int, bootstrap: int, seed: int) -> dict:
    """One validation size: ``correct[encoder]`` [banks, V] bools (kNN right per scene) -> the draws' spread,
    the bootstrap SD on bank 0 and the binomial SE, per encoder and for the paired difference (points)."""
    import torch
    banks, pool = correct[ENCODERS[0]].shape
    sets = pool // n  # disjoint validation sets of n scenes; every size has at least run()'s ``sets`` of them
    acc = {e: [float(c[b, k * n:(k + 1) * n].float().mean()) for b in range(banks) for k in range(sets)]
           for e, c in correct.items()}
    diff = [a - r for a, r in zip(acc[ENCODERS[0]], acc[ENCODERS[1]])]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(pool, (bootstrap, n), generator=g)  # resample n scenes of the pool, bank 0
    boot = {e: c[0].float()[idx].mean(1) for e, c in correct.items()}
    out = {"val_images": n, "validation_sets": sets, "banks": banks,
           "encoders": {e: {**spread(acc[e]), "bootstrap_sd": 100 * float(boot[e].std()),
                            "binomial_se": 100 * math.sqrt(statistics.fmean(acc[e]) * (1 - statistics.fmean(acc[e])) / n)}
                        for e in correct},
           "difference": {**spread(diff), "bootstrap_sd": 100 * float((boot[ENCODERS[0]] - boot[ENCODERS[1]]).std())}}
    return out


def run(checkpoint: str, preset: str, sizes, sets: int, train: int, memories: int, bootstrap: int, seed: int,
        spread_of: Path) -> dict:
    """Every size x pooling on a pool of ``sets`` x the largest size of validation scenes; the record's result."""
    import torch

    from milan_lab.config import get_config
    from milan_lab.evaluation.features import extract_readouts
    from milan_lab.evaluation.knn import knn_classify
    from milan_lab.factory.models import load_encoder
    model = get_config("pretrain", preset).model
    encoders = {ENCODERS[0]: load_encoder(checkpoint, model), ENCODERS[1]: load_encoder("random", model, seed=0)}
    pool = sets * max(sizes)
    correct = {p: {} for p in POOLS}
    accuracy_at_pool = {}
    banks, vals = scenes_of("train", train * memories, model.image_size, seed), scenes_of("val", pool, model.image_size, seed)
    for name, encoder in encoders.items():
        bank_f, bank_y = extract_readouts(encoder, banks, POOLS, normalize=True)
        val_f, val_y = extract_readouts(encoder, vals, POOLS, normalize=True)
        for p in POOLS:
            correct[p][name] = torch.stack([knn_classify(bank_f[p][b * train:(b + 1) * train], bank_y[b * train:(b + 1) * train],
                                                         val_f[p]) == val_y for b in range(memories)])
            accuracy_at_pool[f"{name}, {p}"] = float(correct[p][name].float().mean())
    return {"checkpoint": shown(checkpoint), "preset": preset, "image_size": model.image_size, "train_images": train,
            "memories": memories, "sets": sets, "val_pool": pool, "bootstrap": bootstrap, "seed": seed, "pools": list(POOLS),
            "sizes": {str(n): {p: at_size(correct[p], n, bootstrap, seed) for p in POOLS} for n in sizes},
            "seed_spread": {**seed_spread(spread_of), "record": shown(spread_of)}}


def shown(path) -> str:
    """A path as a record shows it: relative to the checkout when inside it (records travel between machines)."""
    from milan_lab.tools.records import shown_path
    return shown_path(path, CHECKOUT)


def table(result: dict) -> str:
    """The tables of a result (the script prints them; the document's table, scripts/tables.py, is the same): per
    validation size and pooling, each encoder's kNN and the paired difference with their spread over draws, the
    bootstrap SD and the binomial SE; then the study's spread between seeds, per probe, in points."""
    from milan_lab.tools.ablation import NAMES  # the probes' names as the studies' tables write them

    def sd(v):
        return "-" if v is None else f"{v:.2f}"
    rows = ["| validation scenes | pooling | draws (sets × banks) | student kNN % (SD over draws; binomial SE) | "
            "random init kNN % (SD; binomial SE) | paired difference, points | its SD over draws | its bootstrap SD |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, by_pool in result["sizes"].items():
        for pool, m in by_pool.items():
            s, f = (m["encoders"][e] for e in ("student", "random init"))
            d = m["difference"]
            rows.append(f"| {int(n):,} | {pool} | {d['draws']} ({m['validation_sets']} × {m['banks']}) | "
                    f"{s['mean']:.1f} ({sd(s['sd'])}; {s['binomial_se']:.2f}) | "
                        f"{f['mean']:.1f} ({sd(f['sd'])}; {f['binomial_se']:.2f}) | {d['mean']:+.1f} | {sd(d['sd'])} | "
                        f"{d['bootstrap_sd']:.2f} |")
    spread = result["seed_spread"]
    rows += ["", f"| spread between seeds ({spread['val_images']:,} validation scenes) | SD of an arm, median (range) | SD of a "
                 f"paired difference to {spread['baseline']}, median (range) |", "| --- | --- | --- |"]
    for probe, v in spread["probes"].items():
        arm, diff = list(v["arm_sd"].values()), list(v["diff_sd"].values())
        rows.append(f"| {NAMES[probe]} | {v['median_arm_sd']:.2f} ({min(arm):.2f}-{max(arm):.2f}) | "
                    f"{v['median_diff_sd']:.2f} ({min(diff):.2f}-{max(diff):.2f}) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = OneLineParser(prog="probe_noise", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=existing_file, default=CHECKOUT / SHIPPED, help="the student (a weights file)")
    p.add_argument("--preset", type=preset_name, default="milan_vit-tiny-p8_offline",
                   help="the student's preset (its architecture is the random-init encoder's)")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[512, 2048], help="validation set sizes")
    p.add_argument("--sets", type=positive_int, default=4,
                   help="disjoint validation sets of the largest size (the pool is this many times the largest size)")
    p.add_argument("--train", type=positive_int, default=1024, help="training scenes per memory bank (the ablation's)")
    p.add_argument("--memories", type=positive_int, default=2, help="disjoint memory banks")
    p.add_argument("--bootstrap", type=positive_int, default=1000)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--seed-spread", type=existing_file, default=CHECKOUT / "docs" / "results" / "ablation_dense.json",
                   help="a study record whose per-seed rows give the spread between seeds")
    record_option(p)
    args = p.parse_args(argv)  # every option and the record's place checked here, before the work
    from milan_lab.errors import MilanLabError
    from milan_lab.tools.records import measure_and_record
    sizes = sorted(set(args.sizes))
    try:
        seed_spread(args.seed_spread)  # a record without per-seed rows is refused before the work
    except MilanLabError as e:
        p.error(str(e))
    measure_and_record(args.record, "probe-noise",
                       lambda: run(str(args.checkpoint), args.preset, sizes, args.sets, args.train, args.memories,
                                   args.bootstrap, args.seed, args.seed_spread), table, [args.seed])
    return 0


if __name__ == "__main__":
    sys.exit(main())
