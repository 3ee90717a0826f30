"""Train the small CLIP teacher on offline captioned scenes (``milan-lab teacher train``).

The model is a plain ``open_clip.CLIP`` built from the registered config ``milan-clip-tiny``;
the loss is open_clip's ``ClipLoss``. Batches are *hard-negative groups*: each group of
``group_size`` scenes shares colour, size, place and background and differs only in shape, so
the contrastive task cannot be solved without shape (see milan_lab/data/scenes.py).
Captions randomly leave out colour, size or place, never shape, so short prompts ("a star")
are in-distribution for zero-shot use.

``captions=no-shape`` trains a teacher that does not know the probe's label (the main object's
shape): every caption says "shape" where the shape's name would be ("a large red shape at the
top"), and each hard-negative group shares shape, size and background and differs in the colour
or in the place (chosen per group), which the captions always name; so the contrastive task is
solved by colour, size and place alone and shape is never supervised.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import open_clip
import torch

from milan_lab.config import TeacherTrainConfig
from milan_lab.data.scenes import ATTRIBUTES, SHAPES, random_spec, render_scene
from milan_lab.data.tokenizer import WordTokenizer
from milan_lab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_normalized_tensor
from milan_lab.engine.trainer import Trainer
from milan_lab.errors import ConfigError
from milan_lab.factory.teachers import register_configs
from milan_lab.io.weights import save_weights


# The attributes a hard-negative group differs in (one per group), by what the captions name (CAPTIONS).
_VARIED = {"all": ("shape",), "no-shape": ("colour", "place")}


def check_groups(cfg: TeacherTrainConfig) -> None:
    """A hard-negative group no larger than the values of the attribute its members differ in (the config
    checks that it divides the batch; the bound needs the scenes' attributes, which the config cannot import)."""
    varied = min(len(ATTRIBUTES[a]) for a in _VARIED[cfg.captions])
    if cfg.group_size > varied:
        raise ConfigError(f"group_size ({cfg.group_size}) must be at most {varied} (the values of "
                          f"{' or '.join(_VARIED[cfg.captions])}, which the members of a hard-negative group differ in)")


TeacherTrainConfig.SCENE_CHECKS["group_size"] = check_groups


def hard_negative_batch(cfg: TeacherTrainConfig, step: int) -> tuple[np.ndarray, list[str]]:
    """Batch ``step`` (deterministic in (seed, step)): images [B, H, W, 3] uint8 and captions."""
    cfg.validate()
    if cfg.captions == "no-shape":
        return _no_shape_batch(cfg, step)
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


def _no_shape_batch(cfg: TeacherTrainConfig, step: int) -> tuple[np.ndarray, list[str]]:
    """Batch ``step`` of ``captions=no-shape`` (see :func:`no_shape_groups`), rendered."""
    images, captions = [], []
    for group in no_shape_groups(cfg, step):
        for spec, caption, member_seed, bg_seed in group:
            images.append(render_scene(np.random.default_rng(member_seed), spec, cfg.image_size,
                                       background_rng=np.random.default_rng(bg_seed)))
            captions.append(caption)
    return np.stack(images), captions


def no_shape_groups(cfg: TeacherTrainConfig, step: int) -> list[list[tuple]]:
    """The hard-negative groups of batch ``step`` for ``captions=no-shape``, unrendered: per group,
    ``group_size`` members (spec, caption, the member's render seed, the group's background seed).

    A group shares shape, size and background; its members differ in one attribute the captions
    name (colour or place, drawn per group), which is never left out, so no two captions of a group
    are the same. The others are left out as in the default recipe (each with probability
    ``caption_drop``); the shape always is ("a red shape at the top")."""
    groups = []
    for g in range(cfg.batch_size // cfg.group_size):
        grng = np.random.default_rng([cfg.seed, 8, step, g])  # its own stream: never the default recipe's groups
        shared = random_spec(grng)
        bg_seed = int(grng.integers(2**31))
        varied = _VARIED["no-shape"][int(grng.integers(len(_VARIED["no-shape"])))]
        drop = ("shape",) + tuple(a for a in ("size", "colour", "place") if a != varied and grng.random() < cfg.caption_drop)
        values = ATTRIBUTES[varied]
        members = []
        for i in grng.choice(len(values), cfg.group_size, replace=False):
            spec = replace(shared, **{varied: values[i]})
            members.append((spec, spec.caption(drop), [cfg.seed, 8, step, g, int(i)], bg_seed))
        groups.append(members)
    return groups


def build_clip(cfg: TeacherTrainConfig, tokenizer: WordTokenizer) -> torch.nn.Module:
    register_configs()
    return open_clip.create_model(cfg.clip_model, pretrained=None, force_context_length=tokenizer.context_length)


def lr_at(cfg: TeacherTrainConfig, step: int) -> float:
    """Warm-up from lr/warmup_steps, then cosine to 0. Kept by hand rather than timm's scheduler
    (which starts warm-up at 0) because the shipped teacher was trained with exactly this."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


class _HandSchedule:
    """``lr_at`` in the interface the Trainer calls (``step_update``)."""

    def __init__(self, cfg: TeacherTrainConfig, optimizer):
        self.cfg, self.optimizer = cfg, optimizer

    def step_update(self, step: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, step)


class ExportedTeacher(type(Path())):
    """What :func:`train_teacher` returns: the exported ``local-dir:`` folder, a ``Path`` as any other (so
    ``load_teacher(folder)`` and ``folder / "open_clip_config.json"`` work), with the run beside it:
    ``summary`` (as in metrics.json), ``history`` (the logged rows) and ``model`` (the trained open_clip CLIP,
    in memory, on the CPU). Paths derived from it (``folder / name``) carry none of them."""
    summary: dict | None = None
    history: list[dict] | None = None
    model: torch.nn.Module | None = None


def train_teacher(cfg: TeacherTrainConfig, progress: bool | None = None) -> ExportedTeacher | None:
    """Train (or resume) and export an open_clip ``local-dir:`` folder; returns its path (an
    :class:`ExportedTeacher`, carrying the run's history and model) on rank 0, None on the other ranks."""
    if progress is not None:
        cfg = replace(cfg, progress=progress)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    trainer = Trainer(cfg, "teacher")
    tokenizer = WordTokenizer()
    model = build_clip(cfg, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    clip_loss = open_clip.ClipLoss()

    def batches(epoch: int, start: int):
        for step in range(start, cfg.steps):
            images, captions = hard_negative_batch(cfg, step)
            yield to_normalized_tensor(images[trainer.rank::trainer.world]), captions[trainer.rank::trainer.world]

    def loss_fn(net, batch, ctx):  # the batch itself is drawn from (seed, step): no randomness here
        images, captions = batch
        return clip_loss(*net(images.to(trainer.device), tokenizer(captions).to(trainer.device)))

    def clamp_temperature(step: int) -> None:
        with torch.no_grad():  # as in CLIP: keep the temperature below 100
            model.logit_scale.clamp_(0, math.log(100))

    history = trainer.fit(model, opt, _HandSchedule(cfg, opt), batches, cfg.steps, loss_fn,
                          after_step=clamp_temperature, epochs=1)
    losses = [r["loss"] for r in history if "loss" in r]
    extra = {"train_config": asdict(cfg), "final_loss": float(np.mean(losses[-5:])) if losses else None}
    folder = None
    if trainer.main:
        folder = export_teacher(model.cpu(), tokenizer, open_clip.get_model_config(cfg.clip_model), Path(cfg.output_dir) / "export",
                                extra, cfg.image_size)
    result = trainer.finish({"steps": history[-1]["step"] if history else 0, "final_loss": extra["final_loss"]},
                            model, history=history)
    if folder is None:
        return None
    folder = ExportedTeacher(folder)
    folder.summary, folder.history, folder.model = result.summary, result.history, result.model
    return folder


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
    # fp16 on disk halves the shipped size; loading casts back to fp32. safetensors: plain tensors,
    # read by open_clip's local-dir loader as well as by ours
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_weights(tmp / "open_clip_model.safetensors", state)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
