"""Where the offline pretraining step spends its time: a torch.profiler table of one preset's step.

    python benchmarks/profile_step.py [PRESET] [--batch 64] [--steps 3] [--rows 25]

Prints the operators sorted by self CPU time (or CUDA time on a GPU) over ``--steps`` steps after
warm-up: the input for making ``milan-lab bench``'s MFU go up (unfused attention, layout copies,
small kernels, the optimiser).
"""
from __future__ import annotations

import argparse
from pathlib import Path

# Only light modules here: a refused option answers at once; torch and the model load when the work starts.
from milan_lab.cli import OneLineParser, device_name, positive_int, preset_name
from milan_lab.config import get_config
from milan_lab.errors import MilanLabError


def main(argv=None) -> None:
    p = OneLineParser(prog=Path(__file__).stem, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", nargs="?", type=preset_name, default="milan_vit-tiny-p8_offline")
    p.add_argument("--batch", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=3)
    p.add_argument("--rows", type=positive_int, default=25)
    p.add_argument("--device", type=device_name, default="auto")
    args = p.parse_args(argv)
    try:
        cfg = get_config("pretrain", args.preset, {"device": args.device})
    except MilanLabError as e:
        p.error(str(e))
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from milan_lab.engine.distributed import resolve_device
    from milan_lab.factory.teachers import teacher_architecture
    from milan_lab.jobs.pretrain import build_optimizer
    from milan_lab.models.milan import MILAN
    device = resolve_device(cfg.device)
    model = MILAN(cfg.model, teacher_architecture(cfg.model.teacher, device)).to(device).train()
    opt = build_optimizer(model, cfg)
    images = torch.randn(args.batch, 3, cfg.model.image_size, cfg.model.image_size, device=device)

    def step():
        with record_function("teacher"):
            target, importance = model.forward_teacher(images)
        with record_function("student forward"):
            masking = model.sample_mask(images, importance)
            pred = model.forward_decoder(model.forward_encoder(images, masking), masking)
            loss = model.forward_loss(images, pred, target, masking.mask)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))


if __name__ == "__main__":
    main()
