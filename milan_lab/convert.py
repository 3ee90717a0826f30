"""Checkpoint interop: mmpretrain/mmselfsup MILAN checkpoints <-> milan_lab, and timm export.

The key mapping is explicit (``ENCODER_RULES``, ``DECODER_RULES``) and loading is strict:
missing or unexpected keys are reported by name. mmpretrain names follow its ViT
(``backbone.layers.N.ln1 / attn.qkv / ffn.layers.0.0``) and MILAN neck
(``neck.decoder_blocks.N.attn.q / attn.kv``, ``neck.ln1`` = decoder norm); ours follow timm.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

# (mmpretrain pattern, milan_lab replacement), applied to keys without the backbone./neck. prefix
ENCODER_RULES = [
    (r"^patch_embed\.projection\.", "patch_embed.proj."),
    (r"^layers\.(\d+)\.ln1\.", r"blocks.\1.norm1."),
    (r"^layers\.(\d+)\.ln2\.", r"blocks.\1.norm2."),
    (r"^layers\.(\d+)\.attn\.", r"blocks.\1.attn."),
    (r"^layers\.(\d+)\.ffn\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^layers\.(\d+)\.ffn\.layers\.1\.", r"blocks.\1.mlp.fc2."),
    (r"^ln1\.", "norm."),
    (r"^(cls_token|pos_embed)$", r"\1"),
]
DECODER_RULES = [
    (r"^decoder_blocks\.(\d+)\.ln1\.", r"decoder_blocks.\1.norm1."),
    (r"^decoder_blocks\.(\d+)\.ln2\.", r"decoder_blocks.\1.norm2."),
    (r"^decoder_blocks\.(\d+)\.attn\.(q|kv|proj)\.", r"decoder_blocks.\1.\2."),
    (r"^decoder_blocks\.(\d+)\.ffn\.layers\.0\.0\.", r"decoder_blocks.\1.mlp.fc1."),
    (r"^decoder_blocks\.(\d+)\.ffn\.layers\.1\.", r"decoder_blocks.\1.mlp.fc2."),
    (r"^ln1\.", "decoder_norm."),
    (r"^(mask_token|decoder_pos_embed|decoder_embed\.\w+|decoder_pred\.\w+)$", r"\1"),
]


def _apply(rules, key: str) -> str | None:
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def _invert(rules, key: str) -> str | None:
    """milan_lab key -> mmpretrain key (rules are one-to-one)."""
    inverse = [
        (r"^patch_embed\.proj\.", "patch_embed.projection."), (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.ln1."),
        (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.ln2."), (r"^blocks\.(\d+)\.attn\.", r"layers.\1.attn."),
        (r"^blocks\.(\d+)\.mlp\.fc1\.", r"layers.\1.ffn.layers.0.0."), (r"^blocks\.(\d+)\.mlp\.fc2\.", r"layers.\1.ffn.layers.1."),
        (r"^norm\.", "ln1."), (r"^(cls_token|pos_embed)$", r"\1"),
    ] if rules is ENCODER_RULES else [
        (r"^decoder_blocks\.(\d+)\.norm1\.", r"decoder_blocks.\1.ln1."),
        (r"^decoder_blocks\.(\d+)\.norm2\.", r"decoder_blocks.\1.ln2."),
        (r"^decoder_blocks\.(\d+)\.(q|kv|proj)\.", r"decoder_blocks.\1.attn.\2."),
        (r"^decoder_blocks\.(\d+)\.mlp\.fc1\.", r"decoder_blocks.\1.ffn.layers.0.0."),
        (r"^decoder_blocks\.(\d+)\.mlp\.fc2\.", r"decoder_blocks.\1.ffn.layers.1."),
        (r"^decoder_norm\.", "ln1."),
        (r"^(mask_token|decoder_pos_embed|decoder_embed\.\w+|decoder_pred\.\w+)$", r"\1"),
    ]
    return _apply(inverse, key)


def read_state_dict(path: str | Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state


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
                mapped = _apply(ENCODER_RULES, sub)
                new = f"encoder.{mapped}" if mapped else None
        elif key.startswith("neck.") and kind == "pretrain":
            mapped = _apply(DECODER_RULES, key[len("neck."):])
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
            out["backbone." + _invert(ENCODER_RULES, key[len("encoder."):])] = value
        elif key.startswith("decoder."):
            out["neck." + _invert(DECODER_RULES, key[len("decoder."):])] = value
    return out


def load_strict(module: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """load_state_dict(strict) with a readable report instead of a wall of keys."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("teacher.")]
    if missing or unexpected:
        raise RuntimeError(f"{source} does not fit {type(module).__name__}: {len(missing)} missing keys "
                           f"{missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]}")


def encoder_to_timm(state: dict) -> dict:
    """Encoder weights (``encoder.*`` or bare) -> timm ``VisionTransformer`` keys. Our names
    already follow timm; only the prefix goes."""
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")} or dict(state)
    return {k: v.float() for k, v in enc.items()}


def export_timm(checkpoint: str | Path, out: str | Path) -> str:
    """Write ``out`` loadable by ``timm.create_model('vit_base_patch16_224', pretrained=True,
    pretrained_cfg_overlay=dict(file=out), num_classes=0)`` (with the matching timm model for
    other sizes)."""
    state = read_state_dict(checkpoint)
    state = state.get("model", state)
    if any(k.startswith("backbone.") for k in state):
        state = from_mmpretrain(state, "pretrain" if any(k.startswith("neck.decoder") for k in state) else "finetune")
    weights = encoder_to_timm(state)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(weights, tmp)
    tmp.replace(out)
    return str(out)


def from_timm(timm_state: dict) -> dict:
    """timm ViT weights -> ``encoder.*`` keys (for initialising a MILAN encoder); the timm head
    and fc_norm are dropped."""
    return {f"encoder.{k}": v for k, v in timm_state.items() if not k.startswith(("head.", "fc_norm."))}
