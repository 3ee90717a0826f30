"""Cheap evaluation of frozen encoders: kNN and a quick linear classifier on cached features.

The full linear-probe recipe (LARS, 100 epochs, augmentation) is ``jobs/linear.py``; these are
for monitoring and ablations, where features are extracted once and reused.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from milan_lab.config import get_config
from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.scenes import SHAPES
from milan_lab.data.segmentation import IGNORE, SegScenes, seg_folder_splits
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import DataWarning
from milan_lab.evaluation.dense import confusion, evaluate_probe, patch_features, seg_scores, train_probe
from milan_lab.evaluation.knn import extract_features, knn_top1
from milan_lab.factory.models import load_encoder
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
    """((features, labels) of the train split, of the val split): ``pool`` "cls" (the class
    token) or "mean" (the mean of the patch tokens)."""
    tf = eval_transform(image_size, crop_ratio=1.0)
    train = extract_features(encoder, OfflineScenes("train", train_size, image_size, seed, tf, variant=variant), "cpu",
                             pool=pool)
    val = extract_features(encoder, OfflineScenes("val", val_size, image_size, seed, tf, variant=variant), "cpu", pool=pool)
    return train, val


def quick_linear_probe(train, val, num_classes: int, steps: int = 300, lr: float = 0.05, seed: int = 0) -> float:
    """Full-batch training of BatchNorm(affine=False) + linear on cached features -> val top-1."""
    (xf, y), (vf, vy) = train, val
    mean, std = xf.mean(0), xf.std(0) + 1e-6
    xf, vf = (xf - mean) / std, (vf - mean) / std
    torch.manual_seed(seed)
    head = torch.nn.Linear(xf.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(head(xf), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((head(vf).argmax(1) == vy).float().mean())


def random_twin(encoder: ViTEncoder, seed: int = 0) -> ViTEncoder:
    """A randomly initialised encoder of ``encoder``'s architecture, seeded as ``load_encoder('random')``
    is (so for an encoder of a preset's size it is the preset's 'random' encoder): the floor a
    probe's score is read against."""
    pe = encoder.patch_embed
    torch.manual_seed(seed)
    return ViTEncoder(pe.img_size[0], pe.patch_size[0], encoder.embed_dim, len(encoder.blocks), encoder.num_heads,
                      encoder.blocks[0].mlp.fc1.out_features / encoder.embed_dim, 0.0,
                      not isinstance(encoder.norm, torch.nn.Identity)).eval()


def _is_random(checkpoint: str | None) -> bool:
    return checkpoint in (None, "", "random")


def knn_eval(checkpoint: str, preset: str, train_size: int = 2048, val_size: int = 1024, baseline: bool = False,
             progress: bool = False) -> dict:
    """kNN top-1 (k=20, cosine, T=0.07) of a frozen encoder's class token on the offline scenes,
    with ``chance`` (1 / number of classes) and, with ``baseline``, ``random_init``: the same kNN
    on a randomly initialised encoder of the same architecture (seed 0); ``progress``: bars on stderr."""
    encoder = _encoder(checkpoint, preset)
    size = encoder.patch_embed.img_size[0]
    tf = eval_transform(size, crop_ratio=1.0)
    train_set, val_set = OfflineScenes("train", train_size, size, 0, tf), OfflineScenes("val", val_size, size, 0, tf)

    def score(enc, name: str) -> float:
        train = extract_features(enc, train_set, "cpu", progress=f"{name}: train features" if progress else None)
        val = extract_features(enc, val_set, "cpu", progress=f"{name}: val features" if progress else None)
        return knn_top1(train, val)

    result = {"checkpoint": checkpoint, "knn_top1": score(encoder, "kNN"), "chance": 1 / len(SHAPES),
              "num_classes": len(SHAPES), "train_images": train_size, "val_images": val_size}
    if baseline and not _is_random(checkpoint):
        result["random_init"] = score(random_twin(encoder), "kNN, random init")
    return result


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
    """(scores, probe, validation labels [N, H, W]): ``evaluation.dense.seg_probe`` with the
    validation labels kept for the chance level, and progress bars."""
    label = (lambda what: f"{progress}: {what}") if progress else (lambda what: None)
    train_f = patch_features(encoder, train, progress=label("train features"))
    val_f = patch_features(encoder, val, progress=label("val features"))
    probe = train_probe(*train_f, len(train.classes), steps=steps, seed=seed, progress=label("probe"))
    return evaluate_probe(probe, *val_f, len(train.classes)), probe, val_f[1]


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
        save_weights(target, probe.state_dict(), {"classes": list(train.classes), "image_size": size})
        result["probe"] = str(target)
    return (result, encoder, probe) if return_models else result
