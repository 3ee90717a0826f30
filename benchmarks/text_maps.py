"""Do the explorer's text-prompt maps localise? AUROC of a prompt's map against the named object's pixels.

    python benchmarks/text_maps.py [--scenes 256] [--variants dense sparse mid] [--seeds 0 1 2]
                                   [--forms caption "colour and shape" shape colour] [--record FILE]

On ``--scenes`` labelled validation scenes per scene kind and seed (``make_scene_with_main_object``: the
main object's pixels, those it covers at least half of), each scene's prompt names its main object in one of
the ``--forms`` (its caption, "a {colour} {shape}", "a {shape}", "a {colour} shape"). Three maps of cosines
between the prompt's text embedding and patch features (milan_lab.evaluation.text_maps), for the shipped
teacher and the shipped MILAN model:

* ``target tokens``: the teacher's last-block patch tokens after ``ln_post @ proj`` (MILAN's targets; the
  explorer's text maps before MaskCLIP's);
* ``maskclip``: the teacher's dense features by MaskCLIP's construction (Zhou et al., 2022): the last
  block's value embeddings through its out-projection, ``ln_post`` and ``proj``, its attention skipped;
* ``predicted tokens``: the shipped model's prediction of the target tokens from a semantic mask at 0.75
  (one mask per scene, from a generator seeded by the seed), as the explorer's Reconstruction tab shows it.

Each map is upsampled to pixels (nearest) and scored by the AUROC of "object pixel" against the cosine:
0.5 is a map blind to the object, 1 a map brightest on all of it, below 0.5 a map darkest on it. Per kind,
form and map: the mean over scenes with its 95 % t-interval and the share of scenes above 0.5, per seed and
over all seeds' scenes. Nothing is trained; a run takes a few minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import sys

# Only light modules here: a refused option answers at once; torch and the models load when the work starts.
from milan_lab.cli import OneLineParser, nonnegative_int, positive_int
from milan_lab.commands.common import record_option
from milan_lab.config import SCENE_KINDS

VARIANTS = tuple(SCENE_KINDS)  # every scene kind the config knows, in display order
FORMS = ("caption", "colour and shape", "shape", "colour")  # milan_lab.evaluation.text_maps.PROMPT_FORMS
SAMPLER, RATIO = "semantic", 0.75  # the explorer's Reconstruction defaults


def run(scenes: int, variants, seeds, forms) -> dict:
    """Every scene kind x seed x prompt form x map; the result a record holds."""
    from milan_lab.evaluation.text_maps import localisation, summary
    from milan_lab.factory.teachers import load_teacher
    from milan_lab.viz.panels import SHIPPED_MODEL, load_milan
    teacher = load_teacher()
    model = load_milan(SHIPPED_MODEL, teacher)
    out = {"teacher": "shipped", "model": SHIPPED_MODEL.name, "image_size": teacher.image_size,
           "patch_size": teacher.patch_size, "scenes": scenes, "seeds": list(seeds), "forms": list(forms),
           "sampler": SAMPLER, "mask_ratio": RATIO, "variants": {}}
    for variant in variants:
        per_seed = {seed: localisation(teacher, scenes, teacher.image_size, variant, seed, model, forms, SAMPLER, RATIO)
                    for seed in seeds}
        maps = list(per_seed[seeds[0]][forms[0]])
        out["variants"][variant] = {
            "all_seeds": {f: {m: summary([a for s in seeds for a in per_seed[s][f][m]]) for m in maps} for f in forms},
            "by_seed": {str(s): {f: {m: summary(per_seed[s][f][m]) for m in maps} for f in forms} for s in seeds}}
    return out


def table(result: dict) -> str:
    """The table of a result (the script prints it; the document's table, scripts/tables.py, is the same): per scene
    kind and prompt form, each map's AUROC against the named object's pixels over all seeds' scenes (0.5: blind to the
    object; below: darkest on it), and the range of the per-seed means."""
    maps = list(next(iter(next(iter(result["variants"].values()))["all_seeds"].values())))
    rows = ["| scenes | prompt names the object by | " + " | ".join(f"{m}: AUROC (share > 0.5)" for m in maps)
            + " | per-seed means (" + " / ".join(maps) + ") |",
            "| --- | --- | " + " | ".join("---" for _ in maps) + " | --- |"]

    def cell(v):
        return f"{v['mean']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] ({100 * v['above_half']:.0f} %)"

    for variant, v in result["variants"].items():
        for form, by_map in v["all_seeds"].items():
            spread = " / ".join(
                f"{min(s[form][m]['mean'] for s in v['by_seed'].values()):.2f}-"
                f"{max(s[form][m]['mean'] for s in v['by_seed'].values()):.2f}" for m in maps)
            rows.append(f"| {variant} | {form} | " + " | ".join(cell(by_map[m]) for m in maps) + f" | {spread} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = OneLineParser(prog="text_maps", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=positive_int, default=256, help="validation scenes per scene kind and seed")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2],
                   help="scene sets (the validation scenes of each seed) and the prediction's mask seeds")
    p.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS, help="how a prompt names the main object")
    record_option(p)
    args = p.parse_args(argv)  # every option and the record's place checked here, before the work
    seeds, forms = list(dict.fromkeys(args.seeds)), list(dict.fromkeys(args.forms))
    from milan_lab.tools.records import measure_and_record
    measure_and_record(args.record, "text-maps", lambda: run(args.scenes, list(dict.fromkeys(args.variants)), seeds, forms),
                       table, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
