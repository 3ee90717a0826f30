"""Where a class token looks: one attention metric for students, teachers and random encoders.

For the last block's class-token attention over the patches (the head mean, and each head):

* **object ratio**: the share of attention on the main object's pixels divided by the object's
  share of the image (1 = no preference, 2 = twice the attention its area would get). The main
  object is the one the caption names (``make_scene_with_main_object``), weighted per patch by the
  fraction of the patch it covers;
* **agreement**: Pearson's correlation, over patches, between the map and the teacher's (the
  importance semantic masking samples from), per image.

Scenes are native offline scenes at the encoder's own resolution (the view it trains on), each
figure the mean over ``n`` scenes with a bootstrap 95 % interval over scenes. A random encoder of the
same architecture, over several initialisations, is the floor.
"""
from __future__ import annotations

import numpy as np
import torch

from milan_lab.data.scenes import make_scene_with_main_object
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.evaluation.features import patch_cover, run_frozen


def object_ratio(attn: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Per image: attention mass on the object / the object's area share. ``attn`` [N, L] (any
    non-negative weights), ``cover`` [N, L] per-patch coverage in [0, 1]."""
    mass = (attn * cover).sum(1) / attn.sum(1)
    return mass / cover.mean(1)


def agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per image: Pearson's correlation over patches of two maps [N, L] (0 where one is flat)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(denom > 0, (a * b).sum(1) / np.where(denom > 0, denom, 1), 0.0)


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling images."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, (1 + level) / 2))


def summary(values: np.ndarray) -> dict:
    low, high = bootstrap_ci(values)
    return {"mean": float(values.mean()), "ci95": [low, high]}


def scenes(n: int, image_size: int, seed: int = 0, split: str = "val", variant: str = "dense"):
    """(normalised images [N, 3, S, S], main-object coverage [N, S, S]) of ``n`` native scenes."""
    pairs = [make_scene_with_main_object(seed, split, i, image_size, variant) for i in range(n)]
    return to_normalized_tensor(np.stack([p[0] for p in pairs])), np.stack([p[1] for p in pairs])


def class_attention(encoder, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """The last block's class-token attention over the patches, per head: [N, heads, L]."""
    return run_frozen(encoder, lambda x: encoder.get_last_selfattention(x)[:, :, 0, 1:], images, batch_size=batch_size)[0].numpy()


def teacher_importance(teacher, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """The teacher's class-token importance [N, L] (what semantic masking samples from)."""
    return run_frozen(teacher, lambda x: teacher(x)[1], images, batch_size=batch_size)[0].numpy()


def attention_metrics(attn: np.ndarray, cover: np.ndarray, teacher: np.ndarray | None) -> dict:
    """Object ratio and agreement with the teacher, head mean and per head, from class-token
    attention [N, heads, L], main-object coverage per patch [N, L] and the teacher's map [N, L]."""
    mean = attn.mean(1)
    out = {"object_ratio": summary(object_ratio(mean, cover)),
           "object_ratio_per_head": [summary(object_ratio(attn[:, h], cover))["mean"] for h in range(attn.shape[1])]}
    if teacher is not None and teacher.shape[1] == mean.shape[1]:
        out["agreement"] = summary(agreement(mean, teacher))
        out["agreement_per_head"] = [float(agreement(attn[:, h], teacher).mean()) for h in range(attn.shape[1])]
    return out


def encoder_attention_report(encoder, teacher, n: int = 256, seed: int = 0, random_encoders=(),
                             variant: str = "dense") -> dict:
    """The metrics of ``encoder``, of the ``teacher`` itself (its object ratio: the ceiling the
    student is pulled towards), and of each of ``random_encoders`` (the floor), on the same scenes."""
    size, patch = encoder.patch_embed.img_size[0], encoder.patch_embed.patch_size[0]
    images, cover = scenes(n, size, seed, variant=variant)
    cover = patch_cover(cover, patch)
    target = teacher_importance(teacher, images) if teacher is not None else None
    report = {"scenes": n, "variant": variant, "image_size": size,
              "encoder": attention_metrics(class_attention(encoder, images), cover, target)}
    if target is not None and target.shape[1] == cover.shape[1]:
        report["teacher"] = {"object_ratio": summary(object_ratio(target, cover))}
    report["random"] = [attention_metrics(class_attention(r, images), cover, target) for r in random_encoders]
    return report
