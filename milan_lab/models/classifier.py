"""Classifiers on the MILAN encoder, as mmpretrain's benchmark configs build them.

* fine-tuning (``head="finetune"``): global average pooling of the patch tokens, *without* the
  encoder's final norm, then LayerNorm and a linear head (mmpretrain: ``out_type='avg_featmap',
  final_norm=False``; timm: ``global_pool='avg'`` with ``fc_norm``). ViT-B/16: 86.57 M params.
* linear probe (``head="linear"``): the class token *after* the final norm, BatchNorm without
  affine parameters, a linear head; the encoder is frozen.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from milan_lab.config import ModelConfig
from milan_lab.models.vit import ViTEncoder


class MILANClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int, head: str = "finetune"):
        """Drop path comes from ``cfg.drop_path`` (fine-tuning only; the probed encoder is frozen)."""
        super().__init__()
        if head not in ("finetune", "linear"):
            raise ValueError(f"head must be 'finetune' or 'linear', got {head!r}")
        self.cfg, self.head_type, self.num_classes = cfg, head, num_classes
        self.encoder = ViTEncoder.from_config(cfg, drop_path=0.0 if head == "linear" else None,
                                              final_norm=head == "linear")
        if head == "finetune":
            self.fc_norm = partial(nn.LayerNorm, eps=1e-6)(cfg.embed_dim)
            self.head = nn.Linear(cfg.embed_dim, num_classes)
            nn.init.trunc_normal_(self.head.weight, std=2e-5)  # as MAE's fine-tuning
        else:
            self.encoder.requires_grad_(False)
            self.fc_norm = nn.BatchNorm1d(cfg.embed_dim, affine=False, eps=1e-6)
            self.head = nn.Linear(cfg.embed_dim, num_classes)
            nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.head_type == "linear":  # the probed encoder stays in eval mode
            self.encoder.eval()
        return self

    def extract_feat(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled feature [N, D] the head sees (before fc_norm)."""
        if self.head_type == "finetune":
            return self.encoder.forward_features(images)[:, 1:].mean(1)
        return self.encoder.forward_features(images)[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.head(self.fc_norm(self.extract_feat(images)))

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's layer grouping (used by its layer-wise lr decay): embeddings are layer 0,
        block i is layer i + 1, everything after the blocks is the top layer."""
        return dict(stem=r"^encoder\.(?:cls_token|pos_embed|patch_embed)",
                    blocks=[(r"^encoder\.blocks\.(\d+)", None), (r"^encoder\.norm", (99999,))])

    def no_weight_decay(self) -> set[str]:
        return {"encoder.pos_embed", "encoder.cls_token"}
