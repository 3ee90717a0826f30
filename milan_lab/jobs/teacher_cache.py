"""One teacher pass per training image for a whole run (``teacher_cache=true``).

With fixed views (the full image: no random crop, no flip) an image's teacher targets and
class-token importance are the same every epoch, so they are computed once and looked up by
image index afterwards: every epoch after the first skips the teacher's forward pass. The masks
stay random (drawn per step), so each epoch still trains on new masked views of the image; only
the augmentation of the crop is given up.

The cache is filled on its first use (so its cost counts in the run's wall-clock), in index
order and fixed batches: the same numbers whatever the training order, before or after a resume.
"""
from __future__ import annotations


import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from milan_lab.data.transforms import normalize_uint8
from milan_lab.errors import ConfigError
from milan_lab.io.memory import available_memory


class CachedViews(Dataset):
    """K fixed views of each scene of ``scenes`` (an ``OfflineScenes``), for a teacher cache that
    keeps some augmentation: view ``k`` of scene ``i`` is ``transform`` (a random crop and flip)
    drawn from a torch seed of (seed, k, i), the same in every epoch; each epoch shows every scene
    once, in one of its K views drawn from (seed, epoch, i). Items: (image, label, key) with key
    ``k * N + i``, the row of the view's cached targets. ``all_views()`` lists the K x N views in key
    order, for filling the cache."""

    def __init__(self, scenes, transform, views: int, seed: int = 0):
        self.scenes, self.transform, self.views, self.seed, self.epoch = scenes, transform, views, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.scenes)

    def view_of(self, index: int, epoch: int) -> int:
        return int(np.random.SeedSequence([self.seed, epoch, index, 1]).generate_state(1)[0] % self.views)

    def view(self, index: int, k: int):
        image, spec = self.scenes.scene(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([self.seed, k, index, 2]).generate_state(1)[0]))
            return self.transform(Image.fromarray(image)), spec.label

    def __getitem__(self, index: int):
        k = self.view_of(index, self.epoch)
        return (*self.view(index, k), k * len(self) + index)

    def all_views(self) -> Dataset:
        return _AllViews(self)


class _AllViews(Dataset):
    """Every view of a :class:`CachedViews` in key order: item ``key`` is view ``key // N`` of scene ``key % N``."""

    def __init__(self, views: CachedViews):
        self.views = views

    def __len__(self) -> int:
        return self.views.views * len(self.views)

    def __getitem__(self, key: int):
        n = len(self.views)
        return (*self.views.view(key % n, key // n), key)


class WithIndex(Dataset):
    """``dataset`` whose items carry their index last: (image, label, index). uint8 images stay uint8 (timm's
    ``PrefetchLoader`` takes (image, label) pairs only): the job normalises them on the device."""

    def __init__(self, dataset):
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


def cache_bytes(n: int, num_patches: int, target_dim: int) -> int:
    """Bytes of fp32 targets [n, 1+L, D] and importance [n, L]."""
    return 4 * n * ((1 + num_patches) * target_dim + num_patches)


def available_bytes(device: torch.device) -> int | None:
    """Free bytes on ``device`` (on the CPU within a container's cgroup limit), None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_memory()


def check_cache_fits(n: int, num_patches: int, target_dim: int, device: torch.device) -> None:
    """Refuse, before any work, a cache that would take more than half the free memory."""
    need, free = cache_bytes(n, num_patches, target_dim), available_bytes(device)
    if free is not None and need > free // 2:
        raise ConfigError(f"teacher_cache: the targets of {n} images need {need / 2**20:,.1f} MB, more than half "
                          f"the free memory on {device} ({free / 2**20:,.0f} MB); use teacher_cache=false or "
                          "fewer images (offline_size)")


class TeacherCache:
    """``cache(indices) -> (targets [B, 1+L, D_t], importance [B, L])`` for images of ``dataset``
    (whose items are (image, label, ...) with a deterministic image)."""

    def __init__(self, teacher, dataset, device: torch.device, autocast, batch_size: int = 256):
        self.teacher, self.dataset, self.device = teacher, dataset, device
        self.autocast, self.batch_size = autocast, batch_size
        self.targets: torch.Tensor | None = None
        self.importance: torch.Tensor | None = None

    @torch.no_grad()
    def fill(self) -> None:
        targets, importance = [], []
        for batch in DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False):
            images = batch[0]
            # uint8 views of image files (DecodeView) are normalised on the device, as the training batches are
            images = normalize_uint8(images, self.device) if images.dtype == torch.uint8 else images.to(self.device)
            with self.autocast():
                t, imp = self.teacher(images)
            targets.append(t)
            importance.append(imp)
        self.targets, self.importance = torch.cat(targets), torch.cat(importance)

    def __call__(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.targets is None:
            self.fill()
        indices = indices.to(self.device)
        return self.targets[indices], self.importance[indices]
