"""What fine-tuning and linear probing share: the classifier's step and per-epoch evaluation
(top-1, top-5, confusion matrix) on top of the common :class:`~milan_lab.engine.trainer.Trainer`."""
from __future__ import annotations

import torch

from milan_lab.data.datasets import ClassFolder, build_dataset, check_classes, classifier_split_folders
from milan_lab.data.transforms import eval_transform
from milan_lab.engine.common import build_scheduler
from milan_lab.engine.contract import RunResult
from milan_lab.engine.trainer import Trainer
from milan_lab.errors import ConfigError
from milan_lab.evaluation.classifier import evaluate


def classifier_datasets(cfg, train_transform):
    """(train_set, val_set) of a classifier job, checked before any model is built.

    Offline: the scenes' train and val splits. A folder: ``data/train`` and ``data/val``, both
    required; two training classes at least; ``val/``'s class folders numbered by name with
    ``train/``'s labels (a validation class that is not a training class is refused), so a ``val/``
    holding a subset of the classes is scored against the right labels. Evaluation views: centre
    crop 0.875 for real images, the whole scene offline."""
    size = cfg.model.image_size
    if cfg.data == "offline":
        train_set = build_dataset(cfg.data, "train", size, train_transform, cfg.seed, cfg.offline_size,
                                  cfg.offline_cache_mb, cfg.offline_variant)
        _check_num_classes(cfg, train_set)
        return train_set, build_dataset(cfg.data, "val", size, eval_transform(size, 1.0), cfg.seed, cfg.eval_size,
                                        cfg.offline_cache_mb, cfg.offline_variant)
    train_dir, val_dir = classifier_split_folders(cfg.data)
    train_set = ClassFolder(str(train_dir), train_transform, cfg.seed)
    check_classes(train_set)
    _check_num_classes(cfg, train_set)
    val_set = ClassFolder(str(val_dir), eval_transform(size, 0.875), cfg.seed, class_to_idx=train_set.class_to_idx)
    return train_set, val_set


def _check_num_classes(cfg, train_set) -> None:
    """Fewer heads than training classes would put labels out of the head's range."""
    if cfg.num_classes and cfg.num_classes < len(train_set.classes):
        raise ConfigError(f"num_classes={cfg.num_classes}, but the training data holds {len(train_set.classes)} "
                          f"classes; set num_classes=0 (from the data) or at least {len(train_set.classes)}")


def train_classifier(trainer: Trainer, model, optimizer, train_set, val_set, mixup=None, criterion=None) -> RunResult:
    """Train ``model`` on ``train_set`` with warm-up + cosine to ``min_lr`` per iteration, evaluating on
    ``val_set`` when ``eval_every`` says (each epoch's end by default) and after the last step. Returns the
    summary written to metrics.json as a :class:`RunResult` (``.history``, ``.model``: the trained classifier)."""
    cfg, device = trainer.cfg, trainer.device
    steps_per_epoch = len(train_set) // cfg.batch_size
    scheduler = build_scheduler(optimizer, steps_per_epoch * cfg.epochs, round(cfg.warmup_epochs * steps_per_epoch),
                                cfg.min_lr)
    criterion = criterion or torch.nn.CrossEntropyLoss()
    results = {}

    def loss_fn(net, batch, ctx):  # mixup and drop path draw from the global RNG (one stream per rank, resumed)
        images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if mixup is not None:
            images, labels = mixup(images, labels)
        return criterion(net(images).float(), labels)

    def evaluate_val(ctx):  # called by the trainer when eval_every says so
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
        return {"top1": results["top1"], "top5": results["top5"]}

    history = trainer.fit(model, optimizer, scheduler, trainer.dataset_batches(train_set, cfg.num_workers),
                          steps_per_epoch, loss_fn, evaluate_val, epochs=cfg.epochs, eval_every=cfg.eval_every)
    if not results and trainer.main:  # a run resumed after its last step: evaluate once more
        results.update(evaluate(model, val_set, device, trainer.amp_dtype))
    summary = {"steps": history[-1]["step"] if history else 0, "total_steps": steps_per_epoch * cfg.epochs,
               "top1": results.get("top1"), "top5": results.get("top5"), "output_dir": str(cfg.output_dir)}
    return trainer.finish(summary, model, history=history, confusion=results.get("confusion"))
