"""``milan-lab bench [PRESET] [--json]``: time the pretraining step (img/s, split by stage, MFU)."""
from __future__ import annotations

from milan_lab import config as C
from milan_lab.commands.common import device_name, measuring_options, positive_int, report


def add_parsers(sub) -> None:
    s = sub.add_parser("bench", help="time the pretraining step: img/s, split by stage, MFU")
    s.add_argument("preset", nargs="?", default=C.PretrainConfig.preset, choices=list(C.PRESETS))
    s.add_argument("--batch-size", type=positive_int, default=None)
    s.add_argument("--steps", type=positive_int, default=10)
    s.add_argument("--device", type=device_name, default="auto")
    measuring_options(s, run)


def run(args) -> None:
    from milan_lab.tools.bench import bench, format_bench
    report(args, "bench", lambda: bench(args.preset, args.batch_size, args.steps, args.device), format_bench, seeds=())
