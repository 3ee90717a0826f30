"""Atomic, resumable checkpoints holding plain data only (loadable with ``weights_only=True``).

A checkpoint is written to a temporary file in the same folder and renamed over its final name,
so a run killed mid-write never leaves a truncated ``.pt`` behind; the newest complete one wins.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from milan_lab.errors import CheckpointError
from milan_lab.io.weights import atomic_write, read_weights, tensor_bytes

_NAME = re.compile(r"^step_(\d+)\.pt$")


def save_checkpoint(folder: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    folder = Path(folder)
    path = atomic_write(folder / f"step_{step:08d}.pt", lambda tmp: torch.save(state, tmp), tensor_bytes(state))
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one in a run's output_dir (``DIR/checkpoints``) or a folder."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoints in this folder (expected {path}/checkpoints/step_*.pt)")
        return found
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint dict, read with ``weights_only=True`` (see :func:`milan_lab.io.weights.read_weights`)."""
    return read_weights(path)
