"""A run's timeline: small encoder-only snapshots kept every N steps, ``RUN/timeline/step_XXXXXX.safetensors``.

A snapshot holds the encoder's weights (``encoder.*``; no decoder, optimizer or RNG state) in half
precision where a tensor fits fp16's range (a ViT's weights do; one that does not stays fp32), with
the run's config in the safetensors metadata, so that ``factory.load_model`` / ``load_encoder`` read
it as an encoder-only checkpoint. A snapshot is about a seventh of a resumable checkpoint (which adds
the decoder and Adam's two moments, all fp32): 5.4 MB for the tiny offline preset, 172 MB for ViT-B/16,
so the eight of ``keep_every=-1`` take about one checkpoint's room.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from milan_lab.io.weights import remove_stale_temporaries, save_weights

FOLDER = "timeline"
SNAPSHOTS = 8  # what keep_every=-1 keeps over a run
_NAME = re.compile(r"^step_(\d+)\.safetensors$")
_FP16_MAX = torch.finfo(torch.float16).max


def interval(keep_every: int, total_steps: int) -> int:
    """Steps between snapshots: ``keep_every`` itself, 0 (none), or for -1 about ``SNAPSHOTS`` over a
    schedule of ``total_steps`` (every ceil(total / 8) steps; the pretraining job adds the last step)."""
    if keep_every >= 0:
        return keep_every
    return max(1, math.ceil(total_steps / SNAPSHOTS))


def snapshot_path(run: str | Path, step: int) -> Path:
    return Path(run) / FOLDER / f"step_{step:06d}.safetensors"


def _small(t: torch.Tensor) -> torch.Tensor:
    """fp16 for a floating tensor within fp16's range, else unchanged."""
    if t.is_floating_point() and t.dtype != torch.float16 and bool(t.abs().max() <= _FP16_MAX):
        return t.detach().to("cpu", torch.float16)
    return t.detach().cpu()


def save_snapshot(run: str | Path, step: int, encoder_state: dict, config: dict) -> Path:
    """Write the encoder's weights at ``step`` atomically (``io.weights.save_weights``), stamped with the task
    "pretrain": the factory's word for an encoder-only file (it builds the pretraining model's encoder)."""
    state = {f"encoder.{k}": _small(v) for k, v in encoder_state.items()}
    return save_weights(snapshot_path(run, step), state, config, task="pretrain")


def list_snapshots(run: str | Path) -> list[tuple[int, Path]]:
    """(step, file) of every snapshot of a run folder, in step order (partial writes are not listed)."""
    folder = Path(run) / FOLDER
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))


def drop_after(run: str | Path, step: int) -> list[Path]:
    """Remove the snapshots after ``step`` (a run resumed from a checkpoint at ``step`` writes them
    again), as ``metrics.csv`` drops its rows after it: the timeline is then that of an unbroken run.
    Partial writes of a killed run go too."""
    remove_stale_temporaries(Path(run) / FOLDER)
    dropped = [p for s, p in list_snapshots(run) if s > step]
    for p in dropped:
        p.unlink(missing_ok=True)
    return dropped
