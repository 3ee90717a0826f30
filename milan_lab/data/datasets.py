"""Datasets: offline scenes, ImageNet-style class folders, image-caption pairs.

Random augmentation is made a pure function of (seed, epoch, index) by ``SeededTransform``:
the same sample gets the same crop whether it is loaded by 1 process or 8, by a worker or the
main process, before or after a resume. That is what makes a resumed run bitwise identical.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from milan_lab.data.images import load_image
from milan_lab.data.scenes import SHAPES, make_scene
from milan_lab.data.transforms import DecodeCrop
from milan_lab.errors import BadImage, DataError


class SeededTransform:
    """Run ``transform`` under a torch seed derived from (seed, epoch, index), leaving the
    caller's RNG untouched."""

    def __init__(self, transform, seed: int = 0):
        self.transform, self.seed, self.epoch = transform, seed, 0

    def __call__(self, image, index: int):
        if self.transform is None:
            return image
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]))
            return self.transform(image)


class OfflineScenes(Dataset):
    """``size`` procedural scenes of ``split``; item -> (transformed image, shape label).

    Rendered scenes are kept in memory after their first use when they fit in ``cache_mb``
    (12,800 scenes at 64 px: 157 MB): every epoch after the first would otherwise render the same
    pixels again. Only the rendering is cached; augmentation stays a
    function of (seed, epoch, index), so results are identical with or without the cache."""

    classes = list(SHAPES)

    def __init__(self, split: str = "train", size: int = 12800, image_size: int = 64, seed: int = 0, transform=None,
                 cache_mb: int = 512, variant: str = "dense"):
        self.split, self.size, self.image_size, self.seed, self.variant = split, size, image_size, seed, variant
        self.transform = SeededTransform(transform, seed)
        self._cache = {} if size * image_size ** 2 * 3 <= cache_mb * 2**20 else None

    def set_epoch(self, epoch: int) -> None:
        self.transform.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def scene(self, index: int):
        """(uint8 array [H, W, 3], SceneSpec)."""
        if self._cache is None:
            return make_scene(self.seed, self.split, index, self.image_size, self.variant)
        if index not in self._cache:
            self._cache[index] = make_scene(self.seed, self.split, index, self.image_size, self.variant)
        return self._cache[index]

    def __getitem__(self, index: int):
        img, spec = self.scene(index)
        return self.transform(Image.fromarray(img), index), spec.label


class ClassFolder(ImageFolder):
    """ImageNet-style folder (``root/<class>/<image>``) with epoch-seeded augmentation; images
    are opened upright (EXIF orientation applied).

    ``skip_bad=True`` (evaluation): an unreadable file yields ``None`` instead of raising and is
    recorded in ``self.skipped`` (path -> reason); :func:`collate_skipping` drops it from the batch.
    ``min_side``: smaller images are unreadable for this use (evaluation refuses images under 16 px,
    as ``predict`` and the app do; training crops and resizes whatever it gets).

    A :class:`~milan_lab.data.transforms.DecodeCrop` transform reads the file itself (a JPEG is
    decoded at reduced size) with a numpy generator seeded by (seed, epoch, index)."""

    def __init__(self, root: str, transform=None, seed: int = 0, skip_bad: bool = False, min_side: int = 1):
        if not Path(root).is_dir():
            raise DataError(f"image folder not found: {root}")
        try:
            super().__init__(root, loader=lambda path: load_image(path, min_side=min_side))
        except FileNotFoundError as e:  # torchvision: no class folders / no images
            raise DataError(f"{root}: {e}") from None
        self.seeded = SeededTransform(transform, seed)
        self.skip_bad, self.skipped = skip_bad, {}

    def set_epoch(self, epoch: int) -> None:
        self.seeded.epoch = epoch

    @property
    def uint8_images(self) -> bool:
        """Whether items are uint8 images, to be normalised on the device."""
        return isinstance(self.seeded.transform, DecodeCrop) and self.seeded.transform.uint8_output

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            if isinstance(self.seeded.transform, DecodeCrop):
                image = self.seeded.transform(path, np.random.default_rng([self.seeded.seed, self.seeded.epoch, index]))
            else:
                image = self.seeded(self.loader(path), index)
        except BadImage as e:
            if not self.skip_bad:
                raise
            self.skipped[path] = str(e).split(": ", 1)[-1]
            return None
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def collate_skipping(batch):
    """default_collate without the ``None`` items a ``skip_bad`` dataset returns (None if all are)."""
    batch = [b for b in batch if b is not None]
    return torch.utils.data.default_collate(batch) if batch else None


class CaptionPairs(Dataset):
    """Image-caption pairs: a folder of images plus ``captions.csv`` (columns ``image,caption``)
    or ``captions.jsonl`` (``{"image": ..., "caption": ...}`` per line)."""

    def __init__(self, root: str, transform=None, seed: int = 0):
        self.root = Path(root)
        csv_path, jsonl_path = self.root / "captions.csv", self.root / "captions.jsonl"
        if csv_path.is_file():
            with open(csv_path, newline="") as f:
                rows = [(r["image"], r["caption"]) for r in csv.DictReader(f)]
        elif jsonl_path.is_file():
            rows = [(d["image"], d["caption"]) for d in map(json.loads, jsonl_path.read_text().splitlines()) if d]
        else:
            raise DataError(f"{root}: expected captions.csv (image,caption) or captions.jsonl")
        missing = [name for name, _ in rows if not (self.root / name).is_file()]
        if missing:
            raise DataError(f"{root}: {len(missing)} listed images are missing, e.g. {missing[:3]}")
        self.rows = rows
        self.seeded = SeededTransform(transform, seed)

    def set_epoch(self, epoch: int) -> None:
        self.seeded.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        name, caption = self.rows[index]
        image = load_image(self.root / name, min_side=1)
        return self.seeded(image, index), caption


def build_dataset(data: str, split: str, image_size: int, transform, seed: int = 0, offline_size: int = 12800,
                  cache_mb: int = 512, variant: str = "dense"):
    """'offline' -> OfflineScenes; a folder -> ClassFolder of ``data/split`` if it exists, else ``data``."""
    if data == "offline":
        return OfflineScenes(split, offline_size, image_size, seed, transform, cache_mb, variant)
    root = Path(data)
    folder = root / split if (root / split).is_dir() else root
    return ClassFolder(str(folder), transform, seed)
