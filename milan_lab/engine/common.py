"""Pieces every engine shares: precision by device, seeded epoch batches, logging to CSV."""
from __future__ import annotations

import csv
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable, Iterator

import torch
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader, Sampler

from milan_lab.errors import ConfigError, MilanLabError
from milan_lab.io.weights import atomic_write


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA, plain fp32 on CPU ('auto'); bf16 matmul on CPU is ~100x slower."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision in ("bf16", "fp16") and device.type == "cpu":
        raise ConfigError(f"precision={precision!r} on CPU would be far slower than fp32; use precision=fp32 or auto")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_for(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype, whether gradients need a GradScaler): fp16's narrow range underflows
    small gradients unless the loss is scaled; bf16 and fp32 need no scaling."""
    dtype = autocast_dtype(precision, device)
    return dtype, dtype == torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def build_scheduler(optimizer, total_steps: int, warmup_steps: int, min_lr: float) -> CosineLRScheduler:
    """Per-iteration: linear warm-up from 0 over ``warmup_steps``, then cosine to ``min_lr`` (timm's)."""
    return CosineLRScheduler(optimizer, t_initial=max(1, total_steps - warmup_steps), lr_min=min_lr,
                             warmup_t=warmup_steps, warmup_lr_init=0.0, warmup_prefix=True, t_in_epochs=False)


class EpochBatchSampler(Sampler):
    """Global batches drawn from a (seed, epoch) permutation; each rank takes its slice
    ``[rank::world]`` of every global batch, and a resumed run starts at ``start_batch``.

    Written by hand because torch's DistributedSampler can neither start mid-epoch (exact
    resume) nor keep one global batch identical for any number of processes (the DDP test)."""

    def __init__(self, n: int, global_batch: int, seed: int, epoch: int = 0, rank: int = 0, world: int = 1,
                 start_batch: int = 0):
        if global_batch % world:
            raise ConfigError(f"global batch {global_batch} is not divisible by {world} processes")
        self.n, self.global_batch, self.seed, self.epoch = n, global_batch, seed, epoch
        self.rank, self.world, self.start_batch = rank, world, start_batch

    def __len__(self) -> int:
        return self.n // self.global_batch - self.start_batch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        for b in range(self.start_batch, self.n // self.global_batch):
            batch = perm[b * self.global_batch:(b + 1) * self.global_batch]
            yield batch[self.rank::self.world]


def make_loader(dataset, sampler: EpochBatchSampler, num_workers: int, device: torch.device) -> DataLoader:
    # An explicit generator stops the loader from drawing worker seeds from the global RNG,
    # which the model's own randomness (masks, drop-path) uses and checkpoints restore.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator(), persistent_workers=False)


def user_errors_from_workers(batches: Iterable) -> Iterator:
    """``batches``, with a user error raised in a DataLoader worker process raised again as the main
    process raises it: the same :class:`MilanLabError` class and its own one-line message.

    torch sends a worker's exception back as its class and formatted traceback
    (``torch._utils.ExceptionWrapper``) and raises ``type(e)("Caught BadImage in DataLoader worker
    process 1.\nOriginal Traceback ...")``: the right class, with a 20-line traceback as its message.
    That traceback's last line is the original message; any other exception (a bug) goes on as torch
    raised it, traceback included."""
    try:
        yield from batches
    except MilanLabError as e:
        message = worker_message(e)
        if message is None:
            raise
        raise type(e)(message) from None


def worker_message(error: BaseException) -> str | None:
    """The original message of an exception torch re-raised from a DataLoader worker, or None if
    ``error`` does not come from one."""
    kind = type(error)
    text = str(error)
    if not text.startswith(f"Caught {kind.__name__} in DataLoader worker"):
        return None
    prefix = f"{kind.__module__}.{kind.__qualname__}: "  # how traceback.format_exception names it
    lines = text.rstrip("\n").splitlines()
    for i in range(len(lines) - 1, 0, -1):
        if lines[i].startswith(prefix):
            return "\n".join([lines[i][len(prefix):], *lines[i + 1:]])
    return None


def resolve_workers(num_workers: int, device: torch.device) -> int:
    if num_workers >= 0:
        return num_workers
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


class MetricsLog:
    """Per-step metrics appended to a CSV with fixed columns (rank 0), each row also handed to the
    run's loggers (``sinks``: TensorBoard, W&B, MLflow; ``engine/loggers.py``). Appending keeps logging
    O(1) per row on long runs; a resumed run first drops what was logged after its checkpoint."""

    COLUMNS = ("step", "epoch", "elapsed_s", "loss", "lr", "img_per_s", "knn_acc", "top1", "top5")

    def __init__(self, path: Path, enabled: bool = True, purge_after: int = 0, sinks=()):
        self.path, self.enabled, self.sinks = Path(path), enabled, list(sinks) if enabled else []
        if enabled:
            self.truncate_after(purge_after)
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Flush the loggers; they stay open for the final numbers (the CSV is opened per row)."""
        for sink in self.sinks:
            sink.flush()

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def truncate_after(self, step: int) -> None:
        """On resume from checkpoint ``step``, drop rows logged after it so the CSV matches an unbroken run."""
        if not (self.enabled and self.path.is_file()):
            return
        keep = [r for r in self.read() if int(float(r["step"])) <= step]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.COLUMNS)
                writer.writeheader()
                writer.writerows(keep)

        atomic_write(self.path, write)  # a resume killed here leaves the whole old log, never a cut one

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.COLUMNS})
        for sink in self.sinks:
            sink.log(row)


def write_json(path: Path, data: dict) -> None:
    """``data`` as JSON at ``path``, atomically (``io.weights.atomic_write``): a killed or failed write
    leaves the old file or none, never half of one (``metrics.json`` is what a finished run is read from)."""
    text = json.dumps(data, indent=1, default=float)  # serialised first: a value JSON cannot hold fails before any write
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))
