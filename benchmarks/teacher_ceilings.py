"""What the teachers themselves know: their zero-shot accuracy per scene kind and their own probe scores (the
ceilings a student distilled from them is read against), beside a random-init encoder of the preset (the floor).

    python benchmarks/teacher_ceilings.py [--teachers offline-shape offline-noshape] [--zero-shot-variants dense sparse mid]
                                          [--probe-variants dense mid] [--train 1024] [--val 1024] [--zero-shot 512]
                                          [--dense-train 512] [--dense-val 256] [--dense-steps 200] [--no-dense]
                                          [--preset milan_vit-tiny-p8_offline] [--seed 0] [--record FILE]

Per shipped teacher (``milan_lab.config.SHIPPED_TEACHERS``: named by what their captions named):

* ``zero_shot``: per scene kind, the zero-shot accuracy of every caption attribute on ``--zero-shot`` held-out
  scenes (``evaluation.teacher.evaluate_teacher``: shape, colour, size, place, the bare shape prompt);
* ``probes``: per scene kind, the probes the studies score students with (``evaluation.suite.score``), on the
  teacher's own targets (every token after ``ln_post`` and ``proj``, what the student regresses;
  ``evaluation.teacher.TeacherTokens``): kNN (k = 20, cosine, T = 0.07) and the quick linear probe on the patch
  tokens pooled over the main object's ground-truth coverage, on the class token and on the mean patch token
  (``--train`` training and ``--val`` validation scenes: a ceiling needs no more than its standard error says), and the dense probe's
  mIoU on the patch tokens (the ablation's sizes), each accuracy with its binomial standard error.

The same probes on a randomly initialised encoder of ``--preset`` (seed 0) give the floor. Nothing is trained but
the probes; a run takes minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import math
import sys

# Only light modules here: a refused option answers at once; torch and the teachers load when the work starts.
from milan_lab import config as C
from milan_lab.cli import OneLineParser, nonnegative_int, positive_int, preset_name
from milan_lab.commands.common import record_option

TEACHERS = tuple(C.SHIPPED_TEACHERS)
PROBES = ("knn_object", "linear_object", "knn_cls", "knn_mean", "linear_cls", "linear_mean", "miou")
FLOOR = "random init"


def shipped_teacher(text: str) -> str:
    """argparse type: a shipped teacher's name (or an alias of one), returned as its own name."""
    name = C.TEACHER_ALIASES.get(text, text)
    if name not in C.SHIPPED_TEACHERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shipped teacher; shipped: {', '.join(C.SHIPPED_TEACHERS)}")
    return name


def scored(accuracy: float, n: int) -> dict:
    """An accuracy on ``n`` images with its binomial standard error."""
    return {"mean": accuracy, "se": math.sqrt(accuracy * (1 - accuracy) / n), "n": n}


def probe_scores(encoder, variant: str, sizes: dict, seed: int, image_size: int) -> dict:
    """kNN and linear on both poolings, and (unless ``sizes['dense_steps']`` is 0) the dense probe's mIoU: the
    studies' own probes (``evaluation.suite.score``, the same readouts, head sizes and rules as a student's), on
    scenes at ``image_size`` handed to the suite (a teacher seen as an encoder has no patch embedding to read it from)."""
    from milan_lab.data.datasets import OfflineScenes
    from milan_lab.data.segmentation import SegScenes
    from milan_lab.data.transforms import eval_transform
    from milan_lab.evaluation.suite import score
    tf = eval_transform(image_size, crop_ratio=1.0)
    datasets = {"scenes": tuple(OfflineScenes(split, sizes[split], image_size, seed, tf, variant=variant)
                                for split in ("train", "val"))}
    probes = [p for p in PROBES if p != "miou"]
    if sizes["dense_steps"]:
        probes.append("miou")
        datasets["seg"] = (SegScenes("train", sizes["dense_train"], image_size, seed, variant),
                           SegScenes("val", sizes["dense_val"], image_size, seed, variant))
    row = score(encoder, probes, {"eval_train": sizes["train"], "eval_val": sizes["val"], **(
        {"seg_train": sizes["dense_train"], "seg_val": sizes["dense_val"], "seg_steps": sizes["dense_steps"]}
        if sizes["dense_steps"] else {})}, seed=seed, variant=variant, datasets=datasets)
    out = {p: scored(row[p], sizes["val"]) for p in probes if p != "miou"}
    if "miou" in row:
        out["miou"] = {"mean": row["miou"], "n": sizes["dense_val"]}
    return out


