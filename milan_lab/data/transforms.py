"""Image transforms: the MAE/MILAN pretraining transform and small helpers."""
from __future__ import annotations

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms as T

IMAGENET_MEAN, IMAGENET_STD = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # timm's constants, short names


def pretrain_transform(image_size: int, min_scale: float = 0.2) -> T.Compose:
    """The standard MAE/MILAN pretraining view: RandomResizedCrop(scale=(0.2, 1.0), bicubic),
    horizontal flip, ImageNet mean/std."""
    return T.Compose([T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def eval_transform(image_size: int, crop_ratio: float = 0.875) -> T.Compose:
    """Resize the short side to image_size / crop_ratio, centre crop (ImageNet-style evaluation)."""
    resize = int(round(image_size / crop_ratio)) if crop_ratio < 1 else image_size
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(image_size),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def to_normalized_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images [N, H, W, 3] (or one [H, W, 3]) -> ImageNet-normalised float [N, 3, H, W]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255)
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised [N, 3, H, W] or [3, H, W] -> float images [..., H, W, 3] in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    img = (x.detach().cpu().float() * std + mean).clamp(0, 1)
    return img.movedim(-3, -1).numpy()
