"""``milan-lab info PRESET [--json]``: parameter counts and GFLOPs of a preset."""
from __future__ import annotations

from milan_lab import config as C
from milan_lab.commands.common import measuring_options, report


def add_parsers(sub) -> None:
    s = sub.add_parser("info", help="parameter counts and GFLOPs of a preset")
    s.add_argument("preset", choices=list(C.PRESETS))
    measuring_options(s, run)


def run(args) -> None:
    from milan_lab.tools.info import format_info, model_info
    report(args, "info", lambda: model_info(args.preset), format_info, seeds=())  # the counts depend on no seed
