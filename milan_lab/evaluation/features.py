"""What every probe reads off a frozen encoder: one extractor, batched, without gradients, in eval mode.

A readout turns the encoder's tokens [N, 1 + L, D] into features: ``cls`` (the class token, [N, D]),
``mean`` (the mean of the patch tokens, [N, D]) or ``patches`` (the patch grid, [N, L, D]);
:func:`object_pool` pools a patch grid over the main object's ground-truth coverage (the readout for
scenes whose labels say where the object is). :func:`run_frozen` is the loop under all of them, also
for outputs other than tokens (the last block's attention, a teacher's importance map).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from milan_lab.evaluation.progress import bar

READOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "cls": lambda tokens: tokens[:, 0],
    "mean": lambda tokens: tokens[:, 1:].mean(1),
    "patches": lambda tokens: tokens[:, 1:],
}
POOL_NAMES = {"cls": "class token", "mean": "mean patch", "patches": "patch grid", "object": "object-pooled patches"}


def device_of(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s weights are (the CPU for a module without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _batches(data, batch_size: int):
    """(images, labels or None) batches of a Dataset of (image, label) or of an image tensor [N, 3, H, W]."""
    if isinstance(data, torch.Tensor):
        return ((data[i:i + batch_size], None) for i in range(0, len(data), batch_size))
    # a generator of its own: iterating must not draw from the global RNG that seeded runs rely on
    return DataLoader(data, batch_size=batch_size, generator=torch.Generator())


@torch.no_grad()
def run_frozen(module: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor | dict], data: Dataset | torch.Tensor,
               device: str | torch.device | None = None, batch_size: int = 256,
               progress: str | None = None) -> tuple[torch.Tensor | dict, torch.Tensor | None]:
    """(``fn(images)`` of every batch concatenated, on the CPU in float32 (a dict of such tensors when
    ``fn`` returns a dict); the labels [N, ...] or None for a tensor of images), with ``module`` in eval
    mode (its mode restored after) and no gradients. ``device``: where the images go (default: where
    ``module`` is); ``progress``: the label of a progress bar on stderr (None: no bar)."""
    device = device_of(module) if device is None else device
    was = module.training
    module.eval()
    out, labels = [], []
    try:
        for images, y in bar(_batches(data, batch_size), progress or "", progress is not None, unit="batch"):
            got = fn(images.to(device))
            out.append({k: v.float().cpu() for k, v in got.items()} if isinstance(got, dict) else got.float().cpu())
            if y is not None:
                labels.append(torch.as_tensor(y))
    finally:
        module.train(was)
    joined = {k: torch.cat([o[k] for o in out]) for k in out[0]} if isinstance(out[0], dict) else torch.cat(out)
    return joined, (torch.cat(labels) if labels else None)


def extract_readouts(encoder, data: Dataset | torch.Tensor, pools=("cls", "mean"), normalize: bool = False,
                     device: str | torch.device | None = None, batch_size: int = 256,
                     progress: str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """({pool: features} for each of ``pools``, labels) from ONE forward pass per batch (the forward is the
    cost; a readout of its tokens is next to nothing). Each pool one of :data:`READOUTS` ([N, D] for cls and
    mean, [N, L, D] for patches, after the final norm), L2-normalised over D with ``normalize``."""
    pools = tuple(pools)
    unknown = [p for p in pools if p not in READOUTS]
    if unknown:
        raise ValueError(f"unknown readout {unknown[0]!r}; known: {', '.join(READOUTS)}")

    def fn(images):
        tokens = encoder.forward_features(images).float()
        return {p: F.normalize(READOUTS[p](tokens), dim=-1) if normalize else READOUTS[p](tokens) for p in pools}
    return run_frozen(encoder, fn, data, device, batch_size, progress)


def extract(encoder, data: Dataset | torch.Tensor, pool: str = "cls", normalize: bool = False,
            device: str | torch.device | None = None, batch_size: int = 256,
            progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features, labels) of a frozen encoder for one readout ``pool`` (:func:`extract_readouts`)."""
    features, labels = extract_readouts(encoder, data, (pool,), normalize, device, batch_size, progress)
    return features[pool], labels


def patch_cover(cover: np.ndarray, patch: int) -> np.ndarray:
    """Fraction of each patch an object covers: [N, H, W] in [0, 1] -> [N, L]."""
    n, h, w = cover.shape
    return cover.reshape(n, h // patch, patch, w // patch, patch).mean((2, 4)).reshape(n, -1)


def object_pool(patches: torch.Tensor, cover: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Patch tokens [N, L, D] averaged with the object's per-patch coverage [N, L] (:func:`patch_cover`)
    as weights -> [N, D]; an image without the object falls back to the mean patch."""
    w = torch.as_tensor(cover, dtype=patches.dtype)
    empty = w.sum(1, keepdim=True) <= 0
    w = torch.where(empty, torch.ones_like(w), w)
    return (w.unsqueeze(-1) * patches).sum(1) / w.sum(1, keepdim=True)
