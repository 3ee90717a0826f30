"""Cheap evaluation of frozen encoders: kNN and a quick linear classifier on cached features.

The full linear-probe recipe (LARS, 100 epochs, augmentation) is ``engine/linear.py``; these are
for monitoring and ablations, where features are extracted once and reused.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from milan_lab.config import get_config
from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.transforms import eval_transform
from milan_lab.engine.knn import extract_features, knn_top1
from milan_lab.models.load import load_encoder
from milan_lab.models.vit import ViTEncoder


def encoder_from(checkpoint: str | None, preset: str, seed: int = 0) -> ViTEncoder:
    """The encoder of a pretraining checkpoint/output_dir (its architecture from the checkpoint),
    or a randomly initialised one of ``preset`` ('random')."""
    return load_encoder(checkpoint, get_config("pretrain", preset).model, seed)


def offline_features(encoder, image_size: int, train_size: int, val_size: int, pool: str = "cls", seed: int = 0):
    tf = eval_transform(image_size, crop_ratio=1.0)
    train = extract_features(encoder, OfflineScenes("train", train_size, image_size, seed, tf), "cpu", pool=pool)
    val = extract_features(encoder, OfflineScenes("val", val_size, image_size, seed, tf), "cpu", pool=pool)
    return train, val


def quick_linear_probe(train, val, num_classes: int, steps: int = 300, lr: float = 0.05, seed: int = 0) -> float:
    """Full-batch training of BatchNorm(affine=False) + linear on cached features -> val top-1."""
    (xf, y), (vf, vy) = train, val
    mean, std = xf.mean(0), xf.std(0) + 1e-6
    xf, vf = (xf - mean) / std, (vf - mean) / std
    torch.manual_seed(seed)
    head = torch.nn.Linear(xf.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(head(xf), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((head(vf).argmax(1) == vy).float().mean())


def knn_eval(checkpoint: str, preset: str, train_size: int = 2048, val_size: int = 1024) -> dict:
    encoder = encoder_from(checkpoint, preset)
    size = encoder.patch_embed.img_size[0]
    train, val = offline_features(encoder, size, train_size, val_size)
    return {"checkpoint": checkpoint, "knn_top1": knn_top1(train, val)}
