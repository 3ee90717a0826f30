"""Data for the dense (segmentation) probe: offline scenes with their label maps, and real
segmentation folders in the ADE20K layout.

Items are (ImageNet-normalised image [3, S, S], labels [S, S] long). ``IGNORE`` marks pixels
that count for nothing (ADE20K's class 0, "other").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from milan_lab.data.images import load_image
from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene
from milan_lab.data.transforms import to_normalized_tensor

IGNORE = 255


class SegScenes(Dataset):
    """``size`` offline scenes of ``split`` with their label maps (``SEG_CLASSES``: background
    and the eight shapes, main object and distractors alike)."""

    classes = list(SEG_CLASSES)

    def __init__(self, split: str = "train", size: int = 1024, image_size: int = 64, seed: int = 0):
        self.split, self.size, self.image_size, self.seed = split, size, image_size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        image, labels = make_labelled_scene(self.seed, self.split, index, self.image_size)
        return to_normalized_tensor(image)[0], torch.from_numpy(labels.astype(np.int64))


class SegFolder(Dataset):
    """A segmentation folder in the ADE20K layout: ``images/[split/]NAME.jpg`` and
    ``annotations/[split/]NAME.png`` holding class indices, 0 = ignore (ADE20K's "other"), so
    class ``c`` of the file is label ``c - 1`` here. Images are resized (short side) and centre
    cropped to ``image_size``; label maps the same way with nearest neighbours."""

    def __init__(self, root: str, split: str = "training", image_size: int = 224, num_classes: int | None = None):
        root_path = Path(root)
        images, annotations = root_path / "images", root_path / "annotations"
        if (images / split).is_dir():
            images, annotations = images / split, annotations / split
        if not images.is_dir() or not annotations.is_dir():
            raise FileNotFoundError(f"{root}: expected images/[{split}/] and annotations/[{split}/] (ADE20K layout)")
        pairs = [(p, annotations / f"{p.stem}.png") for p in sorted(images.iterdir()) if p.is_file()]
        missing = [a.name for _, a in pairs if not a.is_file()]
        if missing or not pairs:
            raise FileNotFoundError(f"{root}: {len(missing)} images have no annotation, e.g. {missing[:3]}"
                                    if missing else f"{root}: no images in {images}")
        self.pairs, self.image_size = pairs, image_size
        self.num_classes = num_classes or self._max_class()
        self.classes = [str(c) for c in range(1, self.num_classes + 1)]

    def _max_class(self) -> int:
        return int(max(np.asarray(Image.open(a)).max() for _, a in self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def _square(self, img: Image.Image, resample) -> Image.Image:
        scale = self.image_size / min(img.size)
        img = img.resize((max(self.image_size, round(img.width * scale)), max(self.image_size, round(img.height * scale))),
                         resample)
        left, top = (img.width - self.image_size) // 2, (img.height - self.image_size) // 2
        return img.crop((left, top, left + self.image_size, top + self.image_size))

    def __getitem__(self, index: int):
        image_path, label_path = self.pairs[index]
        image = self._square(load_image(image_path, min_side=1), Image.BICUBIC)
        labels = np.asarray(self._square(Image.open(label_path), Image.NEAREST)).astype(np.int64) - 1
        labels[(labels < 0) | (labels >= self.num_classes)] = IGNORE
        return to_normalized_tensor(np.asarray(image))[0], torch.from_numpy(labels)
