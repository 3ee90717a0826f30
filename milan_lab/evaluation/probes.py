"""The probe commands' functions (``milan-lab knn``, ``seg-probe``, ``attention``): a checkpoint in, a
report out, scored through the probe suite (``evaluation.suite``) with the floor beside it (a randomly
initialised encoder of the same architecture, the factory's) and chance.

The full linear-probe recipe (LARS, 100 epochs, augmentation) is ``jobs/linear.py``; the suite's
probes are for monitoring and studies, where features are extracted once and reused.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from milan_lab.config import EncoderConfig, get_config
from milan_lab.data.scenes import SHAPES
from milan_lab.data.segmentation import IGNORE, SegScenes, seg_folder_splits
from milan_lab.errors import DataWarning
from milan_lab.evaluation.attention import encoder_attention_report
from milan_lab.evaluation.dense import confusion, seg_scores
from milan_lab.evaluation.linear import quick_linear_probe  # noqa: F401  (its former home: studies import it from here)
from milan_lab.evaluation.suite import PROBES, Bench, probe_named, score
from milan_lab.factory.models import load_encoder, load_model
from milan_lab.io.checkpoints import resolve_checkpoint
from milan_lab.io.locations import OUTPUTS, is_managed
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import save_weights
from milan_lab.models.vit import ViTEncoder


def _encoder(checkpoint: str | None, preset: str, seed: int = 0) -> ViTEncoder:
    """The encoder of a pretraining checkpoint/output_dir (its architecture from the checkpoint),
    or a randomly initialised one of ``preset`` ('random')."""
    return load_encoder(checkpoint, get_config("pretrain", preset).model, seed)


def offline_features(encoder, image_size: int, train_size: int, val_size: int, pool: str = "cls", seed: int = 0,
                     variant: str = "dense"):
    """((features, labels) of the train split, of the val split) of offline scenes at ``image_size``:
    ``pool`` "cls" (the class token) or "mean" (the mean of the patch tokens), L2-normalised (the
    suite's ``Bench.features``)."""
    if image_size != encoder.patch_embed.img_size[0]:
        raise ValueError(f"image_size {image_size} is not the encoder's ({encoder.patch_embed.img_size[0]})")
    return Bench(encoder, {"eval_train": train_size, "eval_val": val_size}, seed, variant, device="cpu").features(pool)


def random_twin(encoder: ViTEncoder, seed: int = 0) -> ViTEncoder:
    """The factory's randomly initialised encoder (``load_encoder('random')``, seeded by ``seed``) of
    ``encoder``'s architecture (so for an encoder of a preset's size it is the preset's 'random'
    encoder): the floor a probe's score is read against."""
    pe = encoder.patch_embed
    arch = EncoderConfig(image_size=pe.img_size[0], patch_size=pe.patch_size[0], embed_dim=encoder.embed_dim,
                         depth=len(encoder.blocks), num_heads=encoder.num_heads,
                         mlp_ratio=encoder.blocks[0].mlp.fc1.out_features / encoder.embed_dim)
    return load_encoder("random", arch, seed)


def _is_random(checkpoint: str | None) -> bool:
    return checkpoint in (None, "", "random")


def knn_eval(checkpoint: str, preset: str, train_size: int = 2048, val_size: int = 1024, baseline: bool = False,
             progress: bool = False) -> dict:
    """kNN top-1 (k=20, cosine, T=0.07) of a frozen encoder's class token on the offline scenes,
    with ``chance`` (1 / number of classes) and, with ``baseline``, ``random_init``: the same kNN
    on a randomly initialised encoder of the same architecture (seed 0); ``progress``: bars on stderr."""
    encoder = _encoder(checkpoint, preset)
    sizes = {"eval_train": train_size, "eval_val": val_size}

    def knn(enc, name: str) -> float:
        return score(enc, ["knn_cls"], sizes, seed=0, device="cpu", progress=name if progress else None)["knn_cls"]

    result = {"checkpoint": checkpoint, "knn_top1": knn(encoder, "kNN"), "chance": 1 / len(SHAPES),
              "num_classes": len(SHAPES), "train_images": train_size, "val_images": val_size}
    if baseline and not _is_random(checkpoint):
        result["random_init"] = knn(random_twin(encoder), "kNN, random init")
    return result


def probe_eval(checkpoint: str, preset: str, probes=None, sizes: dict | None = None, seed: int = 0,
               variant: str = "dense", baseline: bool = False, progress: bool = False) -> dict:
    """Any registered probes (``evaluation.suite.PROBES``; default all) of a frozen encoder ('random' for a
    random one) at ``sizes`` (over ``suite.SIZES``): ``scores`` (metric -> value) and, with ``baseline``,
    ``random_init``: the same probes on the factory's random encoder of the same architecture (seed
    ``seed``). The attention probe compares with the checkpoint's own teacher. Unknown probes and sizes
    are refused before the checkpoint is read."""
    names = tuple(PROBES) if probes is None else tuple(probes)
    for name in names:
        probe_named(name)
    Bench.check_sizes(sizes)
    teacher = None
    if "attention" in names and not _is_random(checkpoint):
        model = load_model(checkpoint, task="pretrain", teacher="auto")
        encoder, teacher = model.encoder, model.teacher
    else:
        encoder = _encoder(checkpoint, preset, seed)

    def run(enc, name: str) -> dict:
        return score(enc, names, sizes, seed=seed, variant=variant, teacher=teacher, device="cpu",
                     progress=name if progress else None)
    result = {"checkpoint": checkpoint, "probes": list(names), "sizes": Bench(encoder, sizes).sizes, "seed": seed,
              "variant": variant, "scores": run(encoder, "probes")}
    if baseline and not _is_random(checkpoint):
        result["random_init"] = run(random_twin(encoder, seed), "probes, random init")
    return result


def format_probes(r: dict) -> str:
    """One line per metric: its value, the random-init encoder's beside it, and the probe's help."""
    helps = {m: PROBES[name].help for name in r["probes"] if name in PROBES for m in PROBES[name].metrics}
    floor = r.get("random_init", {})

    def cell(v):
        return "-" if v is None else f"{v:.4f}"
    lines = [f"{r['checkpoint']}: {len(r['probes'])} probes on {r['variant']} scenes, seed {r['seed']}"
             + (" (a random-init encoder)" if _is_random(r["checkpoint"]) else "")]
    lines += [f"  {m:<14} {cell(v):>8}" + (f"   random init {cell(floor.get(m)):>8}" if floor else "") + f"   {helps.get(m, '')}"
              for m, v in r["scores"].items()]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def format_knn(r: dict) -> str:
    """One line: the kNN score beside the random-init encoder's and chance."""
    floor = (f"; random init, same architecture: {_pct(r['random_init'])}" if "random_init" in r
             else " (a random-init encoder)" if _is_random(r["checkpoint"]) else "")
    return (f"{r['checkpoint']}: kNN top-1 {_pct(r['knn_top1'])} on {r['val_images']} validation scenes (k=20, "
            f"cosine, {r['train_images']} training scenes){floor}; chance {_pct(r['chance'])} ({r['num_classes']} classes)")


def format_seg_probe(r: dict) -> str:
    """The dense probe's scores, the random-init encoder's and chance, then the per-class IoU."""
    def scores(s: dict) -> str:
        return f"mIoU {_pct(s['miou'])}, pixel accuracy {_pct(s['pixel_acc'])}"
    lines = [f"{r['checkpoint']}: {scores(r)} ({r['val_images']} validation images, {r['data']})"
             + (" (a random-init encoder)" if _is_random(r["checkpoint"]) else "")]
    if "random_init" in r:
        lines.append(f"  random init, same architecture: {scores(r['random_init'])}")
    lines.append(f"  chance: {scores(r['chance'])} ({r['chance']['rule']})")
    lines += [f"  {name:<12} IoU {'-' if iou is None else f'{100 * iou:5.1f} %'}" for name, iou in r["iou"].items()]
    if "probe" in r:
        lines.append(f"probe saved to {r['probe']}")
    return "\n".join(lines)


PROBE_TASK = "seg_probe"  # the task a saved dense probe stores: none of the factory's, so loading one as a model is refused


def probe_path_for(checkpoint_file: str | Path) -> Path:
    """Where ``seg-probe`` saves the dense probe trained for a checkpoint (unless told ``--out``):
    beside a checkpoint of one's own (``STEM.seg_probe.safetensors``); for a shipped or downloaded
    zoo model, whose file lies in the installed package or the download cache (never written by a
    measurement), ``outputs/probes/STEM/STEM.seg_probe.safetensors`` under the working folder."""
    p = Path(checkpoint_file)
    beside = _beside(p)
    return OUTPUTS / "probes" / p.name.split(".")[0] / beside.name if is_managed(p) else beside


def probe_candidates(checkpoint_file: str | Path) -> list[Path]:
    """Where to look for a checkpoint's dense probe, the first that exists wins: where ``seg-probe``
    saves it, then beside the file (the probe shipped with a shipped model)."""
    return list(dict.fromkeys([probe_path_for(checkpoint_file), _beside(Path(checkpoint_file))]))


def _beside(checkpoint_file: Path) -> Path:
    return checkpoint_file.with_name(f"{checkpoint_file.name.split('.')[0]}.seg_probe.safetensors")


def _dense_probe(encoder, train, val, steps: int, seed: int, progress: str | None):
    """(scores, probe, validation labels [N, H, W]): the suite's dense probe on the given splits, with
    the validation labels kept for the chance level."""
    bench = Bench(encoder, {"seg_steps": steps}, seed, datasets={"seg": (train, val)}, device="cpu", progress=progress)
    bench.score(["miou"])
    return bench.kept["dense_scores"], bench.kept["dense_probe"], bench.kept["dense_val_labels"]


def majority_chance(labels: torch.Tensor, classes) -> dict:
    """The dense probe's chance level: the scores of labelling every pixel with the most frequent
    class of the validation split (the background on the offline scenes), scored as the probe is
    (mIoU over the classes in the truth or the prediction)."""
    valid = labels[labels != IGNORE]
    majority = int(torch.bincount(valid, minlength=len(classes)).argmax())
    scores = seg_scores(confusion(torch.full_like(labels, majority), labels, len(classes)))
    return {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
            "rule": f"every pixel labelled {classes[majority]!r}, the most frequent class of the validation split"}


def seg_probe_eval(checkpoint: str, preset: str, data: str = "offline", train_size: int = 1024, val_size: int = 512,
                   steps: int = 300, seed: int = 0, save: bool = True, return_models: bool = False,
                   baseline: bool = False, progress: bool = False, out: str | Path | None = None):
    """The linear dense probe on a frozen encoder ('random' for a random one): mIoU, pixel
    accuracy and per-class IoU on the validation split, with ``chance`` (:func:`majority_chance`)
    and, with ``baseline``, ``random_init``: the same probe (sizes, steps, seed) on a randomly
    initialised encoder of the same architecture; the probe is saved to ``out`` or where
    :func:`probe_path_for` says (beside the checkpoint, or under outputs/ for a shipped or zoo model).
    ``progress``: bars on stderr. With ``return_models``: (result, encoder, probe)."""
    target = None
    if save and (out is not None or not _is_random(checkpoint)):  # where the probe goes, checked before it is trained
        target = check_writable(Path(out) if out is not None else probe_path_for(resolve_checkpoint(checkpoint)),
                                "the probe file")
    encoder = _encoder(checkpoint, preset, seed)
    size = encoder.patch_embed.img_size[0]
    if data == "offline":
        train, val = SegScenes("train", train_size, size, seed), SegScenes("val", val_size, size, seed)
    else:
        train, val = seg_folder_splits(data, size)
    scores, probe, val_labels = _dense_probe(encoder, train, val, steps, seed, "seg-probe" if progress else None)
    result = {"checkpoint": checkpoint, "data": data, "miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
              "iou": dict(zip(train.classes, scores["iou"])), "train_images": len(train), "val_images": len(val),
              "chance": majority_chance(val_labels, train.classes)}
    if baseline and not _is_random(checkpoint):
        floor = _dense_probe(random_twin(encoder, seed), train, val, steps, seed,
                             "seg-probe, random init" if progress else None)[0]
        result["random_init"] = {"miou": floor["miou"], "pixel_acc": floor["pixel_acc"]}
    unknown = getattr(val, "unknown_labels", None)
    if unknown:  # pixels no training class covers: left out of the score, and said so
        ignored = result["ignored_val_pixels"] = {"values": list(unknown), "pixels": sum(unknown.values()),
                                                  "share": sum(unknown.values()) / val.pixels}
        warnings.warn(f"{ignored['pixels']} validation pixels ({100 * ignored['share']:.2f} %) carry labels no training "
                      f"class has ({', '.join(map(str, ignored['values'][:8]))}); they are left out of the mIoU",
                      DataWarning, stacklevel=2)
    if target is not None:
        save_weights(target, probe.state_dict(), {"classes": list(train.classes), "image_size": size}, task=PROBE_TASK)
        result["probe"] = str(target)
    return (result, encoder, probe) if return_models else result


def attention_eval(checkpoint: str, n: int = 256, random_inits: int = 3, seed: int = 0, variant: str = "dense") -> dict:
    """The attention report (``evaluation.attention.encoder_attention_report``) for a pretraining
    checkpoint (or run folder) against the teacher it was trained with, with ``random_inits`` random
    encoders of its architecture (seeds 0..k-1) as the floor; ``seed`` draws the scenes. Both are in
    the report (``seed``, ``random_init_seeds``)."""
    model = load_model(checkpoint, task="pretrain", teacher="auto")
    randoms = [load_encoder("random", model.cfg, seed=k) for k in range(random_inits)]
    return {"checkpoint": str(checkpoint), "seed": seed, "random_init_seeds": list(range(random_inits)),
            **encoder_attention_report(model.encoder, model.teacher, n, seed, randoms, variant)}


def format_attention(r: dict) -> str:
    """One line per map (encoder, teacher, random inits, pixel saliency): each metric's mean [interval],
    "(n of N scenes)" after it where it is defined on fewer than all scenes, "undefined" where on none;
    a metric a report lacks (an older record's mass and AUROC) is left out."""
    def cell(label, m, fmt):
        if m is None or m["mean"] is None:
            return ""
        n = m.get("n", r["scenes"])  # records older than the count: every scene
        of = f" ({n} of {r['scenes']} scenes)" if n < r["scenes"] else ""
        if not math.isfinite(m["mean"]):
            return f"   {label} undefined{of}"
        return f"   {label} {m['mean']:{fmt}} [{m['ci95'][0]:{fmt}}, {m['ci95'][1]:{fmt}}]{of}"

    def row(name, m):
        return (f"  {name:<24}" + cell("object ratio", m.get("object_ratio"), ".2f") + cell("mass", m.get("object_mass"), ".3f")
                + cell("AUROC", m.get("object_auroc"), ".3f") + cell("agreement", m.get("agreement"), "+.2f"))
    lines = [f"{r['checkpoint']}: last-block class-token attention (head mean) on {r['scenes']} {r.get('variant', 'dense')} "
             f"scenes at {r['image_size']} px, mean [bootstrap 95 % interval over scenes]",
             "  (mass: share of the attention on the main object; AUROC: the map against the object, 0.5 = blind; "
             "agreement: Pearson r with the teacher's map)", row("encoder", r["encoder"])]
    if "teacher" in r:
        lines.append(row("teacher", r["teacher"]))
    lines += [row(f"random init {k}", m) for k, m in enumerate(r["random"])]
    if "saliency" in r:
        lines.append(row("pixel saliency (colour)", r["saliency"]))
    return "\n".join(lines)
