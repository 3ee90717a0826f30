"""One GPU check, ready to run (``bash benchmarks/gpu_check.sh``): prints one JSON object.

* ``peak``: a bf16 matmul measured here, the denominator of every MFU below;
* ``vit_b_pretrain``: the ViT-B/16 MILAN step (teacher ViT-B/16 CLIP with random weights: weights
  do not change timings) in bf16 autocast at a realistic per-GPU batch, eager and with
  ``torch.compile``: img/s, MFU, peak memory;
* ``jpeg_pipeline``: the JPEG-folder pretraining input (DecodeCrop, uint8, normalised on the GPU)
  with ``--workers`` processes on a generated ImageNet-sized corpus, against the faster ViT-B/16
  step above: does the data keep up, and how many workers would;
* ``offline_default``: the offline default pretraining run end to end for ``--offline-steps`` steps
  on the GPU (data workers, pinned memory, kNN off) next to the data pipeline alone: does the data
  keep up?
* ``vit_b_finetune``: a fine-tuning step of the ViT-B/16 classifier (bf16, AdamW).

Fails at once, with one line and exit code 2, where no CUDA device is present. ``--smoke`` runs
every part at toy sizes on any device (what the tests run on CPU, to keep the JSON shape honest).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from milan_lab.cli import OneLineParser, positive_int
from milan_lab.tools.bench import _sync


def _peak_mem(device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed_steps(step, device, steps: int, warmup: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` calls (compilation happens there)."""
    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t) / steps


def step_flops(step) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from milan_lab.tools.info import register_cpu_sdpa
    register_cpu_sdpa()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def vit_b_pretrain(device, dtype, batch: int, steps: int, compile_: bool, preset: str) -> dict:
    from milan_lab.config import get_config
    from milan_lab.jobs.pretrain import build_optimizer
    from milan_lab.models.milan import MILAN
    from milan_lab.factory.teachers import teacher_architecture
    cfg = get_config("pretrain", preset)
    torch.manual_seed(0)
    model = MILAN(cfg.model, teacher_architecture(cfg.model.teacher, device)).to(device).train()
    opt = build_optimizer(model, cfg)
    images = torch.randn(batch, 3, cfg.model.image_size, cfg.model.image_size, device=device)
    forward = torch.compile(model.forward_train) if compile_ else model.forward_train

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = forward(images).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    sec = timed_steps(step, device, steps, warmup=3)
    flops = step_flops(lambda: model.forward_train(images).loss.backward())  # model FLOPs (eager count)
    opt.zero_grad(set_to_none=True)
    return {"batch": batch, "compile": compile_, "img_per_s": batch / sec, "step_ms": 1e3 * sec,
            "gflops_per_step": flops / 1e9, "achieved_tflops": flops / sec / 1e12, "peak_mem_gib": _peak_mem(device),
            "wall_s_incl_warmup": time.perf_counter() - t0}


