"""What it filled in: a bank of real patches with their teacher targets, to read a predicted feature by.

A feature-target model predicts, for each hidden patch, a teacher feature: no pixels to look at. The
bank holds the patches of offline validation scenes (their pixels, their teacher target features,
L2-normalised, and their class: the label map's majority in the patch, ``SEG_CLASSES``), so that a
predicted feature can be shown as the real patch whose target is nearest to it (cosine), beside the
patch nearest to the true target. The top-k retrieval accuracy says how often the hidden patch's own
class is among the classes of the k bank patches nearest to the prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene, patch_labels
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.errors import ConfigError


@dataclass
class PatchBank:
    """``features`` [M, D] L2-normalised teacher targets, ``labels`` [M] class indices into ``classes``,
    ``crops`` [M, p, p, 3] uint8 pixels of each patch."""
    features: torch.Tensor
    labels: torch.Tensor
    crops: np.ndarray
    classes: tuple = SEG_CLASSES

    def __post_init__(self):
        if not len(self.features) == len(self.labels) == len(self.crops):
            raise ConfigError(f"a patch bank needs one label and one crop per feature, got {len(self.features)} features, "
                              f"{len(self.labels)} labels, {len(self.crops)} crops")
        self.features = F.normalize(self.features.float(), dim=-1)
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.features)


def crops_of(images: np.ndarray, patch: int) -> np.ndarray:
    """[N, S, S, 3] -> [N * L, p, p, 3], row-major patches as the ViT orders them."""
    n, s = images.shape[:2]
    g = s // patch
    return images.reshape(n, g, patch, g, patch, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n * g * g, patch, patch, 3)


@torch.no_grad()
def build_patch_bank(teacher, n_scenes: int = 64, seed: int = 0, split: str = "val", variant: str = "dense",
                     batch_size: int = 64) -> PatchBank:
    """The patches of ``n_scenes`` offline scenes of ``split`` at the teacher's resolution, with the
    teacher's target features (``Teacher.forward``'s patch tokens: what a MILAN model predicts)."""
    if n_scenes < 1:
        raise ConfigError(f"a patch bank needs at least one scene, got {n_scenes}")
    size, patch = teacher.image_size, teacher.patch_size
    pairs = [make_labelled_scene(seed, split, i, size, variant) for i in range(n_scenes)]
    images = np.stack([p[0] for p in pairs])
    x = to_normalized_tensor(images)
    feats = torch.cat([teacher(x[i:i + batch_size])[0][:, 1:] for i in range(0, len(x), batch_size)])
    labels = np.stack([patch_labels(p[1], patch).reshape(-1) for p in pairs]).reshape(-1)
    return PatchBank(feats.reshape(-1, feats.shape[-1]), torch.from_numpy(labels.astype(np.int64)), crops_of(images, patch))


def nearest(bank: PatchBank, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosine similarities [Q, k], bank indices [Q, k]) of the ``k`` bank patches nearest to each of
    ``queries`` [Q, D], nearest first."""
    if not 1 <= k <= len(bank):
        raise ConfigError(f"k must be in 1..{len(bank)} (the bank's patches), got {k}")
    sim = F.normalize(queries.float(), dim=-1) @ bank.features.T
    return sim.topk(k, dim=1)


def retrieval_hits(bank: PatchBank, queries: torch.Tensor, true_labels, k: int = 5) -> torch.Tensor:
    """[Q] bool: whether each query's true class is among the classes of its ``k`` nearest bank patches."""
    _, idx = nearest(bank, queries, k)
    return (bank.labels[idx] == torch.as_tensor(true_labels, dtype=torch.long)[:, None]).any(1)


def filled_in(bank: PatchBank, pred: torch.Tensor, target: torch.Tensor, mask, true_labels, k: int = 5) -> dict:
    """For the hidden patches of one image (``mask`` [L], 1 = hidden; ``pred``, ``target`` [L, D];
    ``true_labels`` [L]): {'patches': their indices [H]; 'from_pred', 'from_target': the bank index of the
    patch nearest to the prediction and to the true target [H]; 'hits' [H] (top-k retrieval);
    'accuracy' over all hidden patches and 'object_accuracy' over those not of class 0 (None if none); 'k'}."""
    hidden = torch.as_tensor(np.asarray(mask)).reshape(-1).bool().nonzero()[:, 0]
    if not len(hidden):
        raise ConfigError("no hidden patch to read: hide at least one")
    labels = torch.as_tensor(np.asarray(true_labels), dtype=torch.long).reshape(-1)[hidden]
    from_pred = nearest(bank, pred[hidden], 1)[1][:, 0]
    from_target = nearest(bank, target[hidden], 1)[1][:, 0]
    hits = retrieval_hits(bank, pred[hidden], labels, k)
    on_object = labels > 0
    return {"patches": hidden, "from_pred": from_pred, "from_target": from_target, "hits": hits, "k": k,
            "labels": labels, "accuracy": float(hits.float().mean()),
            "object_accuracy": float(hits[on_object].float().mean()) if on_object.any() else None}


def pasted(image_crops: np.ndarray, bank: PatchBank, patches, indices) -> np.ndarray:
    """An image [S, S, 3] uint8 (from its own crops [L, p, p, 3]) with each of ``patches`` replaced by the
    bank crop ``indices`` names: the hidden patches as the bank reads the model's prediction."""
    crops = image_crops.copy()
    crops[np.asarray(patches)] = bank.crops[np.asarray(indices)]
    num, p = crops.shape[:2]
    g = int(round(num ** 0.5))
    return crops.reshape(g, g, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(g * p, g * p, 3)


def top_words(teacher, features: torch.Tensor, words, k: int = 3) -> list[list[tuple[str, float]]]:
    """The ``k`` of ``words`` whose text embedding (the teacher's text tower) is nearest to each of
    ``features`` [Q, D], with the cosine: the teacher's words for a predicted feature; [] per query
    when the teacher has no text tower (no tokenizer)."""
    words = list(words)
    if getattr(teacher, "tokenizer", None) is None or not words:
        return [[] for _ in range(len(features))]
    sim = F.normalize(features.float(), dim=-1) @ teacher.encode_text(words).T
    top = sim.topk(min(k, len(words)), dim=1)
    return [[(words[j], float(s)) for s, j in zip(row_s, row_i)] for row_s, row_i in zip(top.values.tolist(), top.indices.tolist())]
