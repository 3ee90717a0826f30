"""The student: a ViT from timm blocks with fixed 2-D sin-cos position embeddings.

It encodes only the visible patches during pretraining (MAE) and all patches for feature
extraction. Module names follow timm's ``VisionTransformer`` (patch_embed, cls_token,
pos_embed, blocks, norm) so weights move to and from timm by name.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from open_clip.pos_embed import get_2d_sincos_pos_embed
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block


def sincos_pos_embed(dim: int, grid: int) -> nn.Parameter:
    """Fixed [1, 1 + grid², dim] (class token first, zeros), frozen as in MAE."""
    table = torch.from_numpy(get_2d_sincos_pos_embed(dim, grid, cls_token=True)).float().unsqueeze(0)
    return nn.Parameter(table, requires_grad=False)


def init_weights(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ViTEncoder(nn.Module):
    def __init__(self, image_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, drop_path=0.0, final_norm: bool = True):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_embed = PatchEmbed(image_size, patch_size, 3, embed_dim)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = sincos_pos_embed(embed_dim, image_size // patch_size)
        dpr = torch.linspace(0, drop_path, depth, device="cpu").tolist()  # cpu: also when built on "meta"
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=dpr[i],
                  norm_layer=partial(nn.LayerNorm, eps=1e-6)) for i in range(depth))
        # fine-tuning pools without the final norm (mmpretrain: final_norm=False), so it has none
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6) if final_norm else nn.Identity()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as MAE: treat the conv as a linear
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(init_weights)
        self.norm.apply(init_weights)

    @classmethod
    def from_config(cls, cfg, drop_path: float | None = None, final_norm: bool = True) -> "ViTEncoder":
        """The encoder a ``ModelConfig`` describes (the one place it is built from a config)."""
        return cls(cfg.image_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
                   cfg.drop_path if drop_path is None else drop_path, final_norm)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, H, W] -> patch tokens with position [N, L, D]."""
        return self.patch_embed(images) + self.pos_embed[:, 1:]

    def _with_cls(self, x: torch.Tensor) -> torch.Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def forward_masked(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encode the visible patches only: ids_keep [N, L_keep] -> latent [N, 1 + L_keep, D]."""
        x = self.embed(images)
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = self._with_cls(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """All tokens, no masking: [N, 1 + L, D], after the final norm (if the encoder has one)."""
        x = self._with_cls(self.embed(images))
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    forward = forward_features

    @torch.no_grad()
    def get_last_selfattention(self, images: torch.Tensor) -> torch.Tensor:
        """Last block's attention weights [N, heads, 1 + L, 1 + L] (DINO's introspection)."""
        x = self._with_cls(self.embed(images))
        for blk in self.blocks[:-1]:
            x = blk(x)
        attn = self.blocks[-1].attn
        h = self.blocks[-1].norm1(x)
        n, t, d = h.shape
        q, k, _ = attn.qkv(h).reshape(n, t, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = attn.q_norm(q), attn.k_norm(k)
        return (q @ k.transpose(-2, -1) * attn.scale).softmax(-1)
