"""Where a class token looks: attention metrics for students, teachers, random encoders and a pixel baseline.

For the last block's class-token attention over the patches (the head mean, and each head), against the
main object (the one the caption names, ``make_scene_with_main_object``), weighted per patch by the
fraction of the patch it covers:

* **object mass**: the share of the attention that falls on the object, sum_i a_i c_i / sum_i a_i, in
  [0, 1]. It grows with the object's size, but it is bounded on every scene kind, so means over
  scenes and kinds are comparable;
* **object AUROC**: the area under the ROC curve of the map against the object, each patch counting as
  ``c`` of a positive and ``1 - c`` of a negative (no threshold on the coverage: the pixel-level AUROC
  of the map upsampled to pixels, soft object edges counting fractionally); 1 when every object patch
  outranks every other, 0.5 for a map blind to the object (a flat map: ties count half), 0 for an
  inverted one. A patch the object half covers is half positive and half negative, and its two halves
  tie, so the best patch map (the coverage itself) stays a little below 1 where the object's edges cut
  patches. It reads only the map's ranking, so maps of any scale (attention, saliency, the teacher's
  importance) compare;
* **object ratio**: the object mass divided by the object's share of the image (1 = no preference).
  Its ceiling, 1 / area share, differs per scene, so its mean is heavy-tailed and not comparable
  between scene kinds: kept for the records and plans that name it;
* **agreement**: Pearson's correlation, over patches, between the map and the teacher's (the
  importance semantic masking samples from), per image.

Scenes are native offline scenes at the encoder's own resolution (the view it trains on), each figure
the mean over the scenes where it is defined (``n`` in its summary; an AUROC needs object and background)
with a bootstrap 95 % interval over scenes (the spread of one model over scenes, not of a recipe over
seeds: recipes are compared over seeds by ``tools.ablation.summarise``).
Two floors, scored on the same scenes: random encoders of the same architecture (several
initialisations), and a map from the pixels alone (``evaluation.saliency.colour_distinctness``), which
a trained encoder's agreement and AUROC must beat to show more than low-level saliency.
"""
from __future__ import annotations

import numpy as np
import torch

from milan_lab.data.scenes import make_scene_with_main_object
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.evaluation.features import patch_cover, run_frozen
from milan_lab.evaluation.saliency import colour_distinctness


