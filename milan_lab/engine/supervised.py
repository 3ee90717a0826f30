"""The supervised loop shared by fine-tuning and linear probing: per-iteration schedule,
precision by device, per-epoch evaluation, atomic checkpoints, exact resume, DDP."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from milan_lab.config import to_dict
from milan_lab.engine import distributed as dist_utils
from milan_lab.engine.checkpoint import (latest_checkpoint, load_checkpoint, resolve_checkpoint, rng_state,
                                         save_checkpoint, set_rng_state)
from milan_lab.data.datasets import build_dataset
from milan_lab.data.transforms import eval_transform
from milan_lab.engine.common import (EpochBatchSampler, MetricsLog, autocast, autocast_dtype, build_scheduler,
                                     make_loader, resolve_workers, write_json)


def load_encoder_weights(model, checkpoint: str) -> dict:
    """Copy ``encoder.*`` weights from a pretraining checkpoint (file or output_dir) into
    ``model.encoder``; returns the checkpoint's config (a dict) for reference."""
    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    weights = state.get("model", state)
    encoder = {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}
    if isinstance(model.encoder.norm, torch.nn.Identity):  # fine-tuning pools without the final norm
        encoder = {k: v for k, v in encoder.items() if not k.startswith("norm.")}
    if not encoder:
        raise ValueError(f"{path} holds no encoder.* weights (keys like {list(weights)[:3]})")
    missing, unexpected = model.encoder.load_state_dict(encoder, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{path}: encoder weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return state.get("config", {})


@torch.no_grad()
def evaluate(model, dataset, device, amp_dtype, batch_size: int = 256, num_classes: int | None = None) -> dict:
    """top-1 / top-5 accuracy and the confusion matrix [C, C] (rows: truth)."""
    was = model.training
    model.eval()
    correct1 = correct5 = n = 0
    num_classes = num_classes or model.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for images, labels in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator()):
        with autocast(device, amp_dtype):
            logits = model(images.to(device)).float().cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(1).sum().item()
        n += len(labels)
        confusion.index_put_((labels, top[:, 0]), torch.ones_like(labels), accumulate=True)
    model.train(was)
    return {"top1": correct1 / n, "top5": correct5 / n, "confusion": confusion.tolist()}


def val_dataset(cfg):
    """The evaluation split: centre crop 0.875 for real images, the whole scene offline."""
    size = cfg.model.image_size
    return build_dataset(cfg.data, "val", size, eval_transform(size, 1.0 if cfg.data == "offline" else 0.875),
                         cfg.seed, cfg.eval_size)


def train_classifier(cfg, model, optimizer, train_set, val_set, mixup=None, criterion=None, min_lr: float = 0.0) -> dict:
    """Train ``model`` on ``train_set`` with warm-up + cosine to ``min_lr`` per iteration.
    Returns the summary written to metrics.json."""
    device = dist_utils.resolve_device(cfg.device)
    rank, world = dist_utils.init_distributed(device)
    main = dist_utils.is_main(rank)
    out = Path(cfg.output_dir)
    amp_dtype = autocast_dtype(cfg.precision, device)
    model.to(device).train()
    steps_per_epoch = len(train_set) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"training set has {len(train_set)} images, fewer than one batch of {cfg.batch_size}")
    total = steps_per_epoch * cfg.epochs
    scheduler = build_scheduler(optimizer, total, round(cfg.warmup_epochs * steps_per_epoch), min_lr)
    criterion = criterion or torch.nn.CrossEntropyLoss()
    step, history = 0, []
    ckpt = latest_checkpoint(out / "checkpoints") if cfg.resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = state["step"], state["history"]
        set_rng_state(state["rng"])
    else:
        torch.manual_seed(cfg.seed + rank)
    log = MetricsLog(out / "metrics.csv", enabled=main)
    log.truncate_after(step)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    workers = resolve_workers(cfg.num_workers, device)
    last = min(total, cfg.max_steps or total)
    bar = tqdm(total=last, initial=step, disable=not (main and cfg.progress), desc=Path(cfg.output_dir).name)
    t0, seen = time.time(), 0
    result = None
    while step < last:
        epoch = step // steps_per_epoch
        train_set.set_epoch(epoch)
        sampler = EpochBatchSampler(len(train_set), cfg.batch_size, cfg.seed, epoch, rank, world, step % steps_per_epoch)
        for images, labels in make_loader(train_set, sampler, workers, device):
            scheduler.step_update(step)
            images, labels = images.to(device), labels.to(device)
            if mixup is not None:
                images, labels = mixup(images, labels)
            with autocast(device, amp_dtype):
                loss = criterion(net(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(images) * world
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % steps_per_epoch == 0 or step == last:
                result = evaluate(model, val_set, device, amp_dtype) if main else {"top1": None, "top5": None}
                row = {"step": step, "epoch": step / steps_per_epoch, "loss": dist_utils.all_reduce_mean(loss.item(), device),
                       "lr": max(g["lr"] for g in optimizer.param_groups), "top1": result["top1"], "top5": result["top5"],
                       "img_per_s": seen / max(time.time() - t0, 1e-9)}
                history.append(row)
                log.log(row)
            if step % cfg.checkpoint_every == 0 or step == last:
                if main:
                    save_checkpoint(out / "checkpoints", step, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "history": history, "rng": rng_state(), "config": to_dict(cfg)}, keep=cfg.keep_checkpoints)
                dist_utils.barrier()
            if step >= last:
                break
    bar.close()
    if result is None or "confusion" not in result:
        result = evaluate(model, val_set, device, amp_dtype) if main else {}
    summary = {"steps": step, "total_steps": total, "top1": result.get("top1"), "top5": result.get("top5"),
               "output_dir": str(out)}
    if main:
        write_json(out / "metrics.json", {"summary": summary, "history": history,
                                          "confusion": result.get("confusion"), "config": to_dict(cfg)})
    dist_utils.barrier()
    return summary
