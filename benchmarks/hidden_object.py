"""Can semantic masking act at all here? Before any training: how often each mask sampler leaves no
visible patch of the main object, per offline scene kind and mask ratio.

    python benchmarks/hidden_object.py [--scenes 2048] [--ratios 0.75 0.875 0.9] [--variants dense sparse mid]
                                       [--seed 0] [--preset milan_vit-tiny-p8_offline] [--record FILE]

For each scene kind, ``--scenes`` validation scenes are rendered at the preset's image size with their
main object's pixels (the pixels the label map gives the object the caption names: coverage at least
half, as the label map counts them). The shipped teacher gives each scene's importance (last block,
class token to patches, head mean: what MILAN samples from), and for each mask ratio the package's own
samplers draw one mask per scene: ``random`` (MAE) and ``semantic`` (MILAN), from a generator seeded by
``--seed``. Per sampler and ratio, over scenes:

* ``none_visible``: the share of scenes in which no visible patch holds any pixel of the main object;
* ``none_half_visible``: the share in which no visible patch is at least half covered by it;
* ``visible_share``: the mean share of the object's pixels that lie in visible patches;

shares with their 95 % Wilson interval, the mean with its t-interval. Nothing is trained; a run takes
seconds to minutes. A null result for semantic masking in a regime where random masking rarely hides the
object says nothing about the idea: this measures whether there is room for it.
"""
from __future__ import annotations

import argparse
import sys

# Only light modules here: a refused option answers at once; torch and the teacher load when the work starts.
from milan_lab import config as C
from milan_lab.cli import OneLineParser, nonnegative_int, positive_int, preset_name
from milan_lab.commands.common import record_option

SAMPLERS = ("random", "semantic")
RATIOS = (0.75, 0.875, 0.9)
VARIANTS = C.SCENE_KINDS  # every offline scene kind, by default


def mask_ratio(text: str) -> float:
    """argparse type: a mask ratio in (0, 1) (the only option of this script without a shared type in milan_lab.cli)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a mask ratio is in (0, 1), got {value}")
    return value


def uses_shipped_teacher(preset: str) -> bool:
    """Whether the preset's model trains with the shipped teacher (the one :func:`run` loads), no other weights."""
    model = C.get_config("pretrain", preset).model
    return C.TEACHER_ALIASES.get(model.teacher, model.teacher) == C.TEACHER_ALIASES["shipped"] and not model.teacher_pretrained


def shipped_teacher_preset(text: str) -> str:
    """argparse type: a preset (:func:`preset_name`) whose teacher is the shipped one: the importance is the
    shipped 64-px teacher's, so another preset's teacher (and image size) would be measured with the wrong model."""
    name = preset_name(text)
    if not uses_shipped_teacher(name):
        model = C.get_config("pretrain", name).model
        fits = ", ".join(p for p in C.PRESETS if uses_shipped_teacher(p))
        raise argparse.ArgumentTypeError(f"preset {name!r} trains with the teacher {model.teacher!r}, not the shipped one this "
                                         f"measurement loads; presets with the shipped teacher: {fits}")
    return name


def object_patches(n: int, variant: str, image_size: int, patch: int, seed: int):
    """Validation scenes with their main object: (images [N, 3, H, W] float in [0, 1], object pixels per
    patch [N, L] (row-major patches, as the ViT orders them))."""
    import numpy as np
    import torch

    from milan_lab.data.scenes import make_scene_with_main_object
    images, counts = [], []
    for i in range(n):
        image, coverage = make_scene_with_main_object(seed, "val", i, image_size, variant)
        pixels = coverage >= 0.5  # the label map's rule: an object owns a pixel it covers at least half of
        g = image_size // patch
        counts.append(pixels.reshape(g, patch, g, patch).sum(axis=(1, 3)).reshape(-1))
        images.append(image)
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return images, torch.from_numpy(np.stack(counts)).float()


def importance_of(teacher, images, batch: int = 256):
    """The teacher's class-token attention to the patches [N, L] for images [N, 3, H, W] in [0, 1]."""
    import torch

    from milan_lab.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():  # the student's normalised view, as MILAN hands it to the teacher
        return torch.cat([teacher((images[i:i + batch] - mean) / std)[1] for i in range(0, len(images), batch)])


