"""Fine-tuning, following mmpretrain's MILAN benchmark recipe
(configs/milan/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py), built from timm's pieces:
AdamW with layer-wise lr decay 0.65, drop path 0.1, global average pooling without the final
norm, Mixup 0.8 / CutMix 1.0 with label smoothing 0.1, RandAugment rand-m9-mstd0.5-inc1,
random erasing 0.25, warm-up then cosine to 1e-6.
"""
from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup, create_transform
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from torchvision import transforms as T

from milan_lab.config import FinetuneConfig
from milan_lab.data.transforms import DecodeCrop
from milan_lab.engine.contract import RunResult
from milan_lab.engine.trainer import Trainer
from milan_lab.factory.models import create_model, load_encoder_weights
from milan_lab.jobs.supervised import classifier_datasets, train_classifier


def finetune_transform(cfg: FinetuneConfig):
    """timm's training transform (RandomResizedCrop, flip, RandAugment, normalisation, random
    erasing). For image files its crop and flip come from :class:`DecodeCrop` (a JPEG decoded at
    reduced size) and timm's later stages follow; they work on PIL images, so the output stays float."""
    primary, secondary, final = create_transform(
        cfg.model.image_size, is_training=True, scale=(cfg.min_crop_scale, 1.0), auto_augment=cfg.rand_augment,
        re_prob=cfg.random_erasing, re_mode="pixel", re_count=1, interpolation="bicubic", mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD, separate=True)
    later = [*secondary.transforms, *final.transforms]
    if cfg.data == "offline":
        return T.Compose([*primary.transforms, *later])
    return DecodeCrop(cfg.model.image_size, scale=(cfg.min_crop_scale, 1.0), after=T.Compose(later))


def build_finetune(cfg: FinetuneConfig):
    """(model, optimizer, train_set, val_set, mixup) for ``cfg``."""
    train_set, val_set = classifier_datasets(cfg, finetune_transform(cfg))
    num_classes = cfg.num_classes or len(train_set.classes)
    model = create_model(cfg.model, "finetune", num_classes)
    if cfg.checkpoint:
        load_encoder_weights(model, cfg.checkpoint)
    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.effective_lr, weight_decay=cfg.weight_decay,
                                    layer_decay=cfg.layer_decay, betas=(0.9, 0.999))
    mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                  num_classes=num_classes) if (cfg.mixup > 0 or cfg.cutmix > 0) else None
    return model, optimizer, train_set, val_set, mixup


def finetune(cfg: FinetuneConfig) -> RunResult:
    """Run (or resume) fine-tuning; returns the summary (also in metrics.json) with ``.history`` and ``.model``."""
    trainer = Trainer(cfg, "finetune", arch=cfg.model)
    model, optimizer, train_set, val_set, mixup = build_finetune(cfg)
    # Mixup applies the label smoothing itself; without it, timm's smoothed cross-entropy does
    criterion = SoftTargetCrossEntropy() if mixup is not None else LabelSmoothingCrossEntropy(cfg.label_smoothing)
    return train_classifier(trainer, model, optimizer, train_set, val_set, mixup, criterion)
