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
def run_frozen(module: torch.nn.Module, fn: Callable[[torch.Tensor], torch.Tensor], data: Dataset | torch.Tensor,
               device: str | torch.device | None = None, batch_size: int = 256,
               progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(``fn(images)`` of every batch concatenated, on the CPU in float32; the labels [N, ...] or None for
    a tensor of images), with ``module`` in eval mode (its mode restored after) and no gradients.
    ``device``: where the images go (default: where ``module`` is); ``progress``: the label of a
    progress bar on stderr (None: no bar)."""
    device = device_of(module) if device is None else device
    was = module.training
    module.eval()
    out, labels = [], []
    try:
        for images, y in bar(_batches(data, batch_size), progress or "", progress is not None, unit="batch"):
            out.append(fn(images.to(device)).float().cpu())
            if y is not None:
                labels.append(torch.as_tensor(y))
    finally:
        module.train(was)
    return torch.cat(out), (torch.cat(labels) if labels else None)


def extract(encoder, data: Dataset | torch.Tensor, pool: str = "cls", normalize: bool = False,
            device: str | torch.device | None = None, batch_size: int = 256,
            progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features, labels) of a frozen encoder: ``pool`` one of :data:`READOUTS` ([N, D] for cls and
    mean, [N, L, D] for patches, after the final norm), L2-normalised over D with ``normalize``."""
    if pool not in READOUTS:
        raise ValueError(f"unknown readout {pool!r}; known: {', '.join(READOUTS)}")
    readout = READOUTS[pool]

    def fn(images):
        f = readout(encoder.forward_features(images)).float()
        return F.normalize(f, dim=-1) if normalize else f
    return run_frozen(encoder, fn, data, device, batch_size, progress)


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
