"""``milan-lab timeline RUN``: each snapshot a run kept (``keep_every``) scored with its monitor's kNN top-1 (on
``--knn-train`` / ``--knn-val`` scenes), attention on the object and agreement with the run's teacher, printed
one line each and drawn as a curve."""
from __future__ import annotations

import json

from milan_lab.commands.common import nonnegative_int, output_file, positive_int


def add_parsers(sub) -> None:
    s = sub.add_parser("timeline", help="score each encoder snapshot a pretraining run kept (keep_every) and draw "
                                        "the curve")
    # dest run_dir: args.run is the function cli.main calls
    s.add_argument("run_dir", metavar="RUN", help="a pretraining run's output_dir (its snapshots are in RUN/timeline)")
    s.add_argument("--out", metavar="FILE.png", type=output_file, help="the figure (default: RUN/timeline.png)")
    s.add_argument("--knn-train", type=positive_int, default=1024, help="offline training scenes, the kNN memory")
    s.add_argument("--knn-val", type=positive_int, default=256, help="offline validation scenes the kNN classifies")
    s.add_argument("--scenes", type=positive_int, default=128, help="scenes the attention is measured on")
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--json", action="store_true", help="print the scores as JSON instead of one line per snapshot")
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.evaluation.timeline import format_timeline
    from milan_lab.tools.timeline import timeline_command
    result, figure = timeline_command(args.run_dir, args.out, args.knn_train, args.knn_val, args.scenes, args.seed)
    print(json.dumps({**result, "figure": str(figure)}, indent=1) if args.json else f"{format_timeline(result)}\nfigure: {figure}")
