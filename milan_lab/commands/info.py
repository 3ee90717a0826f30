"""``milan-lab info PRESET [--json]``: parameter counts and GFLOPs of a preset."""
from __future__ import annotations

import json
import time

from milan_lab import config as C
from milan_lab.commands.common import record_option, save_record


def add_parsers(sub) -> None:
    s = sub.add_parser("info", help="parameter counts and GFLOPs of a preset")
    s.add_argument("preset", choices=list(C.PRESETS))
    s.add_argument("--json", action="store_true")
    record_option(s)
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.tools.info import format_info, model_info
    t = time.perf_counter()
    info = model_info(args.preset)
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    save_record(args, "info", info, time.perf_counter() - t, seeds=())  # the counts depend on no seed