def object_mass(attn: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Per image: the share of the attention on the object, sum_i a_i c_i / sum_i a_i, in [0, 1].
    ``attn`` [N, L] (any non-negative weights; an all-zero map counts as uniform), ``cover`` [N, L]
    per-patch coverage in [0, 1] -> [N]."""
    total = attn.sum(1)
    flat = total <= 0
    return np.where(flat, cover.mean(1), (attn * cover).sum(1) / np.where(flat, 1.0, total))


def object_ratio(attn: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Per image: attention mass on the object / the object's area share. ``attn`` [N, L] (any
    non-negative weights), ``cover`` [N, L] per-patch coverage in [0, 1] -> [N], nan where the object
    covers no patch (no area to divide by; a summary counts the image as undefined)."""
    area = cover.mean(1)
    return np.divide(object_mass(attn, cover), area, out=np.full(len(area), np.nan), where=area > 0)


def object_auroc(scores: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Per image: the AUROC of a map against the object, each patch weighted ``c`` as a positive and
    ``1 - c`` as a negative; ties count half. ``scores`` [N, L] (any real map), ``cover`` [N, L] in
    [0, 1] -> [N], nan where the object covers nothing or everything (no negatives or no positives) and
    where the map has a nan score (a nan has no rank: sorted last, it would outrank every patch).

    The exact weighted Mann-Whitney statistic from ranks: with the distinct scores in ascending order
    (ties grouped), sum over groups of positive weight x (negative weight strictly below + half the
    negative weight tied with it), over total positive x total negative weight. Written out because
    sklearn's ``roc_auc_score`` (which the tests compare against, with ``sample_weight``) takes one
    image at a time and checks its inputs on every call; this is O(L log L) per image."""
    out = np.full(len(scores), np.nan)
    for i, (s, pos) in enumerate(zip(np.asarray(scores, dtype=np.float64), np.asarray(cover, dtype=np.float64))):
        neg = 1.0 - pos
        if pos.sum() <= 0 or neg.sum() <= 0 or np.isnan(s).any():
            continue
        distinct, group = np.unique(s, return_inverse=True)  # ascending; tied patches share a group
        pos_g, neg_g = np.bincount(group, pos, len(distinct)), np.bincount(group, neg, len(distinct))
        below = np.cumsum(neg_g) - neg_g  # negative weight strictly below each group's score
        out[i] = pos_g @ (below + 0.5 * neg_g) / (pos.sum() * neg.sum())
    return out


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


def _mean(values: np.ndarray) -> float:
    """The mean over the images whose value is defined (an AUROC is nan without negatives); nan if none is."""
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def summary(values: np.ndarray) -> dict:
    """{"mean", "ci95", "n"} over the ``n`` images whose value is defined (finite), of ``values`` [N]; mean
    and interval nan where none is (a float still, so that a table formats it)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    low, high = bootstrap_ci(values)
    return {"mean": _mean(values), "ci95": [low, high], "n": len(values)}


def scene_pixels(n: int, image_size: int, seed: int = 0, split: str = "val", variant: str = "dense"):
    """(uint8 images [N, S, S, 3], main-object coverage [N, S, S]) of ``n`` native scenes."""
    pairs = [make_scene_with_main_object(seed, split, i, image_size, variant) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def scenes(n: int, image_size: int, seed: int = 0, split: str = "val", variant: str = "dense"):
    """(normalised images [N, 3, S, S], main-object coverage [N, S, S]) of ``n`` native scenes."""
    pixels, cover = scene_pixels(n, image_size, seed, split, variant)
    return to_normalized_tensor(pixels), cover


def class_attention(encoder, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """The last block's class-token attention over the patches, per head: [N, heads, L]."""
    return run_frozen(encoder, lambda x: encoder.get_last_selfattention(x)[:, :, 0, 1:], images, batch_size=batch_size)[0].numpy()


def teacher_importance(teacher, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
    """The teacher's class-token importance [N, L] (what semantic masking samples from)."""
    return run_frozen(teacher, lambda x: teacher(x)[1], images, batch_size=batch_size)[0].numpy()


def map_values(values: np.ndarray, cover: np.ndarray, teacher: np.ndarray | None) -> dict:
    """Per image [N]: object ratio, object mass, object AUROC and (where the teacher's map [N, L] has
    the same patches) agreement with it, of one non-negative map per image [N, L] against the main
    object's coverage per patch [N, L]."""
    out = {"object_ratio": object_ratio(values, cover), "object_mass": object_mass(values, cover),
           "object_auroc": object_auroc(values, cover)}
    if teacher is not None and teacher.shape[1] == values.shape[1]:
        out["agreement"] = agreement(values, teacher)
    return out


def map_metrics(values: np.ndarray, cover: np.ndarray, teacher: np.ndarray | None) -> dict:
    """:func:`map_values` as {"mean", "ci95", "n"} over the images (:func:`summary`)."""
    return {k: summary(v) for k, v in map_values(values, cover, teacher).items()}


def attention_metrics(attn: np.ndarray, cover: np.ndarray, teacher: np.ndarray | None) -> dict:
    """:func:`map_metrics` of the head mean, and each metric's mean per head ("{metric}_per_head"), from
    class-token attention [N, heads, L], main-object coverage per patch [N, L] and the teacher's map [N, L]."""
    out = map_metrics(attn.mean(1), cover, teacher)
    heads = [map_values(attn[:, h], cover, teacher) for h in range(attn.shape[1])]
    for metric in list(out):
        out[f"{metric}_per_head"] = [_mean(h[metric]) for h in heads]
    return out


def encoder_attention_report(encoder, teacher, n: int = 256, seed: int = 0, random_encoders=(),
                             variant: str = "dense") -> dict:
    """The metrics of ``encoder``, of the ``teacher`` itself (its object ratio, mass and AUROC: what the
    student is pulled towards), of each of ``random_encoders`` (the floor) and of the pixel-saliency
    map (``saliency``: colour distinctness, the floor a map needs no encoder for), on the same scenes."""
    size, patch = encoder.patch_embed.img_size[0], encoder.patch_embed.patch_size[0]
    pixels, cover = scene_pixels(n, size, seed, variant=variant)
    images, cover = to_normalized_tensor(pixels), patch_cover(cover, patch)
    target = teacher_importance(teacher, images) if teacher is not None else None
    report = {"scenes": n, "variant": variant, "image_size": size,
              "encoder": attention_metrics(class_attention(encoder, images), cover, target)}
    if target is not None and target.shape[1] == cover.shape[1]:
        teacher_row = map_metrics(target, cover, None)
        report["teacher"] = {k: teacher_row[k] for k in ("object_ratio", "object_mass", "object_auroc")}
    report["random"] = [attention_metrics(class_attention(r, images), cover, target) for r in random_encoders]
    report["saliency"] = map_metrics(colour_distinctness(pixels, patch), cover, target)
    return report
