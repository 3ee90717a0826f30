"""MILAN: the pretraining model wiring the stages.

    images -> teacher -> targets [N, 1+L, D_t], importance [N, L]
           -> sample_mask -> Masking(ids_keep, ids_restore, mask [N, L], 1 = removed)
           -> forward_encoder (visible tokens only) -> latent [N, 1+L_keep, D_e]
           -> forward_decoder (prompting | MAE) -> pred [N, 1+L, D_t]
           -> forward_loss (2 - 2·cos | pixels) -> scalar

The model returns loss and predictions; it knows nothing of schedules, devices or logging.
The frozen teacher is a submodule (so ``.to(device)`` moves it) but is left out of
:meth:`student_state_dict`, which is what checkpoints hold.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from milan_lab.config import ModelConfig
from milan_lab.errors import ConfigError
from milan_lab.models.decoders import build_decoder
from milan_lab.models.losses import TARGETS
from milan_lab.models.masking import Masking, sample_mask
from milan_lab.models.teacher import Teacher
from milan_lab.models.vit import ViTEncoder


class MILANOutput(NamedTuple):
    loss: torch.Tensor
    pred: torch.Tensor             # [N, 1 + L, D_out]
    mask: torch.Tensor             # [N, L], 1 = removed
    target: torch.Tensor | None    # [N, 1 + L, D_t] teacher features (clip target)
    importance: torch.Tensor | None  # [N, L] teacher class-token attention


class MILAN(nn.Module):
    def __init__(self, cfg: ModelConfig, teacher: Teacher | None = None, require_teacher: bool = True):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.encoder = ViTEncoder.from_config(cfg)
        self.decoder = build_decoder(cfg, self.encoder.num_patches)
        if teacher is not None:
            check_teacher(cfg, teacher)
        elif cfg.needs_teacher and require_teacher:
            raise ValueError(f"target={cfg.target!r} / sampler={cfg.sampler!r} needs a teacher; "
                             "pass one (milan_lab.factory.teachers.load_teacher) or use target='pixels', sampler='random'")
        self.teacher = teacher

    @property
    def num_patches(self) -> int:
        return self.encoder.num_patches

    # -- stages -----------------------------------------------------------------------------
    def forward_teacher(self, images: torch.Tensor):
        """(targets [N, 1+L, D_t], importance [N, L]) or (None, None) without a teacher."""
        if self.teacher is None:
            return None, None
        return self.teacher(images)

    def sample_mask(self, images: torch.Tensor, importance: torch.Tensor | None,
                    sampler: str | None = None, mask_ratio: float | None = None,
                    generator: torch.Generator | None = None) -> Masking:
        return sample_mask(sampler or self.cfg.sampler, self.cfg.mask_ratio if mask_ratio is None else mask_ratio,
                           images.shape[0], self.num_patches, importance, images.device, generator)

    def forward_encoder(self, images: torch.Tensor, masking: Masking) -> torch.Tensor:
        """latent [N, 1 + L_keep, D_e] from the visible patches only."""
        return self.encoder.forward_masked(images, masking.ids_keep)

    def forward_decoder(self, latent: torch.Tensor, masking: Masking) -> torch.Tensor:
        """pred [N, 1 + L, D_out]."""
        return self.decoder(latent, masking)

    def forward_loss(self, images, pred, target, mask) -> torch.Tensor:
        """The registered target's loss (:data:`~milan_lab.models.losses.TARGETS`): images [N, 3, H, W],
        pred [N, 1 + L, D_out], target: the teacher's features [N, 1 + L, D_t] or None, mask [N, L]."""
        loss = TARGETS.lookup(self.cfg.target, "target")
        if loss.needs_teacher and target is None:
            raise RuntimeError(f"this MILAN model was built without a teacher: it can extract features but not "
                               f"compute the {self.cfg.target!r} target's loss (build it with a teacher)")
        return loss(self.cfg, images, pred, target, mask)

    def forward(self, images: torch.Tensor, mode: str = "tensor", **kwargs):
        """``mode="tensor"`` (default, as mmpretrain's): the encoder's features [N, 1 + L, D_e];
        ``mode="loss"``: the training pass, :meth:`forward_train` (the engine calls it this way so
        that DDP's hooks see the call)."""
        if mode == "tensor":
            return self.extract_feat(images)
        if mode == "loss":
            return self.forward_train(images, **kwargs)
        raise ValueError(f"mode must be 'tensor' or 'loss', got {mode!r}")

    def forward_train(self, images: torch.Tensor, generator: torch.Generator | None = None,
                      masking: Masking | None = None, teacher_out: tuple | None = None) -> MILANOutput:
        """The training pass: images [N, 3, H, W] (ImageNet-normalised; the teacher sees the
        same tensor) -> loss, predictions, mask. ``teacher_out`` = (targets, importance) of these
        images computed earlier (the engine's teacher cache) skips the teacher pass.

        With ``cfg.masks_per_image = k > 1`` one teacher pass serves k differently masked views of
        each image (pred, mask: [N * k, ...], views of image i at rows i*k .. i*k + k - 1): the
        teacher is a third of the step on small models, and k views of one crop cost one pass."""
        target, importance = teacher_out if teacher_out is not None else self.forward_teacher(images)
        k = self.cfg.masks_per_image
        if k > 1:
            images = images.repeat_interleave(k, 0)
            target = target.repeat_interleave(k, 0) if target is not None else None
            importance = importance.repeat_interleave(k, 0) if importance is not None else None
        if masking is None:
            masking = self.sample_mask(images, importance, generator=generator)
        latent = self.forward_encoder(images, masking)
        pred = self.forward_decoder(latent, masking)
        loss = self.forward_loss(images, pred, target, masking.mask)
        return MILANOutput(loss, pred, masking.mask, target, importance)

    # -- introspection and state --------------------------------------------------------------
    def extract_feat(self, images: torch.Tensor) -> torch.Tensor:
        """All tokens of the unmasked encoder, after the final norm: [N, 1 + L, D_e] (mmpretrain's
        tensor mode; mmpretrain's ``model(inputs)`` and ``model.extract_feat(inputs)``)."""
        return self.encoder.forward_features(images)

    def no_weight_decay(self) -> set[str]:
        """Parameters the optimiser must not decay (besides norms and biases), as in MAE/mmpretrain."""
        return {"encoder.pos_embed", "encoder.cls_token", "decoder.mask_token", "decoder.decoder_pos_embed"}

    def student_state_dict(self) -> dict:
        """Encoder and decoder weights: what checkpoints hold (the teacher is rebuilt from its name)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("teacher.")}

    def load_student_state_dict(self, state: dict, strict: bool = True):
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("teacher.")]
        if strict and (missing or unexpected):
            raise RuntimeError(f"checkpoint does not fit the model: missing {missing[:8]}, unexpected {unexpected[:8]}")
        return missing, unexpected


def check_teacher(cfg: ModelConfig, teacher: Teacher) -> None:
    """Fail early, naming the mismatch, if the teacher cannot supervise this student."""
    grid = cfg.image_size // cfg.patch_size
    if teacher.grid_size != (grid, grid) or teacher.image_size != cfg.image_size:
        raise ConfigError(
            f"teacher {teacher.name!r} sees {teacher.image_size}px images as a {teacher.grid_size} grid, but the "
            f"student sees {cfg.image_size}px as {grid}x{grid}: image_size and patch grid must match")
    if TARGETS.lookup(cfg.target, "target").needs_teacher and teacher.embed_dim != cfg.target_dim:
        raise ConfigError(f"target_dim={cfg.target_dim} but teacher {teacher.name!r} outputs {teacher.embed_dim}-d "
                         f"features: set model.target_dim={teacher.embed_dim}")
