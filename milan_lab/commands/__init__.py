"""The ``milan-lab`` subcommands, one module each: its parser (``add_parsers(sub)``) and its run (``run(args)``).

``COMMANDS`` lists the modules in the order ``milan-lab --help`` shows them; ``milan_lab.cli`` builds the top-level
parser from them. A module imports what its command runs inside ``run``, not at the top: ``milan-lab --help`` and
a refused option answer at once instead of after importing torch, timm, open_clip and gradio.
"""
from milan_lab.commands import (app, attention, bench, compare, embed, export, info, jobs, knn, list_models, predict,
                                probe, seg_probe, submit, teacher, test, timeline)

COMMANDS = (info, jobs, submit, knn, seg_probe, attention, probe, timeline, compare, embed, teacher, bench, app,
            list_models, predict, test, export)
