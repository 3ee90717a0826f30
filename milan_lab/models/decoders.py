"""Decoders: MILAN's prompting decoder and MAE's decoder (for ablations).

Both take the encoder's latent [N, 1 + L_keep, D_e] and a :class:`~milan_lab.models.masking.Masking`
and predict every token, class token included: pred [N, 1 + L, D_out].
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from timm.models.vision_transformer import Block

from milan_lab.models.losses import TARGETS
from milan_lab.models.masking import Masking
from milan_lab.models.vit import init_weights, sincos_pos_embed
from milan_lab.registry import DECODERS


def _gather(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class _DecoderBase(nn.Module):
    def __init__(self, num_patches, encoder_dim, dim, out_dim):
        super().__init__()
        self.num_patches = num_patches
        self.decoder_embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = sincos_pos_embed(dim, int(num_patches ** 0.5))
        self.decoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_pred = nn.Linear(dim, out_dim)

    def _full_sequence(self, latent: torch.Tensor, masking: Masking) -> torch.Tensor:
        """Embed, append mask tokens, unshuffle, add positions: [N, 1 + L, dim]."""
        x = self.decoder_embed(latent)
        n, num_masked = x.shape[0], self.num_patches + 1 - x.shape[1]
        patches = torch.cat([x[:, 1:], self.mask_token.expand(n, num_masked, -1)], dim=1)
        patches = _gather(patches, masking.ids_restore)
        return torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed

    def _init(self):
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(init_weights)


class PromptingBlock(nn.Module):
    """A transformer block in which only the mask tokens are queries.

    Keys and values are the fixed visible tokens (class token included; the prompts) followed
    by the current mask tokens. As in mmpretrain's ``PromptTransformerEncoderLayer``, norm1 is
    applied to the mask tokens only: the prompts enter the key/value projection as they are.
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, drop_path=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def attention(self, queries: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """queries [N, M, C] (normed mask tokens), prompts [N, V, C] -> [N, M, C].
        The order of keys does not change attention, so prompts are simply put first."""
        n, m, c = queries.shape
        h = self.num_heads
        q = self.q(queries).view(n, m, h, c // h).transpose(1, 2)
        kv = self.kv(torch.cat([prompts, queries], dim=1))
        k, v = kv.view(n, -1, 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, m, c))

    def forward(self, x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """x: mask tokens [N, M, C]; prompts: visible tokens [N, V, C], never updated."""
        x = x + self.drop_path(self.attention(self.norm1(x), prompts))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def register_decoder(name: str, *, help: str):
    """Decorator: register a decoder class under ``name`` in :data:`DECODERS`. It is built as
    ``cls(num_patches, encoder_dim, dim, depth, num_heads, out_dim, mlp_ratio)`` and called as
    ``decoder(latent [N, 1 + L_keep, D_e], masking) -> pred [N, 1 + L, out_dim]``."""
    return DECODERS.register(name, help=help)


@DECODERS.bind("prompting")  # declared in milan_lab.registry
class PromptingDecoder(_DecoderBase):
    """MILAN's decoder: the visible tokens are embedded once and stay fixed as prompts; only
    the mask tokens pass through the blocks."""

    def __init__(self, num_patches, encoder_dim=768, dim=512, depth=8, num_heads=16, out_dim=512, mlp_ratio=4.0):
        super().__init__(num_patches, encoder_dim, dim, out_dim)
        self.decoder_blocks = nn.ModuleList(PromptingBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self._init()

    def split(self, x: torch.Tensor, masking: Masking) -> tuple[torch.Tensor, torch.Tensor]:
        """Full sequence [N, 1 + L, C] -> (prompts [N, 1 + L_keep, C], mask tokens [N, L - L_keep, C])."""
        prompts = torch.cat([x[:, :1], _gather(x[:, 1:], masking.ids_keep)], dim=1)
        return prompts, _gather(x[:, 1:], masking.ids_dump)

    def forward(self, latent: torch.Tensor, masking: Masking) -> torch.Tensor:
        prompts, x = self.split(self._full_sequence(latent, masking), masking)
        for blk in self.decoder_blocks:
            x = blk(x, prompts)
        # back to image order: visible (unchanged) then masked, unshuffled by ids_restore
        patches = _gather(torch.cat([prompts[:, 1:], x], dim=1), masking.ids_restore)
        x = torch.cat([prompts[:, :1], patches], dim=1)
        return self.decoder_pred(self.decoder_norm(x))


@DECODERS.bind("mae")
class MAEDecoder(_DecoderBase):
    """MAE's decoder: every token (visible and mask) is updated by standard blocks."""

    def __init__(self, num_patches, encoder_dim=768, dim=512, depth=8, num_heads=16, out_dim=512, mlp_ratio=4.0):
        super().__init__(num_patches, encoder_dim, dim, out_dim)
        self.decoder_blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
            for _ in range(depth))
        self._init()

    def forward(self, latent: torch.Tensor, masking: Masking) -> torch.Tensor:
        x = self._full_sequence(latent, masking)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))


def output_dim(cfg) -> int:
    """Width of the prediction, as the target says (the teacher's features, one patch of pixels, ...)."""
    return TARGETS.lookup(cfg.target, "target").out_dim(cfg)


def build_decoder(cfg, num_patches: int) -> nn.Module:
    """The decoder a ``ModelConfig`` describes."""
    decoder = DECODERS.lookup(cfg.decoder, "decoder")
    return decoder(num_patches, cfg.embed_dim, cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads,
                   output_dim(cfg), cfg.mlp_ratio)