def run(teachers, zero_shot_variants, probe_variants, sizes: dict, zero_shot: int, preset: str, seed: int) -> dict:
    """Every teacher's zero-shot per kind and probes per kind, and the random-init floor's probes; the record's result."""
    from milan_lab.config import get_config
    from milan_lab.evaluation.teacher import TeacherTokens, evaluate_teacher, text_embeddings
    from milan_lab.factory.models import load_encoder
    from milan_lab.factory.teachers import load_teacher
    model = get_config("pretrain", preset).model
    out = {"preset": preset, "image_size": model.image_size, "patch_size": model.patch_size, "seed": seed,
           "zero_shot_images": zero_shot, **sizes, "probes": list(PROBES), "teachers": {}}
    for name in teachers:
        teacher = load_teacher(name)
        if teacher.image_size != model.image_size:  # a bug in the shipped assets, not bad input
            raise RuntimeError(f"teacher {name} sees {teacher.image_size} px, the preset {model.image_size} px")
        text = text_embeddings(teacher)  # once per teacher, for every scene kind
        out["teachers"][name] = {
            "knows": C.SHIPPED_TEACHERS[name],
            "zero_shot": {v: evaluate_teacher(teacher, n=zero_shot, seed=seed, variant=v, text=text)["zero_shot"]
                          for v in zero_shot_variants},
            "probes": {v: probe_scores(TeacherTokens(teacher), v, sizes, seed, model.image_size) for v in probe_variants}}
    floor = load_encoder("random", model, seed=0)
    out["floor"] = {FLOOR: {"probes": {v: probe_scores(floor, v, sizes, seed, model.image_size) for v in probe_variants}}}
    return out


def table(result: dict) -> str:
    """The tables of a result (the script prints them; the document's table, scripts/tables.py, is the same):
    zero-shot shape per teacher and scene kind (and colour and size on the first kind), then each probe per teacher
    and the floor."""
    from milan_lab.tools.ablation import NAMES  # the probes' names as the studies' tables write them
    teachers = result["teachers"]
    kinds = list(next(iter(teachers.values()))["zero_shot"])
    rows = ["| teacher (what its captions named) | " + " | ".join(f"zero-shot shape, {k} %" for k in kinds)
            + f" | zero-shot colour, {kinds[0]} % | zero-shot size, {kinds[0]} % |",
            "| --- | " + " | ".join("---" for _ in kinds) + " | --- | --- |"]
    for name, t in teachers.items():
        zs = t["zero_shot"]
        rows.append(f"| `{name}` ({t['knows']}) | " + " | ".join(f"{100 * zs[k]['shape']:.1f}" for k in kinds)
                    + f" | {100 * zs[kinds[0]]['colour']:.1f} | {100 * zs[kinds[0]]['size']:.1f} |")
    encoders = {f"`{n}`": t["probes"] for n, t in teachers.items()}
    encoders |= {f"{n} (`{result['preset']}`, the floor)": f["probes"] for n, f in result["floor"].items()}
    first = next(iter(next(iter(encoders.values())).values()))
    probes = [p for p in result["probes"] if p in first]
    rows += ["", "| encoder | scenes | " + " | ".join(f"{NAMES[p]} %" for p in probes) + " |",
             "| --- | --- | " + " | ".join("---" for _ in probes) + " |"]
    for label, by_kind in encoders.items():
        for kind, scores in by_kind.items():
            rows.append(f"| {label} | {kind} | " + " | ".join(
                f"{100 * scores[p]['mean']:.1f}" + (f" ± {100 * scores[p]['se']:.1f}" if "se" in scores[p] else "")
                for p in probes) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = OneLineParser(prog="teacher_ceilings", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teachers", type=shipped_teacher, nargs="+", default=list(TEACHERS))
    p.add_argument("--zero-shot-variants", nargs="+", default=list(C.SCENE_KINDS), choices=C.SCENE_KINDS)
    p.add_argument("--probe-variants", nargs="+", default=["dense", "mid"], choices=C.SCENE_KINDS,
                   help="scene kinds to probe on (the studies' kinds)")
    p.add_argument("--train", type=positive_int, default=1024, help="training scenes of the kNN and linear probes")
    p.add_argument("--val", type=positive_int, default=1024, help="validation scenes of the kNN and linear probes")
    p.add_argument("--zero-shot", type=positive_int, default=512, help="held-out scenes per kind for zero-shot")
    p.add_argument("--dense-train", type=positive_int, default=512)
    p.add_argument("--dense-val", type=positive_int, default=256)
    p.add_argument("--dense-steps", type=positive_int, default=200)
    p.add_argument("--no-dense", action="store_true", help="leave the dense probe out")
    p.add_argument("--preset", type=preset_name, default="milan_vit-tiny-p8_offline",
                   help="the preset whose random-init encoder is the floor (and whose image size the teachers must see)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    record_option(p)
    args = p.parse_args(argv)  # every option and the record's place checked here, before the work
    from milan_lab.tools.records import measure_and_record
    sizes = {"train": args.train, "val": args.val, "dense_train": args.dense_train, "dense_val": args.dense_val,
             "dense_steps": 0 if args.no_dense else args.dense_steps}
    measure_and_record(args.record, "teacher-ceilings",
                       lambda: run(list(dict.fromkeys(args.teachers)), args.zero_shot_variants, args.probe_variants, sizes,
                                   args.zero_shot, args.preset, args.seed), table, [args.seed])
    return 0


if __name__ == "__main__":
    sys.exit(main())
