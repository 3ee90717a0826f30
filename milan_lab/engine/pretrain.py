"""The pretraining engine (mmpretrain's MILAN recipe by default).

AdamW(0.9, 0.95), weight decay 0.05 except norms, biases, position embeddings, cls and mask
tokens; lr = base_lr * batch / 256; per-iteration linear warm-up then cosine (timm's
``CosineLRScheduler``); gradient accumulation; optional clipping; bf16 autocast on CUDA, fp32 on
CPU; rank-0 CSV metrics, kNN accuracy, atomic checkpoints; exact resume.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from timm.optim import create_optimizer_v2
from tqdm import tqdm

from milan_lab.config import PretrainConfig, to_dict
from milan_lab.data.datasets import OfflineScenes, build_dataset
from milan_lab.data.transforms import eval_transform, pretrain_transform
from milan_lab.engine import distributed as dist_utils
from milan_lab.engine.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from milan_lab.engine.common import (EpochBatchSampler, MetricsLog, autocast, autocast_dtype, build_scheduler,
                                     make_loader, resolve_workers, write_json)
from milan_lab.engine.knn import knn_accuracy
from milan_lab.models.milan import MILAN, build_milan

def build_optimizer(model: MILAN, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW; 1-D parameters (norms, biases) and ``model.no_weight_decay()`` get no weight decay
    (timm builds the groups)."""
    return create_optimizer_v2(model, "adamw", lr=cfg.effective_lr, weight_decay=cfg.weight_decay,
                               betas=(cfg.beta1, cfg.beta2))


def knn_sets(cfg: PretrainConfig):
    """Offline train/val subsets for kNN monitoring (None for folder data)."""
    if cfg.data != "offline":
        return None
    tf = eval_transform(cfg.model.image_size, crop_ratio=1.0)
    return (OfflineScenes("train", cfg.knn_train_size, cfg.model.image_size, cfg.seed, tf),
            OfflineScenes("val", cfg.knn_val_size, cfg.model.image_size, cfg.seed, tf))


def pretrain(cfg: PretrainConfig, model: MILAN | None = None) -> dict:
    """Run (or resume) pretraining; returns a summary dict (also written to metrics.json)."""
    cfg.validate()
    device = dist_utils.resolve_device(cfg.device)
    rank, world = dist_utils.init_distributed(device)
    main = dist_utils.is_main(rank)
    out = Path(cfg.output_dir)
    amp_dtype = autocast_dtype(cfg.precision, device)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = model if model is not None else build_milan(cfg.model, device)
    model.to(device).train()

    dataset = build_dataset(cfg.data, "train", cfg.model.image_size,
                            pretrain_transform(cfg.model.image_size, cfg.min_crop_scale), cfg.seed, cfg.offline_size)
    steps_per_epoch = len(dataset) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"dataset has {len(dataset)} images, fewer than one batch of {cfg.batch_size}")
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, total_steps, round(cfg.warmup_epochs * steps_per_epoch), cfg.min_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    step, history = 0, []
    ckpt = latest_checkpoint(out / "checkpoints") if cfg.resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        model.load_student_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, history = state["step"], state["history"]
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    else:
        torch.manual_seed(cfg.seed + rank)  # per-rank stream for masks and drop-path
    log = MetricsLog(out / "metrics.csv", enabled=main)
    log.truncate_after(step)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    knn = knn_sets(cfg) if main and cfg.knn_every else None
    workers = resolve_workers(cfg.num_workers, device)
    micro = cfg.batch_size // world // cfg.accum_steps
    last = min(total_steps, cfg.max_steps or total_steps)
    bar = tqdm(total=last, initial=step, disable=not (main and cfg.progress), desc="pretrain", dynamic_ncols=True)
    t_last, imgs_since = time.time(), 0

    while step < last:
        epoch = step // steps_per_epoch
        dataset.set_epoch(epoch)
        sampler = EpochBatchSampler(len(dataset), cfg.batch_size, cfg.seed, epoch, rank, world,
                                    start_batch=step % steps_per_epoch)
        for images, _ in make_loader(dataset, sampler, workers, device):
            scheduler.step_update(step)
            images = images.to(device, non_blocking=True)
            loss_sum = 0.0
            for i, chunk in enumerate(images.split(micro)):
                with dist_utils.no_sync(ddp_model, i < cfg.accum_steps - 1), autocast(device, amp_dtype):
                    loss = ddp_model(chunk).loss / cfg.accum_steps
                scaler.scale(loss).backward()
                loss_sum += loss.item()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if not math.isfinite(loss_sum):
                raise FloatingPointError(f"loss is {loss_sum} at step {step}; lower the lr or enable clip_grad")
            step += 1
            imgs_since += images.shape[0] * world
            bar.update(1)
            if step % cfg.log_every == 0 or step == last:
                loss_avg = dist_utils.all_reduce_mean(loss_sum, device)
                now = time.time()
                row = {"step": step, "epoch": step / steps_per_epoch, "loss": loss_avg,
                       "lr": optimizer.param_groups[0]["lr"], "img_per_s": imgs_since / max(now - t_last, 1e-9)}
                t_last, imgs_since = now, 0
                history.append(row)
                log.log(row)
                bar.set_postfix(loss=f"{loss_avg:.4f}", lr=f"{row['lr']:.2e}", img_s=f"{row['img_per_s']:.0f}")
            end_of_epoch = step % steps_per_epoch == 0
            if knn is not None and end_of_epoch and (step // steps_per_epoch) % cfg.knn_every == 0:
                acc = knn_accuracy(model.encoder, *knn, device)
                row = {"step": step, "epoch": step / steps_per_epoch, "knn_acc": acc}
                history.append(row)
                log.log(row)
            if step % cfg.checkpoint_every == 0 or step == last:
                _checkpoint(out, step, model, optimizer, scaler, history, cfg, world, main)
            if step >= last:
                break
    bar.close()
    summary = {"steps": step, "total_steps": total_steps, "epochs_done": step / steps_per_epoch,
               "final_loss": next((r["loss"] for r in reversed(history) if "loss" in r), None),
               "knn_acc": next((r["knn_acc"] for r in reversed(history) if "knn_acc" in r), None),
               "output_dir": str(out), "checkpoint": str(out / "checkpoints" / f"step_{step:08d}.pt")}
    if main:
        write_json(out / "metrics.json", {"summary": summary, "history": history, "config": to_dict(cfg)})
    dist_utils.barrier()
    return summary


def _checkpoint(out, step, model, optimizer, scaler, history, cfg, world, main):
    """Every rank's RNG state is gathered so each resumes its own stream; rank 0 writes."""
    states = [rng_state()]
    if world > 1:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, states[0])
        states = gathered
    if main:
        save_checkpoint(out / "checkpoints", step, {
            "model": model.student_state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "step": step, "history": history, "rng": states, "config": to_dict(cfg)}, keep=cfg.keep_checkpoints)
    dist_utils.barrier()
