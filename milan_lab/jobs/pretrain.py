"""MILAN pretraining (mmpretrain's recipe by default).

AdamW(0.9, 0.95), weight decay 0.05 except norms, biases, position embeddings, cls and mask
tokens; lr = base_lr * batch / 256; per-iteration linear warm-up then cosine (timm's
``CosineLRScheduler``); kNN accuracy on the offline data at the end of each epoch. The loop,
precision, checkpoints and resume are the shared :class:`~milan_lab.engine.trainer.Trainer`'s.
"""
from __future__ import annotations

import dataclasses

import torch
from timm.optim import create_optimizer_v2

from milan_lab.config import PretrainConfig
from milan_lab.data.datasets import OfflineScenes, build_dataset
from milan_lab.data.transforms import DecodeCrop, DecodeView, eval_transform, normalize_uint8, pretrain_transform
from milan_lab.engine.common import build_scheduler
from milan_lab.engine.contract import EvalSchedule, RunResult
from milan_lab.engine.trainer import Trainer
from milan_lab.evaluation.suite import score
from milan_lab.factory.models import create_model
from milan_lab.io import timeline
from milan_lab.jobs.teacher_cache import CachedViews, TeacherCache, WithIndex, check_cache_fits
from milan_lab.models.milan import MILAN


def build_optimizer(model: MILAN, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; 1-D parameters (norms, biases) and ``model.no_weight_decay()`` get no weight decay
    (timm builds the groups). PyTorch's fused kernel: one pass over each parameter instead of a
    dozen small ops."""
    return create_optimizer_v2(model, "adamw", lr=cfg.effective_lr, weight_decay=cfg.weight_decay,
                               betas=(cfg.beta1, cfg.beta2), fused=True)


def knn_sets(cfg: PretrainConfig):
    """Offline train/val subsets for kNN monitoring (None for folder data)."""
    if cfg.data != "offline":
        return None
    tf = eval_transform(cfg.model.image_size, crop_ratio=1.0)
    size, mb = cfg.model.image_size, cfg.offline_cache_mb
    return (OfflineScenes("train", cfg.knn_train_size, size, cfg.seed, tf, mb, cfg.offline_variant),
            OfflineScenes("val", cfg.knn_val_size, size, cfg.seed, tf, mb, cfg.offline_variant))


def train_view(cfg: PretrainConfig):
    """The training view of each image. Image files go through DecodeCrop's decoder (a JPEG straight into
    numpy, uint8 out, normalised on the device): a random crop, or with ``teacher_cache`` / ``fixed_views``
    the fixed full view (DecodeView). Rendered offline scenes are PIL images in memory: torchvision's chain."""
    size, fixed = cfg.model.image_size, cfg.teacher_cache or cfg.fixed_views
    if cfg.data != "offline":
        return DecodeView(size) if fixed else DecodeCrop(size, scale=(cfg.min_crop_scale, 1.0))
    return eval_transform(size, crop_ratio=1.0) if fixed else pretrain_transform(size, cfg.min_crop_scale)


def knn_schedule(cfg: PretrainConfig) -> EvalSchedule:
    """When pretraining's kNN monitor runs: every ``knn_every_steps`` steps if set, else at the end of every
    ``knn_every``-th epoch (0: never); the trainer adds the run's last step."""
    return EvalSchedule(steps=cfg.knn_every_steps, epochs=0 if cfg.knn_every_steps else cfg.knn_every)


