"""Losses: MILAN's cosine loss on CLIP features, MAE's pixel loss, and the reconstruction
targets (:data:`TARGETS`) that pair each with what the decoder predicts."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from milan_lab.registry import PREDICTS, TARGETS


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                with_cls: bool = False) -> torch.Tensor:
    """2 - 2·cos(pred, target) per token, averaged.

    pred, target: [N, 1 + L, D]. mask: None (average over all 1 + L tokens, as mmpretrain's
    ``CosineSimilarityLoss(shift_factor=2, scale_factor=2)`` and the authors' code do) or
    [N, L] with 1 = removed (average over the masked patches only; with ``with_cls``, over the
    masked patches and the class token)."""
    per_token = 2 - 2 * F.cosine_similarity(pred.float(), target.float(), dim=-1)  # [N, 1 + L]
    if mask is None:
        return per_token.mean()
    if with_cls:
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        return (per_token * mask).sum() / mask.sum()
    return (per_token[:, 1:] * mask).sum() / mask.sum()


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """[N, 3, H, W] -> [N, L, p*p*3] (MAE's layout: row-major patches, pixels then channels)."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """[N, L, p*p*3] -> [N, 3, H, W]."""
    n, num, _ = x.shape
    g = int(num ** 0.5)
    x = x.reshape(n, g, g, p, p, 3)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, 3, g * p, g * p)


def pixel_target(images: torch.Tensor, p: int, norm_pix: bool) -> torch.Tensor:
    target = patchify(images, p)
    if norm_pix:  # MAE's norm_pix_loss: each patch normalised by its own mean and variance
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return target


def pixel_loss(pred: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, p: int,
               norm_pix: bool = False) -> torch.Tensor:
    """MAE: mean squared error per patch, averaged over the removed patches.
    pred: [N, 1 + L, p*p*3] (the class-token prediction is ignored); mask: [N, L], 1 = removed."""
    per_patch = ((pred[:, 1:].float() - pixel_target(images, p, norm_pix)) ** 2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


def register_target(name: str, *, needs_teacher: bool, out_dim: Callable, help: str, predicts: str):
    """Decorator: register a reconstruction target under ``name`` in :data:`TARGETS`. Its function is
    the loss, called as ``fn(cfg, images, pred, features, mask) -> scalar`` with the ``ModelConfig``,
    images [N, 3, H, W], pred [N, 1 + L, out_dim(cfg)], the teacher's features [N, 1 + L, target_dim]
    (None without a teacher) and mask [N, L] (1 = removed). ``needs_teacher``: the loss reads the
    teacher's features (a run loads CLIP for it); ``out_dim(cfg)``: the width the decoder predicts;
    ``predicts``: "features" (the teacher's, compared by cosine in the panels) or "pixels" (patches
    of p*p*3 values, shown as a reconstructed image)."""
    if predicts not in PREDICTS:
        raise ValueError(f"register target {name!r}: predicts must be one of {PREDICTS}, got {predicts!r}")
    return TARGETS.register(name, help=help, needs_teacher=bool(needs_teacher), out_dim=out_dim, predicts=predicts)


def target_predicts(cfg) -> str:
    """What the decoder of a model with ``cfg`` (a ModelConfig) predicts: "features" or "pixels" (its target's flag)."""
    return TARGETS.lookup(cfg.target, "target").predicts


@TARGETS.bind("clip")  # declared (help, flags) in milan_lab.registry
def clip_target_loss(cfg, images, pred, features, mask) -> torch.Tensor:
    on = cfg.loss_on
    return cosine_loss(pred, features, None if on == "all" else mask, with_cls=on == "masked+cls")


@TARGETS.bind("pixels")
def pixel_target_loss(cfg, images, pred, features, mask) -> torch.Tensor:
    return pixel_loss(pred, images, mask, cfg.patch_size, cfg.norm_pix_loss)
