"""Parameter counts and FLOPs of a preset (``milan-lab info PRESET``), without any weights.

FLOPs are counted by ``torch.utils.flop_counter`` (2 per multiply-add); mmpretrain/mmcv and the
paper's "17.58 GFLOPs" count multiply-adds, so both are reported (``gmacs`` is the comparable one).
"""
from __future__ import annotations

import dataclasses

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from milan_lab.config import get_config
from milan_lab.factory.models import create_model
from milan_lab.factory.teachers import teacher_architecture
from milan_lab.models.masking import random_masking


def register_cpu_sdpa() -> None:
    """Teach torch's FlopCounterMode the CPU attention kernel (idempotent; every FLOP count calls
    it first). It knows the CUDA attention kernels but not the CPU one that
    ``F.scaled_dot_product_attention`` dispatches to; without this, attention (4 % of ViT-B's
    FLOPs) would silently count as zero on CPU."""
    ops = torch.ops.aten
    if not hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu"):
        return
    fwd = ops._scaled_dot_product_flash_attention_for_cpu
    if fwd in flop_counter.flop_registry or fwd.default in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(fwd)
    def _fwd(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    if hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        @flop_counter.register_flop_formula(ops._scaled_dot_product_flash_attention_for_cpu_backward)
        def _bwd(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)



def count(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def flops(fn) -> int:
    register_cpu_sdpa()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def model_info(preset: str, num_classes: int = 1000) -> dict:
    cfg = get_config("pretrain", preset).model
    grid = cfg.image_size // cfg.patch_size
    num_patches = grid * grid
    model = create_model(cfg, "pretrain", teacher="none")  # the architecture alone: no teacher, no weights
    encoder, decoder = model.encoder, model.decoder
    other = "mae" if cfg.decoder == "prompting" else "prompting"
    decoders = {cfg.decoder: decoder, other: create_model(dataclasses.replace(cfg, decoder=other), teacher="none").decoder}
    classifier = create_model(dataclasses.replace(cfg), "finetune", num_classes)
    x = torch.zeros(1, 3, cfg.image_size, cfg.image_size)
    masking = random_masking(1, num_patches, cfg.mask_ratio)
    latent = torch.zeros(1, masking.ids_keep.shape[1] + 1, cfg.embed_dim)
    wrapped = teacher_architecture(cfg.teacher) if cfg.needs_teacher else None
    teacher = wrapped.visual if wrapped is not None else None  # the image tower: params and pooled forward
    info = {
        "preset": preset,
        "params_total_without_teacher": count(encoder) + count(decoder),
        "params_trainable": count(encoder, True) + count(decoder, True),
        "params_encoder": count(encoder),
        "params_decoder": count(decoder),
        "params_teacher": count(teacher) if teacher is not None else 0,
        "params_classifier": count(classifier),
        "classifier_num_classes": num_classes,
        "gflops_classifier": flops(lambda: classifier(x)) / 1e9,
        "gflops_encoder_masked": flops(lambda: encoder.forward_masked(x, masking.ids_keep)) / 1e9,
        "gflops_decoder": flops(lambda: decoder(latent, masking)) / 1e9,
        # the paper's cost claim for the prompting decoder: both decoders at this preset's size, forward per image
        "gflops_decoder_by_type": {k: flops(lambda d=d: d(latent, masking)) / 1e9 for k, d in sorted(decoders.items())},
        "gflops_teacher": flops(lambda: teacher(x)) / 1e9 if teacher is not None else 0.0,
        "image_size": cfg.image_size, "patch_size": cfg.patch_size, "mask_ratio": cfg.mask_ratio,
    }
    info["gmacs_classifier"] = info["gflops_classifier"] / 2
    # a training step: teacher forward + (encoder + decoder) forward and backward (~3x forward)
    info["gflops_pretrain_step_per_image"] = info["gflops_teacher"] + 3 * (
        info["gflops_encoder_masked"] + info["gflops_decoder"])
    return info


def format_info(info: dict) -> str:
    m = lambda n: f"{n / 1e6:.2f} M"  # noqa: E731
    return "\n".join([
        f"preset                       {info['preset']}",
        f"input                        {info['image_size']}px, patch {info['patch_size']}, mask ratio {info['mask_ratio']}",
        f"params (without teacher)     {m(info['params_total_without_teacher'])}",
        f"  trainable                  {m(info['params_trainable'])}",
        f"  encoder                    {m(info['params_encoder'])}",
        f"  decoder                    {m(info['params_decoder'])}",
        f"  teacher (frozen)           {m(info['params_teacher'])}",
        f"classifier ({info['classifier_num_classes']} classes)     {m(info['params_classifier'])}",
        f"classifier GFLOPs / image    {info['gmacs_classifier']:.2f} (multiply-adds, as mmpretrain counts; "
        f"{info['gflops_classifier']:.2f} counting 2 per MAC)",
        f"pretraining GFLOPs / image   {info['gflops_pretrain_step_per_image']:.2f} (teacher fwd + 3x student fwd)",
        "decoder GFLOPs / image (fwd)  " + ", ".join(
            f"{k} {v:.3f}" for k, v in info["gflops_decoder_by_type"].items()) + f" (mask ratio {info['mask_ratio']})",
    ])
