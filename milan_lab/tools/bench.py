"""``milan-lab bench``: time the pretraining step, split by stage, and its model FLOPs utilisation.

MFU = (FLOPs of one training step, counted by torch's FlopCounterMode) / median step time / peak,
where the peak is a large matmul measured on the same device in the same run (fp32 on CPU,
bf16 on CUDA -- the precision the engine trains in). Weights do not change timings, so teachers
other than the shipped one are built from their architecture alone (no download).
"""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from milan_lab.config import get_config
from milan_lab.engine.common import autocast, autocast_dtype
from milan_lab.engine.distributed import resolve_device
from milan_lab.errors import ConfigError
from milan_lab.factory.models import create_model
from milan_lab.factory.teachers import teacher_architecture
from milan_lab.jobs.pretrain import build_optimizer
from milan_lab.tools.info import register_cpu_sdpa


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device, dtype, n: int | None = None, repeats: int = 5, bursts: int = 4) -> float:
    """Achieved FLOP/s of an n x n matmul in ``dtype`` on ``device``: the best of ``bursts``
    timings of ``repeats`` matmuls. A peak is a maximum: on a shared machine the mean over a single
    burst moves between runs, and a slow reading would inflate MFU."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(bursts):
        _sync(device)
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 * repeats / best


def bench(preset: str, batch_size: int | None = None, steps: int = 10, device: str = "auto", warmup: int = 3) -> dict:
    cfg = get_config("pretrain", preset, {"device": device})
    dev = resolve_device(cfg.device)
    amp = autocast_dtype(cfg.precision, dev)
    batch = batch_size or (cfg.batch_size if dev.type == "cuda" else min(cfg.batch_size, 64))
    teacher = teacher_architecture(cfg.model.teacher, dev) if cfg.model.needs_teacher else None
    if cfg.model.needs_teacher and teacher is None:
        raise ConfigError(f"unknown teacher {cfg.model.teacher!r}: an open_clip model name or a teacher folder")
    model = create_model(cfg.model, "pretrain", teacher=teacher if teacher is not None else "none", device=dev).train()
    opt = build_optimizer(model, cfg)
    images = torch.randn(batch, 3, cfg.model.image_size, cfg.model.image_size, device=dev)
    stages = ("teacher", "mask", "encoder", "decoder+loss", "backward", "optimizer")
    totals = dict.fromkeys(stages, 0.0)
    times = []

    def step(record: bool):
        marks = [time.perf_counter()]

        def mark():
            _sync(dev)
            marks.append(time.perf_counter())

        with autocast(dev, amp):
            target, importance = model.forward_teacher(images)
            mark()
            masking = model.sample_mask(images, importance)
            mark()
            latent = model.forward_encoder(images, masking)
            mark()
            loss = model.forward_loss(images, model.forward_decoder(latent, masking), target, masking.mask)
            mark()
        loss.backward()
        mark()
        opt.step()
        opt.zero_grad(set_to_none=True)
        mark()
        if record:
            for name, a, b in zip(stages, marks, marks[1:]):
                totals[name] += b - a
            times.append(marks[-1] - marks[0])

    for _ in range(warmup):
        step(False)
    for _ in range(steps):
        step(True)

    register_cpu_sdpa()
    counter = FlopCounterMode(display=False)
    with counter:
        step(False)
    flops_per_step = counter.get_total_flops()
    peak = measure_peak(dev, amp or torch.float32)
    # the median step: a step slowed by a neighbour on a shared machine does not move it (the
    # stage split below is the mean over all steps)
    step_time = statistics.median(times)
    return {
        "preset": preset, "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "precision": str(amp or torch.float32).replace("torch.", ""), "batch_size": batch, "steps": steps,
        "threads": torch.get_num_threads(), "img_per_s": batch / step_time, "step_ms": 1e3 * step_time,
        "step_ms_mean": 1e3 * sum(times) / steps,
        "stage_ms": {k: 1e3 * v / steps for k, v in totals.items()},
        "gflops_per_step": flops_per_step / 1e9, "achieved_tflops": flops_per_step / step_time / 1e12,
        "peak_matmul_tflops": peak / 1e12, "mfu": flops_per_step / step_time / peak,
    }


def format_bench(r: dict) -> str:
    lines = [f"{r['preset']} on {r['device_name']} ({r['precision']}, batch {r['batch_size']}, {r['threads']} threads)",
             f"  {r['img_per_s']:.1f} img/s, {r['step_ms']:.1f} ms/step (median; mean {r['step_ms_mean']:.1f})"]
    total = sum(r["stage_ms"].values())
    for k, v in r["stage_ms"].items():
        lines.append(f"    {k:<13} {v:8.1f} ms  ({100 * v / total:4.1f} %)")
    lines.append(f"  {r['gflops_per_step']:.1f} GFLOP/step -> {r['achieved_tflops'] * 1e3:.1f} GFLOP/s achieved; "
                 f"measured matmul peak {r['peak_matmul_tflops'] * 1e3:.1f} GFLOP/s; MFU {100 * r['mfu']:.1f} %")
    return "\n".join(lines)
