"""torchrun / DDP helpers: NCCL on GPU, gloo on CPU; rank 0 logs and checkpoints."""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist

from milan_lab.config import check_device


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Initialise the process group when launched by torchrun; returns (rank, world_size)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device`` (checked as the config checks it; "auto" is CUDA
    where there is one); under torchrun, this process's GPU."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def is_main(rank: int) -> bool:
    return rank == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: float, device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).item()


def no_sync(model, skip: bool):
    """DDP's no_sync for accumulation micro-steps (plain context otherwise)."""
    return model.no_sync() if skip and hasattr(model, "no_sync") else nullcontext()


def cleanup() -> None:
    """Destroy the process group this process started (the trainer calls it when a job ends)."""
    if dist.is_initialized():
        dist.destroy_process_group()
