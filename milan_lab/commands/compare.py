"""``milan-lab compare RUN_A RUN_B [RUN ...] [--out DIR]``: runs side by side (markdown, JSON and a figure)."""
from __future__ import annotations

import sys

from milan_lab.commands.common import output_folder


def add_parsers(sub) -> None:
    s = sub.add_parser("compare", help="runs side by side: config differences, loss and kNN by images seen, final "
                                       "numbers (with a t-interval for seeds of one recipe); markdown, JSON and a figure")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run folders (a job's output_dir), at least 2")
    s.add_argument("--out", metavar="DIR", type=output_folder, default=None,
                   help="folder for compare.md, compare.json and compare.png (default: outputs/compare/A-vs-B)")
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.tools.compare import compare, format_compare
    result, paths = compare(args.runs, args.out)
    print(format_compare(result))
    print(f"written: {paths['md']}, {paths['json']}, {paths['png']}", file=sys.stderr)
