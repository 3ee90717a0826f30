"""Checkpoint interop: mmpretrain/mmselfsup MILAN checkpoints <-> milan_lab, and timm export.

The key mapping is explicit (``ENCODER_MAP``, ``DECODER_MAP``) and loading is strict:
missing or unexpected keys are reported by name. mmpretrain names follow its ViT
(``backbone.layers.N.ln1 / attn.qkv / ffn.layers.0.0``) and MILAN neck
(``neck.decoder_blocks.N.attn.q / attn.kv``, ``neck.ln1`` = decoder norm); ours follow timm.
Verified against mmpretrain 1.2.0's own modules by ``scripts/verify_mmpretrain.py``.
"""
from __future__ import annotations

import re

EXPORT_FORMATS = (".safetensors", ".pth", ".pt")  # save_weights writes safetensors for the first, torch.save else


# (mmpretrain name, milan_lab name) without the backbone./neck. prefix; "{}" is a layer index.
# A name ending in "." is a prefix (weight, bias, ...), any other must match the whole key.
ENCODER_MAP = [
    ("patch_embed.projection.", "patch_embed.proj."),
    ("layers.{}.ln1.", "blocks.{}.norm1."),
    ("layers.{}.ln2.", "blocks.{}.norm2."),
    ("layers.{}.attn.", "blocks.{}.attn."),
    ("layers.{}.ffn.layers.0.0.", "blocks.{}.mlp.fc1."),
    ("layers.{}.ffn.layers.1.", "blocks.{}.mlp.fc2."),
    ("ln1.", "norm."),
    ("cls_token", "cls_token"),
    ("pos_embed", "pos_embed"),
]
DECODER_MAP = [
    ("decoder_blocks.{}.ln1.", "decoder_blocks.{}.norm1."),
    ("decoder_blocks.{}.ln2.", "decoder_blocks.{}.norm2."),
    ("decoder_blocks.{}.attn.q.", "decoder_blocks.{}.q."),
    ("decoder_blocks.{}.attn.kv.", "decoder_blocks.{}.kv."),
    ("decoder_blocks.{}.attn.proj.", "decoder_blocks.{}.proj."),
    ("decoder_blocks.{}.ffn.layers.0.0.", "decoder_blocks.{}.mlp.fc1."),
    ("decoder_blocks.{}.ffn.layers.1.", "decoder_blocks.{}.mlp.fc2."),
    ("ln1.", "decoder_norm."),
    ("mask_token", "mask_token"),
    ("decoder_pos_embed", "decoder_pos_embed"),
    ("decoder_embed.", "decoder_embed."),
    ("decoder_pred.", "decoder_pred."),
]


def rename(key: str, table, reverse: bool = False) -> str | None:
    """Map ``key`` through ``table`` (mmpretrain -> milan_lab, or back with ``reverse``)."""
    for a, b in table:
        src, dst = (b, a) if reverse else (a, b)
        pattern = "^" + re.escape(src).replace(r"\{\}", r"(\d+)") + ("" if src.endswith(".") else "$")
        m = re.match(pattern, key)
        if m:
            return (dst.replace("{}", m.group(1)) if m.groups() else dst) + key[m.end():]
    return None


def from_mmpretrain(state: dict, kind: str = "pretrain") -> dict:
    """mmpretrain state dict -> milan_lab state dict.

    kind: "pretrain" (backbone + neck [+ target_generator, dropped]) -> MILAN keys
    (encoder.*, decoder.*); "finetune" (backbone + head.fc, backbone.ln2 = fc_norm) or "linear"
    (backbone + neck.bn + head.fc) -> MILANClassifier keys. Unmapped keys raise, naming them."""
    out, unmapped = {}, []
    for key, value in state.items():
        if key.startswith(("target_generator.", "data_preprocessor.")):
            continue
        new = None
        if key.startswith("backbone."):
            sub = key[len("backbone."):]
            if kind == "finetune" and sub.startswith("ln2."):
                new = "fc_norm." + sub[len("ln2."):]
            else:
                mapped = rename(sub, ENCODER_MAP)
                new = f"encoder.{mapped}" if mapped else None
        elif key.startswith("neck.") and kind == "pretrain":
            mapped = rename(key[len("neck."):], DECODER_MAP)
            new = f"decoder.{mapped}" if mapped else None
        elif key.startswith("neck.bn.") and kind == "linear":
            new = "fc_norm." + key[len("neck.bn."):]
        elif key.startswith("head.fc.") and kind in ("finetune", "linear"):
            new = "head." + key[len("head.fc."):]
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        raise KeyError(f"{len(unmapped)} mmpretrain keys have no milan_lab counterpart ({kind}): {unmapped[:8]}")
    return out


def to_mmpretrain(state: dict) -> dict:
    """milan_lab MILAN state dict (encoder.*, decoder.*) -> mmpretrain's layout."""
    out = {}
    for key, value in state.items():
        if key.startswith("encoder."):
            out["backbone." + rename(key[len("encoder."):], ENCODER_MAP, reverse=True)] = value
        elif key.startswith("decoder."):
            out["neck." + rename(key[len("decoder."):], DECODER_MAP, reverse=True)] = value
    return out


def encoder_to_timm(state: dict) -> dict:
    """Encoder weights (``encoder.*`` or bare) -> timm ``VisionTransformer`` keys. Our names
    already follow timm; only the prefix goes."""
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")} or dict(state)
    return {k: v.float() for k, v in enc.items()}


def from_timm(timm_state: dict) -> dict:
    """timm ViT weights -> ``encoder.*`` keys (for initialising a MILAN encoder); the timm head
    and fc_norm are dropped."""
    return {f"encoder.{k}": v for k, v in timm_state.items() if not k.startswith(("head.", "fc_norm."))}
