"""The frozen CLIP teacher: per-token targets and class-token attention from one forward pass.

Wraps the image tower of an ``open_clip`` CLIP (``open_clip.transformer.VisionTransformer``).
From ONE pass over the image it returns

* ``targets [N, L+1, D_t]``: every token after ``ln_post`` and ``@ proj``, as mmpretrain's
  ``CLIPGenerator`` and the MILAN authors' code compute them;
* ``importance [N, L]``: the last block's attention from the class token to the L patches,
  averaged over heads (rows of a softmax, so each row sums to <= 1 over patches).

open_clip's blocks call ``nn.MultiheadAttention(need_weights=False)``, so the attention weights
are not returned; we recompute the class query and the keys of the last block from that block's
own (normed) input inside the same pass -- one extra [1 x L+1] product, not a second forward.

Input normalisation (``input_norm``): MILAN's references feed the teacher the same
ImageNet-normalised tensor as the student, even though OpenAI CLIP was trained with its own
mean/std. That is the default here (``"same"``). ``"clip"`` re-normalises the student's tensor
to the teacher's own mean/std first.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD


class Teacher(nn.Module):
    def __init__(self, clip: nn.Module, tokenizer=None, input_norm: str = "same",
                 clip_mean=IMAGENET_MEAN, clip_std=IMAGENET_STD, name: str = "custom"):
        super().__init__()
        visual = clip.visual
        needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")
        if not all(hasattr(visual, a) for a in needed) or getattr(visual, "attn_pool", None) is not None:
            raise ValueError(
                f"teacher {name!r}: only open_clip ViT image towers (VisionTransformer without attentional "
                "pooling) are supported; timm- or ResNet-based towers have no class-token attention to sample from")
        if input_norm not in ("same", "clip"):
            raise ValueError(f"input_norm must be 'same' or 'clip', got {input_norm!r}")
        self.clip = clip.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.input_norm = input_norm
        self.name = name
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(clip_mean)) / torch.tensor(clip_std)
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(clip_std)
        self.register_buffer("norm_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("norm_shift", shift.view(1, 3, 1, 1), persistent=False)

    # -- shape facts used to check the student against the teacher ------------------------
    @property
    def visual(self) -> nn.Module:
        return self.clip.visual

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.visual.grid_size)

    @property
    def image_size(self) -> int:
        return self.visual.image_size[0]

    @property
    def patch_size(self) -> int:
        return self.visual.patch_size[0]

    @property
    def embed_dim(self) -> int:
        """D_t, the width of the targets."""
        return self.visual.proj.shape[1]

    @property
    def num_heads(self) -> int:
        return self.visual.transformer.resblocks[-1].attn.num_heads

    def train(self, mode: bool = True):  # the teacher is frozen: always eval mode
        return super().train(False)

    # -- the one pass ----------------------------------------------------------------------
    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_norm == "clip":
            images = images * self.norm_scale + self.norm_shift
        return images.to(self.visual.conv1.weight.dtype)

    def _blocks_until_last(self, images: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        x = visual._embeds(self._prepare(images))  # [N, L+1, W]
        blocks = visual.transformer.resblocks
        batch_first = getattr(visual.transformer, "batch_first", True)
        for blk in blocks[:-1]:
            x = blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)
        return x

    @staticmethod
    def _attention_weights(blk: nn.Module, x: torch.Tensor, class_only: bool = False) -> torch.Tensor:
        """softmax(q·kᵀ/√d) of ``blk`` for input ``x [N, T, W]`` -> [N, heads, T, T], or only the
        class token's row [N, heads, 1, T] with ``class_only`` (one query projected, not T)."""
        attn: nn.MultiheadAttention = blk.attn
        h = blk.ln_1(x)
        w, weight, bias = attn.embed_dim, attn.in_proj_weight, attn.in_proj_bias
        q = F.linear(h[:, :1] if class_only else h, weight[:w], None if bias is None else bias[:w])
        k = F.linear(h, weight[w:2 * w], None if bias is None else bias[w:2 * w])
        q = q.view(q.shape[0], q.shape[1], attn.num_heads, -1).transpose(1, 2)
        k = k.view(k.shape[0], k.shape[1], attn.num_heads, -1).transpose(1, 2)
        return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)

    def _run_last(self, x: torch.Tensor) -> torch.Tensor:
        blk = self.visual.transformer.resblocks[-1]
        if getattr(self.visual.transformer, "batch_first", True):
            return blk(x)
        return blk(x.transpose(0, 1)).transpose(0, 1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, 3, H, W] -> (targets [N, L+1, D_t], importance [N, L])."""
        x = self._blocks_until_last(images)
        attn = self._attention_weights(self.visual.transformer.resblocks[-1], x, class_only=True)
        x = self._run_last(x)
        targets = self.visual.ln_post(x) @ self.visual.proj
        importance = attn[:, :, 0, 1:].mean(dim=1)
        return targets.float(), importance.float()

    @torch.no_grad()
    def dense_features(self, images: torch.Tensor) -> torch.Tensor:
        """Dense image features that align with the text tower, by MaskCLIP's construction (Zhou et
        al., 2022, "Extract Free Dense Labels from CLIP"): images [N, 3, H, W] -> [N, L, D_t], one row
        per patch (row-major, as the ViT orders them), not normalised.

        The last block's query-key attention mixes every patch with the class token's context, so
        its patch tokens (the ``targets`` of :meth:`forward`) hardly align with text. MaskCLIP skips
        that attention: each patch's value embedding of the last block (its ``ln_1`` input through
        the value third of ``in_proj``) goes through the block's ``out_proj`` alone (no residual, no
        MLP), then through ``ln_post`` and ``proj``, the head the class token takes to the joint
        image-text space."""
        x = self._blocks_until_last(images)  # [N, L+1, W]
        blk = self.visual.transformer.resblocks[-1]
        attn: nn.MultiheadAttention = blk.attn
        w, bias = attn.embed_dim, attn.in_proj_bias
        v = F.linear(blk.ln_1(x[:, 1:]), attn.in_proj_weight[2 * w:], None if bias is None else bias[2 * w:])  # [N, L, W]
        out = attn.out_proj(v)
        if hasattr(blk, "ls_1"):  # open_clip's layer scale on the attention branch (Identity in CLIP)
            out = blk.ls_1(out)
        return (self.visual.ln_post(out) @ self.visual.proj).float()

    @torch.no_grad()
    def get_last_selfattention(self, images: torch.Tensor) -> torch.Tensor:
        """Attention of the last block, every head: [N, heads, L+1, L+1]."""
        x = self._blocks_until_last(images)
        return self._attention_weights(self.visual.transformer.resblocks[-1], x).float()

    @torch.no_grad()
    def get_selfattentions(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Attention of every block (for rollout): list of [N, heads, L+1, L+1]."""
        visual = self.visual
        x = visual._embeds(self._prepare(images))
        batch_first = getattr(visual.transformer, "batch_first", True)
        out = []
        for blk in visual.transformer.resblocks:
            out.append(self._attention_weights(blk, x).float())
            x = blk(x) if batch_first else blk(x.transpose(0, 1)).transpose(0, 1)
        return out

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The CLIP image embedding [N, D_t] (pooled), L2-normalised."""
        return F.normalize(self.clip.encode_image(self._prepare(images)).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, prompts: list[str] | str) -> torch.Tensor:
        """Text embeddings [P, D_t], L2-normalised, for text-prompt similarity maps."""
        if self.tokenizer is None:
            raise RuntimeError(f"teacher {self.name!r} was loaded without a tokenizer")
        tokens = self.tokenizer([prompts] if isinstance(prompts, str) else prompts)
        return F.normalize(self.clip.encode_text(tokens.to(self.norm_scale.device)).float(), dim=-1)
