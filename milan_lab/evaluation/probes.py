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
from milan_lab.data.segmentation import SegScenes, seg_folder_splits
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import DataWarning
from milan_lab.evaluation.dense import seg_probe
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


def knn_eval(checkpoint: str, preset: str, train_size: int = 2048, val_size: int = 1024) -> dict:
    encoder = _encoder(checkpoint, preset)
    size = encoder.patch_embed.img_size[0]
    train, val = offline_features(encoder, size, train_size, val_size)
    return {"checkpoint": checkpoint, "knn_top1": knn_top1(train, val)}


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


def seg_probe_eval(checkpoint: str, preset: str, data: str = "offline", train_size: int = 1024, val_size: int = 512,
                   steps: int = 300, seed: int = 0, save: bool = True, return_models: bool = False,
                   out: str | Path | None = None):
    """The linear dense probe on a frozen encoder ('random' for a random one): mIoU, pixel
    accuracy and per-class IoU on the validation split; the probe is saved to ``out`` or where
    :func:`probe_path_for` says (beside the checkpoint, or under outputs/ for a shipped or zoo model).
    With ``return_models``: (result, encoder, probe)."""
    target = None
    if save and (out is not None or checkpoint not in ("", "random")):  # where the probe goes, checked before it is trained
        target = check_writable(Path(out) if out is not None else probe_path_for(resolve_checkpoint(checkpoint)),
                                "the probe file")
    encoder = _encoder(checkpoint, preset, seed)
    size = encoder.patch_embed.img_size[0]
    if data == "offline":
        train, val = SegScenes("train", train_size, size, seed), SegScenes("val", val_size, size, seed)
    else:
        train, val = seg_folder_splits(data, size)
    scores, probe = seg_probe(encoder, train, val, len(train.classes), steps, seed)
    result = {"checkpoint": checkpoint, "data": data, "miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
              "iou": dict(zip(train.classes, scores["iou"])), "train_images": len(train), "val_images": len(val)}
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
