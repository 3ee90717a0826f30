"""Linear probing, following mmpretrain's MILAN benchmark recipe
(configs/milan/benchmarks/vit-base-p16_8xb2048-linear-coslr-100e_in1k.py): frozen encoder,
class token after the final norm, BatchNorm without affine + linear head, LARS (timm's) at
lr 3.2 for batch 2048, momentum 0.9, no weight decay, warm-up then cosine; crop + flip only.
"""
from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.optim import create_optimizer_v2
from torchvision import transforms as T

from milan_lab.config import LinearProbeConfig
from milan_lab.engine.contract import RunResult
from milan_lab.engine.trainer import Trainer
from milan_lab.factory.models import create_model, load_encoder_weights
from milan_lab.jobs.supervised import classifier_datasets, train_classifier


def linear_transform(image_size: int):
    return T.Compose([T.RandomResizedCrop(image_size, interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)])


def build_linear(cfg: LinearProbeConfig):
    train_set, val_set = classifier_datasets(cfg, linear_transform(cfg.model.image_size))
    model = create_model(cfg.model, "linear", cfg.num_classes or len(train_set.classes))
    if cfg.checkpoint:
        load_encoder_weights(model, cfg.checkpoint)
    optimizer = create_optimizer_v2([p for p in model.parameters() if p.requires_grad], "lars", lr=cfg.effective_lr,
                                    momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return model, optimizer, train_set, val_set


def linear_probe(cfg: LinearProbeConfig) -> RunResult:
    """Run (or resume) linear probing; returns the summary (also in metrics.json) with ``.history`` and ``.model``."""
    trainer = Trainer(cfg, "linear-probe", arch=cfg.model)
    model, optimizer, train_set, val_set = build_linear(cfg)
    return train_classifier(trainer, model, optimizer, train_set, val_set)
