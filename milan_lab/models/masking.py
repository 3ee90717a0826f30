"""Mask samplers. MAE's conventions throughout:

* ``ids_shuffle [N, L]``: patch order, the first ``len_keep`` are kept;
* ``ids_keep [N, len_keep]``, ``ids_restore [N, L]`` (argsort of ids_shuffle);
* ``mask [N, L]``: 0 is keep, 1 is remove.

``len_keep = int(L * (1 - mask_ratio))`` as in MAE and mmpretrain. Every sampler takes an
optional ``torch.Generator`` so that a mask can be reproduced exactly.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from milan_lab.registry import SAMPLERS


class Masking(NamedTuple):
    ids_keep: torch.Tensor     # [N, len_keep]
    ids_restore: torch.Tensor  # [N, L]
    mask: torch.Tensor         # [N, L], 0 keep, 1 remove
    ids_shuffle: torch.Tensor  # [N, L], kept patches first

    @property
    def ids_dump(self) -> torch.Tensor:
        """Indices of the removed patches [N, L - len_keep], in shuffle order."""
        return self.ids_shuffle[:, self.ids_keep.shape[1]:]


def len_keep(num_patches: int, mask_ratio: float) -> int:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, int(num_patches * (1 - mask_ratio)))


def _from_shuffle(ids_shuffle: torch.Tensor, keep: int) -> Masking:
    n, num = ids_shuffle.shape
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(n, num, device=ids_shuffle.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Masking(ids_shuffle[:, :keep], ids_restore, mask, ids_shuffle)


def from_order(ids_shuffle: torch.Tensor, keep: int) -> Masking:
    """The masking that keeps the first ``keep`` patches of each row of ``ids_shuffle`` [N, L]: a
    sampler's patch order at another budget (its ``ids_shuffle`` does not depend on the ratio)."""
    if not 1 <= keep <= ids_shuffle.shape[1]:
        raise ValueError(f"keep must be in 1..{ids_shuffle.shape[1]}, got {keep}")
    return _from_shuffle(ids_shuffle, keep)


def from_mask(mask: torch.Tensor) -> Masking:
    """The masking of a given mask [N, L] (1 = removed, every row hiding as many patches, at least
    one patch kept): kept patches first, in image order, then the removed ones."""
    mask = torch.as_tensor(mask).float()
    removed = mask.sum(1)
    if mask.ndim != 2 or not torch.all(removed == removed[0]):
        raise ValueError("a mask must be [N, L] with the same number of removed patches in every row")
    keep = mask.shape[1] - int(removed[0])
    return from_order(torch.argsort(mask, dim=1, stable=True), keep)


def random_masking(n: int, num_patches: int, mask_ratio: float, device=None,
                   generator: torch.Generator | None = None) -> Masking:
    """MAE: argsort of uniform noise; small noise is kept."""
    noise = torch.rand(n, num_patches, device=device, generator=generator)
    return _from_shuffle(torch.argsort(noise, dim=1), len_keep(num_patches, mask_ratio))


def semantic_masking(importance: torch.Tensor, mask_ratio: float,
                     generator: torch.Generator | None = None) -> Masking:
    """MILAN: draw the patch order from the class-token attention without replacement
    (``torch.multinomial``); a high-attention patch is likely to come early, i.e. stay visible.
    importance: [N, L], non-negative."""
    num = importance.shape[1]
    ids_shuffle = torch.multinomial(importance.float().clamp_min(1e-12), num, replacement=False, generator=generator)
    return _from_shuffle(ids_shuffle, len_keep(num, mask_ratio))


def topk_masking(importance: torch.Tensor, mask_ratio: float, inverse: bool = False) -> Masking:
    """Deterministic: keep the highest-attention patches (``inverse``: the lowest). For teaching
    and ablation -- it shows why MILAN samples instead of taking the top-k."""
    ids_shuffle = torch.argsort(importance, dim=1, descending=not inverse, stable=True)
    return _from_shuffle(ids_shuffle, len_keep(importance.shape[1], mask_ratio))


def register_sampler(name: str, *, needs_teacher: bool, help: str):
    """Decorator: register a mask sampler under ``name`` in :data:`SAMPLERS` (the config, the app,
    the notebooks' checks and ``--help`` read it). The function is called as
    ``fn(n, num_patches, mask_ratio, importance, device, generator) -> Masking``, ``importance``
    [N, L] being the teacher's class-token attention, or None without a teacher: ``needs_teacher``
    says whether the sampler reads it (a teacher-free sampler lets a pixel-target run go without
    loading CLIP). ``help`` is the one line the app and ``--help`` show."""
    return SAMPLERS.register(name, help=help, needs_teacher=bool(needs_teacher))


# The built-ins, bound to their declarations in milan_lab.registry (names, helps and flags are read there
# without importing torch; display order is the declarations').
@SAMPLERS.bind("semantic")
def _semantic(n, num_patches, mask_ratio, importance, device, generator):
    return semantic_masking(importance, mask_ratio, generator)


@SAMPLERS.bind("random")
def _random(n, num_patches, mask_ratio, importance, device, generator):
    return random_masking(n, num_patches, mask_ratio, device, generator)


@SAMPLERS.bind("topk")
def _topk(n, num_patches, mask_ratio, importance, device, generator):
    return topk_masking(importance, mask_ratio)


@SAMPLERS.bind("inverse")
def _inverse(n, num_patches, mask_ratio, importance, device, generator):
    return topk_masking(importance, mask_ratio, inverse=True)


def sample_mask(sampler: str, mask_ratio: float, n: int, num_patches: int, importance: torch.Tensor | None = None,
                device=None, generator: torch.Generator | None = None) -> Masking:
    """Dispatch by name to a registered sampler (:data:`SAMPLERS`). importance: [N, L] or None;
    a sampler that needs the teacher refuses None."""
    entry = SAMPLERS.lookup(sampler)
    if entry.needs_teacher and importance is None:
        raise ValueError(f"sampler {sampler!r} needs the teacher's class-token attention (importance)")
    return entry(n, num_patches, mask_ratio, importance, device, generator)