def pretrain(cfg: PretrainConfig, model: MILAN | None = None) -> RunResult:
    """Run (or resume) pretraining; returns the summary (also written to metrics.json) as a
    :class:`~milan_lab.engine.contract.RunResult`: ``.history`` the logged rows, ``.model`` the trained MILAN."""
    trainer = Trainer(cfg, "pretrain", arch=cfg.model)
    # the student is initialised from the seed alone, after the teacher is loaded (loading one
    # draws random numbers), so runs that differ only in their teacher use start alike
    model = model if model is not None else create_model(cfg.model, "pretrain", device=trainer.device, seed=cfg.seed)
    size = cfg.model.image_size
    dataset = build_dataset(cfg.data, "train", size, train_view(cfg), cfg.seed, cfg.offline_size, cfg.offline_cache_mb,
                            cfg.offline_variant)
    cache = None
    if cfg.teacher_cache and cfg.cache_views > 1:  # K fixed random crops per scene, one drawn per epoch
        dataset = CachedViews(dataset, pretrain_transform(size, cfg.min_crop_scale), cfg.cache_views, cfg.seed)
    if cfg.teacher_cache and model.teacher is not None:
        views = dataset.all_views() if isinstance(dataset, CachedViews) else dataset
        check_cache_fits(len(views), model.num_patches, cfg.model.target_dim, trainer.device)
        cache = TeacherCache(model.teacher, views, trainer.device, trainer.autocast)
        dataset = dataset if isinstance(dataset, CachedViews) else WithIndex(dataset)
    steps_per_epoch = len(dataset) // cfg.batch_size
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, steps_per_epoch * cfg.epochs, round(cfg.warmup_epochs * steps_per_epoch),
                                cfg.min_lr)
    knn = knn_sets(cfg) if trainer.main and (cfg.knn_every or cfg.knn_every_steps) else None

    def loss_fn(net, batch, ctx):  # (images, labels[, indices]): pretraining ignores the labels
        images = batch[0]  # uint8 views of image files with the cache (WithIndex) are normalised here, on the device
        images = normalize_uint8(images, trainer.device) if images.dtype == torch.uint8 else \
            images.to(trainer.device, non_blocking=True)
        teacher_out = cache(batch[2]) if cache is not None else None
        # mask noise from the step's own generator, seeded from (seed, step, rank) alone: paired runs
        # (ablations) and resumed runs draw the same noise whatever happened before
        return net(images, mode="loss", generator=ctx.generator, teacher_out=teacher_out).loss

    def evaluate(ctx):  # called by the trainer when the kNN schedule says so
        return {"knn_acc": score(model.encoder, ["knn_cls"], datasets={"scenes": knn}, device=trainer.device)["knn_cls"]}

    keep = timeline_hook(cfg, trainer, model, steps_per_epoch * cfg.epochs)
    history = trainer.fit(model, optimizer, scheduler, trainer.dataset_batches(dataset, cfg.num_workers),
                          steps_per_epoch, loss_fn, evaluate if knn is not None else None, after_step=keep,
                          state_dict=model.student_state_dict, load_state_dict=model.load_student_state_dict,
                          epochs=cfg.epochs, eval_every=knn_schedule(cfg))
    step = history[-1]["step"] if history else 0
    summary = {"steps": step, "total_steps": steps_per_epoch * cfg.epochs, "epochs_done": step / steps_per_epoch,
               "final_loss": _last(history, "loss"), "knn_acc": _last(history, "knn_acc"),
               "output_dir": str(cfg.output_dir), "checkpoint": str(trainer.checkpoint_path)}
    return trainer.finish(summary, model, history=history)


def timeline_hook(cfg: PretrainConfig, trainer: Trainer, model: MILAN, total_steps: int):
    """The trainer's ``after_step``: rank 0 keeps the encoder every ``keep_every`` steps (and at the
    run's last step, the schedule's or ``max_steps``'s) in ``output_dir/timeline`` (:mod:`milan_lab.io.timeline`);
    None when the run keeps none. The interval follows the schedule, not ``max_steps``, so a run stopped
    early and resumed keeps the snapshots an unbroken run keeps (plus the step it stopped at); a resumed
    run first drops those after its checkpoint, which it writes again."""
    every = timeline.interval(cfg.keep_every, total_steps)
    if not every or not trainer.main:
        return None
    config, first = dataclasses.asdict(cfg), []
    last = min(total_steps, cfg.max_steps or total_steps)  # where this run stops: its final encoder is kept

    def keep(step: int) -> None:  # ``step`` was just taken: ``step + 1`` are done
        if not first:
            first.append(step)
            timeline.drop_after(cfg.output_dir, step)
        done = step + 1
        if done % every and done != last:
            return
        weights = model.encoder.state_dict()
        if all(bool(torch.isfinite(v).all()) for v in weights.values() if v.is_floating_point()):  # a diverged step: none
            timeline.save_snapshot(cfg.output_dir, done, weights, config)
    return keep


def _last(history: list[dict], key: str):
    return next((r[key] for r in reversed(history) if key in r), None)