def vit_b_finetune(device, dtype, batch: int, steps: int, preset: str) -> dict:
    from timm.optim import create_optimizer_v2

    from milan_lab.config import get_config
    from milan_lab.models.classifier import MILANClassifier
    cfg = get_config("finetune", preset)
    torch.manual_seed(0)
    model = MILANClassifier(cfg.model, 1000, "finetune").to(device).train()
    opt = create_optimizer_v2(model, "adamw", lr=cfg.effective_lr, weight_decay=cfg.weight_decay,
                              layer_decay=cfg.layer_decay)
    images = torch.randn(batch, 3, cfg.model.image_size, cfg.model.image_size, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sec = timed_steps(step, device, steps, warmup=3)
    flops = step_flops(lambda: torch.nn.functional.cross_entropy(model(images), labels).backward())
    opt.zero_grad(set_to_none=True)
    return {"batch": batch, "img_per_s": batch / sec, "step_ms": 1e3 * sec, "gflops_per_step": flops / 1e9,
            "achieved_tflops": flops / sec / 1e12, "peak_mem_gib": _peak_mem(device)}


def offline_default(device, steps: int, batch: int | None, preset: str, offline_size: int | None = None) -> dict:
    """The offline default run end to end, and its data pipeline alone at the same settings; ``offline_size``:
    scenes in the training set (default: the preset's; the teacher cache runs the teacher once on each first)."""
    from milan_lab.config import get_config
    from milan_lab.data.datasets import build_dataset
    from milan_lab.data.transforms import pretrain_transform
    from milan_lab.engine.common import EpochBatchSampler, make_loader, resolve_workers
    from milan_lab.jobs.pretrain import pretrain
    with tempfile.TemporaryDirectory() as out:
        over = {"device": str(device), "max_steps": steps, "knn_every": 0, "progress": False, "output_dir": out,
                "checkpoint_every": 10**9}
        if batch:
            over["batch_size"] = batch
        if offline_size:
            over["offline_size"] = offline_size
        cfg = get_config("pretrain", preset, over)
        t = time.perf_counter()
        # the summary alone (dict() drops the job's model): its trained MILAN would stay on the GPU while the
        # data pipeline is timed below
        summary = dict(pretrain(cfg))
        train_s = time.perf_counter() - t
    ds = build_dataset("offline", "train", cfg.model.image_size, pretrain_transform(cfg.model.image_size), 0,
                       cfg.offline_size)
    workers = resolve_workers(cfg.num_workers, device)
    n = min(steps, len(ds) // cfg.batch_size)
    t = time.perf_counter()
    for i, batch_ in enumerate(make_loader(ds, EpochBatchSampler(len(ds), cfg.batch_size, 0), workers, device)):
        batch_[0].to(device, non_blocking=True)
        if i + 1 >= n:
            break
    _sync(device)
    data_s = time.perf_counter() - t
    train_ips = summary["steps"] * cfg.batch_size / train_s
    data_ips = n * cfg.batch_size / data_s
    return {"steps": summary["steps"], "batch": cfg.batch_size, "workers": workers, "wall_s": train_s,
            "train_img_per_s": train_ips, "data_only_img_per_s": data_ips, "final_loss": summary["final_loss"],
            "data_keeps_up": data_ips > 1.2 * train_ips}


def jpeg_pipeline(device, workers: int, images: int, batch: int, model_img_per_s: float, size: int = 224) -> dict:
    """The JPEG-folder pretraining input (DecodeCrop, uint8, normalised on the device by timm's
    PrefetchLoader) with ``workers`` processes, against the ViT-B/16 step's rate."""
    import math

    from timm.data.loader import PrefetchLoader
    from torch.utils.data import DataLoader

    from milan_lab.data.datasets import ClassFolder
    from milan_lab.data.jpeg_corpus import make_jpeg_corpus
    from milan_lab.data.transforms import DecodeCrop
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = make_jpeg_corpus(Path(tmp) / "corpus", n=images, seed=0)
        made_s = time.perf_counter() - t
        ds = ClassFolder(str(root), DecodeCrop(size, scale=(0.2, 1.0)))
        loader = PrefetchLoader(DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                           pin_memory=device.type == "cuda", persistent_workers=True,
                                           worker_init_fn=lambda _: torch.set_num_threads(1)), device=device)
        for _ in loader:  # one epoch to start the workers and fill the page cache
            pass
        t, seen = time.perf_counter(), 0
        for _ in range(2):
            for x, _ in loader:
                seen += len(x)
        _sync(device)
        img_s = seen / (time.perf_counter() - t)
    per_worker = img_s / workers
    return {"workers": workers, "images": images, "corpus_s": made_s, "img_per_s": img_s, "img_per_s_per_worker": per_worker,
            "model_img_per_s": model_img_per_s, "data_keeps_up": img_s >= model_img_per_s,
            "workers_needed": math.ceil(model_img_per_s / per_worker)}


def main(argv=None) -> int:
    p = OneLineParser(prog=Path(__file__).stem, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=positive_int, default=256, help="ViT-B/16 pretraining batch per GPU (paper: 256)")
    p.add_argument("--finetune-batch", type=positive_int, default=128, help="ViT-B/16 fine-tuning batch per GPU (paper: 128)")
    p.add_argument("--steps", type=positive_int, default=10)
    p.add_argument("--offline-steps", type=positive_int, default=200)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--workers", type=positive_int, default=16, help="JPEG pipeline worker processes")
    p.add_argument("--jpeg-images", type=positive_int, default=4096, help="JPEGs in the generated corpus")
    p.add_argument("--offline-size", type=positive_int, default=None,
                   help="scenes in the offline run's training set (default: the preset's)")
    p.add_argument("--smoke", action="store_true", help="toy sizes on any device (tests)")
    args = p.parse_args(argv)
    from milan_lab.tools.bench import measure_peak
    vit_b, tiny = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k", "milan_vit-tiny-p8_offline"
    if args.smoke:
        device, dtype = torch.device("cpu"), torch.float32
        vit_b = "milan_vit-micro-p8_offline"
        args.batch, args.finetune_batch, args.steps, args.offline_steps = 4, 4, 1, 2
        args.workers, args.jpeg_images = 2, 32
        args.offline_size = args.offline_size or 64  # the preset's 6,400 scenes would all pass the teacher first
        sizes = dict(n=256, batch=8)
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device on this machine; run it where a GPU is (or --smoke for a CPU dry run)",
                  file=sys.stderr)
            return 2
        device, dtype = torch.device("cuda"), torch.bfloat16
        sizes = dict(n=8192, batch=None)
    torch.backends.cuda.matmul.allow_tf32 = True
    t0 = time.perf_counter()
    peak = measure_peak(device, dtype, n=sizes["n"])
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "dtype": str(dtype).replace("torch.", ""), "peak_matmul_tflops": peak / 1e12}
    runs = [vit_b_pretrain(device, dtype, args.batch, args.steps, False, vit_b)]
    if not args.no_compile:
        runs.append(vit_b_pretrain(device, dtype, args.batch, args.steps, True, vit_b))
    for r in runs:
        r["mfu"] = r["achieved_tflops"] * 1e12 / peak
    result["vit_b_pretrain"] = runs
    fastest = max(r["img_per_s"] for r in runs)
    result["jpeg_pipeline"] = jpeg_pipeline(device, args.workers, args.jpeg_images, min(args.batch, 256), fastest)
    ft = vit_b_finetune(device, dtype, args.finetune_batch, args.steps, vit_b)
    ft["mfu"] = ft["achieved_tflops"] * 1e12 / peak
    result["vit_b_finetune"] = ft
    result["offline_default"] = offline_default(device, args.offline_steps, sizes["batch"], tiny, args.offline_size)
    result["total_s"] = time.perf_counter() - t0
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
