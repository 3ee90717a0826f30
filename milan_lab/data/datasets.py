"""Datasets: offline scenes, ImageNet-style class folders, image-caption pairs.

Random augmentation is made a pure function of (seed, epoch, index) by ``SeededTransform``:
the same sample gets the same crop whether it is loaded by 1 process or 8, by a worker or the
main process, before or after a resume. That is what makes a resumed run bitwise identical.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

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
    decoded at reduced size) with a numpy generator seeded by (seed, epoch, index). Images of any
    size are read, as long as their decode fits in memory (``load_image(max_pixels=None)``).

    Every file is listed once (:func:`list_class_images`): a symbolic link to a file or folder
    outside ``root`` is followed, one back into ``root`` or into a folder already listed (a loop)
    is refused naming it.

    ``class_to_idx`` (a validation split): number the class folders by name with the training
    split's indices instead of by their own order; a folder of a class not in it is refused."""

    def __init__(self, root: str, transform=None, seed: int = 0, skip_bad: bool = False, min_side: int = 1,
                 class_to_idx: dict[str, int] | None = None):
        if not Path(root).is_dir():
            raise DataError(f"image folder not found: {root}")
        self._given_classes = class_to_idx
        try:
            super().__init__(root, loader=lambda path: load_image(path, min_side=min_side, max_pixels=None))
        except FileNotFoundError as e:  # torchvision: no class folders / no images
            raise DataError(f"{root}: {e}") from None
        self.seeded = SeededTransform(transform, seed)
        self.skip_bad, self.skipped = skip_bad, {}

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """(class names, name -> label): the sub-folders in sorted order, or the given mapping."""
        classes, class_to_idx = super().find_classes(directory)
        if self._given_classes is None:
            return classes, class_to_idx
        unknown = [c for c in classes if c not in self._given_classes]
        if unknown:
            raise DataError(f"{directory}: {len(unknown)} class folders are not classes of the training split: "
                            f"{unknown[:5]}; the validation classes must be training classes (matched by name)")
        return list(self._given_classes), dict(self._given_classes)

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        """torchvision's listing (same samples, same order) with every file listed once."""
        valid = is_valid_file or (lambda path: has_file_allowed_extension(path, extensions or IMG_EXTENSIONS))
        present = {c: i for c, i in class_to_idx.items() if os.path.isdir(os.path.join(directory, c))}
        samples, seen = list_class_images(directory, present, valid)
        empty = sorted(set(present) - seen)
        if empty and not allow_empty:
            raise FileNotFoundError(f"Found no valid file for the classes {', '.join(empty)}. "
                                    f"Supported extensions are: {', '.join(extensions or IMG_EXTENSIONS)}")
        return samples

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


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_class_images(root: str, class_to_idx: dict[str, int], valid) -> tuple[list[tuple[str, int]], set[str]]:
    """([(path, label)], classes with a file) of ``root/<class>/**``, in torchvision's order (folders
    sorted by path, files by name), each file once.

    Written by hand because torchvision walks with ``os.walk(followlinks=True)``, which follows a
    link back into the tree (``cat/loop -> .``) until the path is too long: 4 files listed 84 times.
    Here a link is followed only when it leads out of ``root`` (a subset of ImageNet made of links
    to its class folders); a link into ``root`` lists its files a second time, and a link into a
    folder already listed through another link (or into one of its parents: a loop) does the same,
    so either is refused with :class:`DataError` naming the link."""
    tree = os.path.realpath(root)
    linked_dirs: list[tuple[str, str]] = []  # (real folder, link) of each folder entered through a link
    linked_files: dict[str, str] = {}        # real file -> the link that listed it

    def check_link(link: str, is_dir: bool) -> None:
        target = os.path.realpath(link)
        if _inside(target, tree):
            raise DataError(f"{link}: a symbolic link back into {root} ({target}); its images would be listed twice. "
                            f"Remove the link, or point it outside the folder")
        if is_dir:
            for real, other in linked_dirs:
                if _inside(target, real) or _inside(real, target):
                    raise DataError(f"{link}: a symbolic link to {target}, which {other} already lists (a loop or a "
                                    f"second link to the same images); remove one of them")
            linked_dirs.append((target, link))
        elif target in linked_files:
            raise DataError(f"{link}: a symbolic link to {target}, which {linked_files[target]} already lists; "
                            f"remove one of them")
        else:
            linked_files[target] = link

    samples, seen = [], set()
    for name in sorted(class_to_idx):
        start = os.path.join(root, name)
        if os.path.islink(start):
            check_link(start, is_dir=True)
        folders, stack = [], [start]
        while stack:
            folder = stack.pop()
            files = []
            with os.scandir(folder) as entries:
                for entry in entries:
                    is_dir = entry.is_dir()  # follows a link (a broken link is listed as a file, as torchvision does)
                    if entry.is_symlink() and (is_dir or entry.is_file()):
                        check_link(entry.path, is_dir)
                    if is_dir:
                        stack.append(entry.path)
                    else:
                        files.append(entry.name)
            folders.append((folder, files))
        for folder, files in sorted(folders):
            for file in sorted(files):
                path = os.path.join(folder, file)
                if valid(path):
                    samples.append((path, class_to_idx[name]))
                    seen.add(name)
    return samples, seen


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
        image = load_image(self.root / name, min_side=1, max_pixels=None)
        return self.seeded(image, index), caption


def classifier_split_folders(data: str) -> tuple[Path, Path]:
    """(``data/train``, ``data/val``) of a folder for fine-tuning or linear probing, refused in one
    line when either is missing: without ``val/`` the top-1 would be measured on the training images
    (or on ``train/`` itself taken for a class)."""
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"image folder not found: {data}")
    missing = [split for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"{data}: no {' and no '.join(f'{m}/' for m in missing)} sub-folder; fine-tuning and linear "
                        f"probing expect {data}/train/<class>/<image> and {data}/val/<class>/<image> (a score on the "
                        f"training images measures nothing)")
    return root / "train", root / "val"


def check_classes(train: ClassFolder) -> None:
    """A classifier's training split needs two classes at least: top-1 over one class is 1.0 whatever
    the encoder."""
    if len(train.classes) < 2:
        raise DataError(f"{train.root}: only one class folder ({train.classes[0]!r}); top-1 over one class measures "
                        f"nothing: a classifier needs two classes at least")


def build_dataset(data: str, split: str, image_size: int, transform, seed: int = 0, offline_size: int = 12800,
                  cache_mb: int = 512, variant: str = "dense"):
    """'offline' -> OfflineScenes; a folder -> ClassFolder of ``data/split`` if it exists, else ``data``."""
    if data == "offline":
        return OfflineScenes(split, offline_size, image_size, seed, transform, cache_mb, variant)
    root = Path(data)
    folder = root / split if (root / split).is_dir() else root
    return ClassFolder(str(folder), transform, seed)
