"""What fine-tuning and linear probing share: the classifier's step and per-epoch evaluation
(top-1, top-5, confusion matrix) on top of the common :class:`~milan_lab.engine.trainer.Trainer`."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from milan_lab.data.datasets import build_dataset, collate_skipping
from milan_lab.data.transforms import eval_transform
from milan_lab.engine.common import autocast, build_scheduler
from milan_lab.engine.trainer import Trainer


@torch.no_grad()
def evaluate(model, dataset, device, amp_dtype, batch_size: int = 256, num_classes: int | None = None) -> dict:
    """top-1 / top-5 accuracy and the confusion matrix [C, C] (rows: truth)."""
    was = model.training
    model.eval()
    correct1 = correct5 = n = 0
    num_classes = num_classes or model.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for batch in DataLoader(dataset, batch_size=batch_size, generator=torch.Generator(), collate_fn=collate_skipping):
        if batch is None:  # every file of this batch was unreadable (reported by the dataset)
            continue
        images, labels = batch
        with autocast(device, amp_dtype):
            logits = model(images.to(device)).float().cpu()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(1).sum().item()
        n += len(labels)
        confusion.index_put_((labels, top[:, 0]), torch.ones_like(labels), accumulate=True)
    model.train(was)
    if n == 0:
        raise ValueError("no readable images to evaluate")
    return {"top1": correct1 / n, "top5": correct5 / n, "confusion": confusion.tolist()}


def val_dataset(cfg):
    """The evaluation split: centre crop 0.875 for real images, the whole scene offline."""
    size = cfg.model.image_size
    return build_dataset(cfg.data, "val", size, eval_transform(size, 1.0 if cfg.data == "offline" else 0.875),
                         cfg.seed, cfg.eval_size, cfg.offline_cache_mb)


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
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
        return {"top1": results["top1"], "top5": results["top5"]}

    history = trainer.fit(model, optimizer, scheduler, trainer.dataset_batches(train_set), steps_per_epoch, loss_fn,
                          evaluate_epoch)
    if not results and trainer.main:  # a run resumed after its last step: evaluate once more
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
    summary = {"steps": history[-1]["step"] if history else 0, "total_steps": steps_per_epoch * cfg.epochs,
               "top1": results.get("top1"), "top5": results.get("top5"), "output_dir": str(cfg.output_dir)}
    return trainer.finish(summary, history=history, confusion=results.get("confusion"))
