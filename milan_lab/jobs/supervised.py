"""What fine-tuning and linear probing share: the classifier's step and per-epoch evaluation
(top-1, top-5, confusion matrix) on top of the common :class:`~milan_lab.engine.trainer.Trainer`."""
from __future__ import annotations

import torch

from milan_lab.data.datasets import build_dataset
from milan_lab.data.transforms import eval_transform
from milan_lab.engine.common import build_scheduler
from milan_lab.engine.trainer import Trainer
from milan_lab.evaluation.classifier import evaluate


def val_dataset(cfg):
    """The evaluation split: centre crop 0.875 for real images, the whole scene offline."""
    size = cfg.model.image_size
    return build_dataset(cfg.data, "val", size, eval_transform(size, 1.0 if cfg.data == "offline" else 0.875),
                         cfg.seed, cfg.eval_size, cfg.offline_cache_mb, cfg.offline_variant)


def train_classifier(trainer: Trainer, model, optimizer, train_set, val_set, mixup=None, criterion=None) -> dict:
    """Train ``model`` on ``train_set`` with warm-up + cosine to ``min_lr`` per iteration,
    evaluating on ``val_set`` at the end of each epoch. Returns the summary written to metrics.json."""
    cfg, device = trainer.cfg, trainer.device
    steps_per_epoch = len(train_set) // cfg.batch_size
    scheduler = build_scheduler(optimizer, steps_per_epoch * cfg.epochs, round(cfg.warmup_epochs * steps_per_epoch),
                                cfg.min_lr)
    criterion = criterion or torch.nn.CrossEntropyLoss()
    results = {}

    def loss_fn(net, batch):
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if mixup is not None:
            images, labels = mixup(images, labels)
        return criterion(net(images).float(), labels)

    def evaluate_epoch(step, epoch_end, last):
        if not (epoch_end or last):
            return None
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
        return {"top1": results["top1"], "top5": results["top5"]}

    history = trainer.fit(model, optimizer, scheduler, trainer.dataset_batches(train_set, cfg.num_workers),
                          steps_per_epoch, loss_fn, evaluate_epoch, epochs=cfg.epochs)
    if not results and trainer.main:  # a run resumed after its last step: evaluate once more
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
    summary = {"steps": history[-1]["step"] if history else 0, "total_steps": steps_per_epoch * cfg.epochs,
               "top1": results.get("top1"), "top5": results.get("top5"), "output_dir": str(cfg.output_dir)}
    return trainer.finish(summary, history=history, confusion=results.get("confusion"))
