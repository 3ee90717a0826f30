"""Data for the dense (segmentation) probe: offline scenes with their label maps, and real
segmentation folders in the ADE20K layout.

Items are (ImageNet-normalised image [3, S, S], labels [S, S] long). ``IGNORE`` marks pixels
that count for nothing (ADE20K's class 0, "other").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from milan_lab.data.images import load_image
from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.errors import DataError

IGNORE = 255


class SegScenes(Dataset):
    """``size`` offline scenes of ``split`` with their label maps (``SEG_CLASSES``: background
    and the eight shapes, main object and distractors alike)."""

    classes = list(SEG_CLASSES)

    def __init__(self, split: str = "train", size: int = 1024, image_size: int = 64, seed: int = 0,
                 variant: str = "dense"):
        self.split, self.size, self.image_size, self.seed, self.variant = split, size, image_size, seed, variant

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        image, labels = make_labelled_scene(self.seed, self.split, index, self.image_size, self.variant)
        return to_normalized_tensor(image)[0], torch.from_numpy(labels.astype(np.int64))


SPLITS = ("training", "validation")
LABEL_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B")  # single-channel class indices


def seg_folder_splits(root: str, image_size: int = 224) -> tuple["SegFolder", "SegFolder"]:
    """(training, validation) of an ADE20K-layout folder, checked whole before any work.

    The layout is ``images/{training,validation}/NAME.jpg`` with ``annotations/{training,
    validation}/NAME.png``. A folder without both splits is refused: a probe scored on the images
    it was trained on measures nothing. The classes are those of the training annotations;
    validation pixels with a label no training class has are ignored in the score and reported
    (``SegFolder.unknown_labels``)."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(f"{root}: no such folder")
    if not (path / "images").is_dir() or not (path / "annotations").is_dir():
        raise DataError(f"{root}: expected images/ and annotations/, each with training/ and validation/ (ADE20K layout)")
    splits = [s for s in SPLITS if (path / "images" / s).is_dir()]
    if not splits:
        raise DataError(f"{root}: images/ has no training/ and validation/ sub-folders; the dense probe needs both "
                        f"splits (a probe scored on its own training images measures nothing): move the images "
                        f"into images/training and images/validation, and their annotations likewise")
    for split in SPLITS:
        if split not in splits:
            raise DataError(f"{root}: the {split} split is missing (expected images/{split}/ and annotations/{split}/)")
    train = SegFolder(root, "training", image_size)
    return train, SegFolder(root, "validation", image_size, num_classes=train.num_classes)


class SegFolder(Dataset):
    """One split of a segmentation folder in the ADE20K layout: ``images/SPLIT/NAME.jpg`` and
    ``annotations/SPLIT/NAME.png`` holding class indices, 0 = ignore (ADE20K's "other"), so
    class ``c`` of the file is label ``c - 1`` here. Images are resized (short side) and centre
    cropped to ``image_size``; label maps the same way with nearest neighbours.

    Every pair is checked when the split is opened, before any work: the annotation exists, is a
    readable single-channel image and has its image's size (an annotation is never resized to
    fit). ``num_classes`` defaults to the largest class in the annotations; pixels above it become
    ``IGNORE`` and are counted in ``unknown_labels`` (value -> pixels)."""

    def __init__(self, root: str, split: str = "training", image_size: int = 224, num_classes: int | None = None):
        images, annotations = Path(root) / "images" / split, Path(root) / "annotations" / split
        if not images.is_dir() or not annotations.is_dir():
            raise DataError(f"{root}: the {split} split is missing (expected images/{split}/ and annotations/{split}/)")
        pairs = [(p, annotations / f"{p.stem}.png") for p in sorted(images.iterdir())
                 if p.is_file() and not p.name.startswith(".")]
        if not pairs:
            raise DataError(f"{root}: no images in images/{split}/")
        missing = [a.name for _, a in pairs if not a.is_file()]
        if missing:
            raise DataError(f"{root}: {len(missing)} images in images/{split}/ have no annotation, e.g. {missing[:3]}")
        for image_path, label_path in pairs:
            _check_pair(image_path, label_path)
        self.pairs, self.image_size, self.split = pairs, image_size, split
        values = {}  # class value -> pixels, over the split
        for _, label_path in pairs:
            v, n = np.unique(_read_labels(label_path), return_counts=True)
            for value, count in zip(v.tolist(), n.tolist()):
                values[value] = values.get(value, 0) + count
        self.num_classes = num_classes or max(values)
        if self.num_classes < 1:
            raise DataError(f"{root}: the {split} annotations hold no class but 0 (ignore)")
        self.classes = [str(c) for c in range(1, self.num_classes + 1)]
        self.unknown_labels = {v: n for v, n in sorted(values.items()) if v > self.num_classes}
        self.pixels = sum(values.values())

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
        image = self._square(load_image(image_path, min_side=1, max_pixels=None), Image.BICUBIC)  # a dataset's file: any size
        labels = np.asarray(self._square(Image.fromarray(_read_labels(label_path)), Image.NEAREST)).astype(np.int64) - 1
        labels[(labels < 0) | (labels >= self.num_classes)] = IGNORE
        return to_normalized_tensor(np.array(image))[0], torch.from_numpy(labels)


def _check_pair(image_path: Path, label_path: Path) -> None:
    """Header checks only (no decoding): one line naming the file and what is wrong."""
    try:
        with Image.open(image_path) as img:
            image_size = img.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{image_path}: not a readable image ({type(e).__name__})") from None
    try:
        with Image.open(label_path) as ann:
            mode, label_size = ann.mode, ann.size
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{label_path}: not a readable annotation ({type(e).__name__})") from None
    if mode not in LABEL_MODES:
        raise DataError(f"{label_path}: a {mode} image; annotations hold one class index per pixel (a single-channel "
                        f"PNG, mode L or P)")
    if label_size != image_size:
        raise DataError(f"{label_path}: {label_size[0]}x{label_size[1]}, but its image {image_path.name} is "
                        f"{image_size[0]}x{image_size[1]}; an annotation must have its image's size (it is never resized)")


def _read_labels(label_path: Path) -> np.ndarray:
    """The class indices of an annotation [H, W] (a palette image gives its indices, not colours)."""
    try:
        with Image.open(label_path) as ann:
            return np.asarray(ann)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{label_path}: a damaged annotation ({type(e).__name__})") from None
