"""``milan-lab bench [PRESET] [--json]``: time the pretraining step (img/s, split by stage, MFU)."""
from __future__ import annotations

import json
import time

from milan_lab import config as C
from milan_lab.commands.common import device_name, positive_int, record_option, save_record


def add_parsers(sub) -> None:
    s = sub.add_parser("bench", help="time the pretraining step: img/s, split by stage, MFU")
    s.add_argument("preset", nargs="?", default=C.PretrainConfig.preset, choices=list(C.PRESETS))
    s.add_argument("--batch-size", type=positive_int, default=None)
    s.add_argument("--steps", type=positive_int, default=10)
    s.add_argument("--device", type=device_name, default="auto")
    s.add_argument("--json", action="store_true")
    record_option(s)
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.tools.bench import bench, format_bench
    t = time.perf_counter()
    result = bench(args.preset, args.batch_size, args.steps, args.device)
    print(json.dumps(result, indent=1) if args.json else format_bench(result))
    save_record(args, "bench", result, time.perf_counter() - t, seeds=())
