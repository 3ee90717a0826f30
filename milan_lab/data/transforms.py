"""Image transforms: the MAE/MILAN pretraining transform, the reduced-decode crop for image
files, and small helpers."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms as T

from milan_lab.data.images import decode_array, decode_image, open_image, upright_size

IMAGENET_MEAN, IMAGENET_STD = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # timm's constants, short names


def pretrain_transform(image_size: int, min_scale: float = 0.2) -> T.Compose:
    """The standard MAE/MILAN pretraining view: RandomResizedCrop(scale=(0.2, 1.0), bicubic),
    horizontal flip, ImageNet mean/std."""
    return T.Compose([T.RandomResizedCrop(image_size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class DecodeCrop:
    """RandomResizedCrop (torchvision's sampling: ``scale``, log-uniform ``ratio``, centre crop
    fallback) and a horizontal flip, straight from an image file, drawn from a numpy ``rng``.

    Cheaper than the PIL chain where that spends its time (``benchmarks/data_pipeline.py``): a JPEG
    goes from libjpeg-turbo straight into numpy (simplejpeg), with no PIL image to copy out of; the
    crop is resized by torch's uint8 bicubic kernel (antialiased, as PIL's), several times faster
    than PIL's; and the output stays uint8 [3, S, S], normalised later on the device where it costs
    nothing (timm's ``PrefetchLoader``), with 4x fewer bytes to move. A crop of at least 8x the
    output side (a large photo) is decoded at a reduced DCT scale (1/2, 1/4, 1/8: PIL's ``draft``),
    the largest that keeps 4x the output's pixels per side in the decoded crop: closer to the output
    size, the DCT's downscaling of detailed photos differs from an antialiased resize of the full
    decode by more than the 35 dB PSNR this pipeline is held to (tests/data/test_data_pipeline.py).
    With ``after`` (fine-tuning's RandAugment, normalisation and random erasing, which work on PIL
    images) the crop is handed to ``after`` as a PIL image, under a torch seed drawn from ``rng``."""

    def __init__(self, size: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip: float = 0.5, after=None):
        self.size, self.scale, self.log_ratio, self.flip, self.after = size, scale, np.log(ratio), flip, after

    @property
    def uint8_output(self) -> bool:
        return self.after is None

    def sample(self, width: int, height: int, rng: np.random.Generator) -> tuple[tuple[int, int, int, int], bool]:
        """((left, top, w, h) in the upright image, flip)."""
        area = width * height
        box = None
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*self.log_ratio))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                box = (int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
                break
        if box is None:  # fall back to a centre crop of the image's aspect, clipped to the ratio range
            r = width / height
            lo, hi = np.exp(self.log_ratio)
            w, h = (width, int(round(width / lo))) if r < lo else (int(round(height * hi)), height) if r > hi else (width, height)
            box = ((width - w) // 2, (height - h) // 2, w, h)
        return box, bool(rng.random() < self.flip)

    def __call__(self, path, rng: np.random.Generator):
        img = open_image(path, max_pixels=None)  # a dataset's file: any size whose decode fits in memory
        box, flip = self.sample(*upright_size(img), rng)
        out = crop_resize(img, box, self.size, flip)
        if self.after is None:
            return out
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            return self.after(Image.fromarray(out.permute(1, 2, 0).numpy()))


class DecodeView(DecodeCrop):
    """The fixed full view of an image file, through :class:`DecodeCrop`'s decoder: the geometry of
    ``eval_transform(size, crop_ratio=1)`` (torchvision's ``Resize(size)``: the short side to ``size``, the long
    side truncated; then ``CenterCrop(size)`` with its rounding), but a JPEG decoded by libjpeg-turbo straight
    into numpy (at a reduced DCT scale when the image has 8x the output side), resized by torch's uint8
    antialiased bicubic kernel, and left uint8 [3, S, S] to be normalised on the device. Within the resize
    kernels' and decoders' differences of the PIL chain (above 35 dB PSNR, tests/jobs/test_teacher_cache_files.py).
    The fixed views of ``teacher_cache`` / ``fixed_views`` on image folders."""

    def __init__(self, size: int):
        super().__init__(size, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)

    def __call__(self, path, rng=None) -> torch.Tensor:
        img = open_image(path, max_pixels=None)  # a dataset's file: any size whose decode fits in memory
        width, height = upright_size(img)
        short, long = min(width, height), max(width, height)
        new_short, new_long = self.size, int(self.size * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        factor = 1
        while factor < 8 and short / (2 * factor) >= 4 * self.size:  # keep >= 4x the output side, as crop_resize
            factor *= 2
        if factor > 1:
            img.draft("RGB", (img.width // factor, img.height // factor))
            arr = np.asarray(decode_image(img, min_side=1))
        else:
            arr = decode_array(img)
        arr = np.ascontiguousarray(arr)
        arr = arr if arr.flags.writeable else arr.copy()  # a PIL-backed frame is read-only
        full = torch.nn.functional.interpolate(torch.from_numpy(arr).permute(2, 0, 1)[None], size=(new_h, new_w),
                                               mode="bicubic", antialias=True, align_corners=False)[0]
        top, left = int(round((new_h - self.size) / 2.0)), int(round((new_w - self.size) / 2.0))
        return full[:, top:top + self.size, left:left + self.size].contiguous()


def normalize_uint8(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 images [N, 3, H, W] -> ImageNet-normalised float32 on ``device``, computed as timm's
    ``PrefetchLoader`` does for the training batches (so cached teacher targets see the same numbers)."""
    mean = torch.tensor([255 * m for m in IMAGENET_MEAN], device=device).view(1, 3, 1, 1)
    std = torch.tensor([255 * v for v in IMAGENET_STD], device=device).view(1, 3, 1, 1)
    return images.to(device, non_blocking=True).float().sub_(mean).div_(std)


def crop_resize(img: Image.Image, box: tuple[int, int, int, int], size: int, flip: bool = False,
                reduced_decode: bool = True) -> torch.Tensor:
    """The ``box`` (left, top, w, h, upright coordinates) of an :func:`open_image` image resized to
    ``size`` x ``size`` (bicubic, antialiased) and flipped if asked -> uint8 [3, size, size].
    Decoded at a reduced size where the crop allows it (``reduced_decode``)."""
    width, height = upright_size(img)
    left, top, w, h = box
    factor = 1
    while reduced_decode and factor < 8 and min(w, h) / (2 * factor) >= 4 * size:  # keep >= 4x the output side
        factor *= 2
    if factor > 1:  # a small decoded image: PIL's resize takes the box's fractional coordinates exactly
        # draft works on the stored (not yet upright) image, so ask in its own axes; PIL keeps at least this size
        img.draft("RGB", (img.width // factor, img.height // factor))
        img = decode_image(img, min_side=1)
        sx, sy = img.width / width, img.height / height  # 1 / the scale the decoder actually used
        small = img.resize((size, size), Image.BICUBIC, box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))
        out = torch.from_numpy(np.array(small)).permute(2, 0, 1)
    else:  # a full-size decode: torch's uint8 kernel resizes the integer box several times faster than PIL
        crop = np.ascontiguousarray(decode_array(img)[top:top + h, left:left + w])  # [h, w, 3]: channels-last
        crop = crop if crop.flags.writeable else crop.copy()  # a PIL-backed full-frame view is read-only
        out = torch.nn.functional.interpolate(torch.from_numpy(crop).permute(2, 0, 1)[None], size=(size, size),
                                              mode="bicubic", antialias=True, align_corners=False)[0]
    return out.flip(-1) if flip else out


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