def share(hits: int, n: int) -> dict:
    """A share with its 95 % Wilson interval (scipy's binomtest)."""
    from scipy import stats
    ci = stats.binomtest(hits, n).proportion_ci(method="wilson")
    return {"mean": hits / n, "ci95": [float(ci.low), float(ci.high)], "count": hits}


def measure(counts, importance, ratio: float, sampler: str, patch: int, seed: int) -> dict:
    """One sampler at one ratio over scenes (object pixels per patch ``counts`` [N, L])."""
    import torch

    from milan_lab.evaluation.stats import t_interval
    from milan_lab.models.masking import sample_mask
    n, num = counts.shape
    m = sample_mask(sampler, ratio, n, num, importance, generator=torch.Generator().manual_seed(seed))
    visible = 1 - m.mask  # [N, L], 1 = kept
    any_pixel = ((counts > 0).float() * visible).sum(1) == 0
    half = ((counts >= patch * patch / 2).float() * visible).sum(1) == 0
    shares = ((counts * visible).sum(1) / counts.sum(1)).tolist()
    mean, lo, hi = t_interval(shares)
    return {"none_visible": share(int(any_pixel.sum()), n), "none_half_visible": share(int(half.sum()), n),
            "visible_share": {"mean": mean, "ci95": [lo, hi]}, "kept_patches": int(num - m.mask[0].sum())}


def run(scenes: int, ratios, variants, seed: int, preset: str) -> dict:
    """Every scene kind x ratio x sampler; the result a record holds."""
    from milan_lab.config import get_config
    from milan_lab.factory.teachers import load_teacher
    model = get_config("pretrain", preset).model
    size, patch = model.image_size, model.patch_size
    teacher = load_teacher()
    out = {"preset": preset, "image_size": size, "patch_size": patch, "scenes": scenes, "teacher": "shipped",
           "ratios": list(ratios), "samplers": list(SAMPLERS), "variants": {}}
    for variant in variants:
        images, counts = object_patches(scenes, variant, size, patch, seed)
        if counts.sum(1).min() == 0:
            raise RuntimeError(f"a {variant} scene without its main object's pixels")  # a bug in the scenes, not bad input
        importance = importance_of(teacher, images)
        out["variants"][variant] = {
            "object_area_share": float(counts.sum(1).mean() / size ** 2),
            "object_patches": float((counts > 0).sum(1).float().mean()),
            "by_ratio": {str(r): {s: measure(counts, importance, r, s, patch, seed) for s in SAMPLERS} for r in ratios}}
    return out


def table(result: dict) -> str:
    """The table of a result (the script prints it; the document's table, scripts/tables.py, is the same): per scene
    kind and mask ratio, for random and semantic masking, the share of scenes with no visible patch touching the main
    object, with none at least half covered by it, and the mean share of its pixels left visible."""
    def pct(v):
        return f"{100 * v['mean']:.1f} [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]"
    rows = ["| scenes | mask ratio | kept patches | no visible object patch, % (random / semantic) | "
            "no visible patch half covered, % (random / semantic) | object pixels visible, % (random / semantic) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for variant, v in result["variants"].items():
        for ratio, by in v["by_ratio"].items():
            rnd, sem = by["random"], by["semantic"]
            rows.append(f"| {variant} (object {100 * v['object_area_share']:.0f} % of the image, {v['object_patches']:.1f} "
                        f"patches) | {float(ratio):g} | {rnd['kept_patches']} | "
                        + " | ".join(f"{pct(rnd[k])} / {pct(sem[k])}" for k in ("none_visible", "none_half_visible",
                                                                                 "visible_share")) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = OneLineParser(prog="hidden_object", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=positive_int, default=2048, help="validation scenes per scene kind")
    p.add_argument("--ratios", type=mask_ratio, nargs="+", default=list(RATIOS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--preset", type=shipped_teacher_preset, default="milan_vit-tiny-p8_offline",
                   help="a preset whose teacher is the shipped one (its image and patch size are used)")
    record_option(p)
    args = p.parse_args(argv)  # every option and the record's place checked here, before the work
    from milan_lab.tools.records import measure_and_record
    measure_and_record(args.record, "hidden-object", lambda: run(args.scenes, args.ratios, args.variants, args.seed, args.preset),
                       table, [args.seed])
    return 0


if __name__ == "__main__":
    sys.exit(main())
