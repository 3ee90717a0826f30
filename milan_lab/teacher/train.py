"""Train the small CLIP teacher on offline captioned scenes (``milan-lab teacher train``).

The model is a plain ``open_clip.CLIP`` built from the registered config ``milan-clip-tiny``;
the loss is open_clip's ``ClipLoss``. Batches are *hard-negative groups*: each group of
``group_size`` scenes shares colour, size, place and background and differs only in shape, so
the contrastive task cannot be solved without shape (see milan_lab/data/scenes.py).
Captions randomly leave out colour, size or place, never shape, so short prompts ("a star")
are in-distribution for zero-shot use.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from tqdm import tqdm

from milan_lab.data.scenes import SHAPES, random_spec, render_scene
from milan_lab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_normalized_tensor
from milan_lab.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, rng_state, set_rng_state
from milan_lab.teacher.tokenizer import WordTokenizer
from milan_lab.teacher import registry


@dataclass
class TeacherTrainConfig:
    model: str = "milan-clip-tiny"  # an open_clip config name (ours is registered on import)
    steps: int = 1500
    batch_size: int = 128
    group_size: int = 8             # scenes per hard-negative group (<= number of shapes)
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    caption_drop: float = 0.3       # probability of leaving out each of colour / size / place
    image_size: int = 64
    seed: int = 0
    output_dir: str = "runs/teacher"
    checkpoint_every: int = 250
    threads: int = 0                # torch CPU threads; 0 keeps torch's default


def hard_negative_batch(cfg: TeacherTrainConfig, step: int) -> tuple[np.ndarray, list[str]]:
    """Batch ``step`` (deterministic in (seed, step)): images [B, H, W, 3] uint8 and captions."""
    if not 1 <= cfg.group_size <= len(SHAPES) or cfg.batch_size % cfg.group_size:
        raise ValueError("group_size must divide batch_size and be at most the number of shapes")
    images, captions = [], []
    for g in range(cfg.batch_size // cfg.group_size):
        grng = np.random.default_rng([cfg.seed, 7, step, g])
        shared = random_spec(grng)
        bg_seed = int(grng.integers(2**31))
        drop = tuple(a for a in ("size", "colour", "place") if grng.random() < cfg.caption_drop)
        for shape in grng.choice(SHAPES, cfg.group_size, replace=False):
            spec = random_spec(grng, shape=str(shape), colour=shared.colour, size=shared.size, place=shared.place)
            mrng = np.random.default_rng([cfg.seed, 7, step, g, SHAPES.index(spec.shape)])
            images.append(render_scene(mrng, spec, cfg.image_size, background_rng=np.random.default_rng(bg_seed)))
            captions.append(spec.caption(drop))
    return np.stack(images), captions


def build_clip(cfg: TeacherTrainConfig, tokenizer: WordTokenizer) -> torch.nn.Module:
    registry.register()
    return open_clip.create_model(cfg.model, pretrained=None, force_context_length=tokenizer.context_length)


def lr_at(cfg: TeacherTrainConfig, step: int) -> float:
    """Warm-up from lr/warmup_steps, then cosine to 0. Kept by hand rather than timm's scheduler
    (which starts warm-up at 0) because the shipped teacher was trained with exactly this."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_teacher(cfg: TeacherTrainConfig, progress: bool = True) -> Path:
    """Train (or resume) and export an open_clip ``local-dir:`` folder; returns its path."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.output_dir)
    torch.manual_seed(cfg.seed)
    tokenizer = WordTokenizer()
    model = build_clip(cfg, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    start, log = 0, []
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, log = state["step"], state["log"]
        set_rng_state(state["rng"])
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="teacher")
    t0 = time.time()
    for step in bar:
        images, captions = hard_negative_batch(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        img_f, txt_f, logit_scale = model(to_normalized_tensor(images), tokenizer(captions))
        loss = loss_fn(img_f, txt_f, logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # as in CLIP: keep the temperature below 100
            model.logit_scale.clamp_(0, math.log(100))
        log.append({"step": step, "loss": loss.item(), "lr": lr_at(cfg, step), "time": time.time() - t0})
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(out / "checkpoints", step + 1, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                "log": log, "rng": rng_state(), "config": asdict(cfg)}, keep=1)
    extra = {"train_config": asdict(cfg), "final_loss": float(np.mean([r["loss"] for r in log[-50:]]))}
    return export_teacher(model, tokenizer, open_clip.get_model_config(cfg.model), out / "export", extra, cfg.image_size)


def export_teacher(model, tokenizer: WordTokenizer, model_cfg: dict, folder: str | Path, extra: dict | None = None,
                   image_size: int = 64) -> Path:
    """Write an open_clip ``local-dir:`` folder (open_clip_config.json + weights) atomically:
    loadable by ``open_clip.create_model("local-dir:FOLDER")`` and by ``load_teacher(FOLDER)``."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model_cfg = json.loads(json.dumps(model_cfg))
    model_cfg["text_cfg"]["context_length"] = tokenizer.context_length
    model_cfg["text_cfg"]["vocab_size"] = len(tokenizer)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "size": image_size},
        "milan_lab": {"vocab": tokenizer.vocab, "context_length": tokenizer.context_length, **(extra or {})},
    }
    (tmp / "open_clip_config.json").write_text(json.dumps(config, indent=1))
    # fp16 on disk halves the shipped size; loading casts back to fp32
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, tmp / "open_clip_pytorch_model.bin")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
