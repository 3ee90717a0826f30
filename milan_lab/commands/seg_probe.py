"""``milan-lab seg-probe CHECKPOINT``: a linear dense (segmentation) probe of a frozen encoder, its mIoU."""
from __future__ import annotations

import sys
import warnings

from milan_lab.commands.common import (CHECKPOINT_TEACHER, context_options, encoder_arguments, measuring_options,
                                       nonnegative_int, output_file, positive_int, progress, report)
from milan_lab.errors import DataWarning

# the teacher comes from the checkpoint (DownloadError.option "pretrained" gets these words; cli reads it)
CHECKPOINT_TEACHER_WORDS = {"seg-probe": CHECKPOINT_TEACHER}


def add_parsers(sub) -> None:
    s = sub.add_parser("seg-probe", help="linear dense (segmentation) probe of a frozen encoder: mIoU")
    encoder_arguments(s)
    s.add_argument("--data", default="offline", help="'offline' (scenes with label maps) or an ADE20K-layout folder")
    s.add_argument("--train-size", type=positive_int, default=1024)
    s.add_argument("--val-size", type=positive_int, default=512)
    s.add_argument("--steps", type=positive_int, default=300)
    s.add_argument("--seed", type=nonnegative_int, default=0)
    s.add_argument("--no-save", action="store_true", help="do not save the probe")
    s.add_argument("--out", metavar="FILE", default=None, type=output_file,
                   help="where the probe goes (default: beside the checkpoint; outputs/probes/NAME/ for a shipped or zoo "
                        "model, whose files are never written; the app looks there)")
    context_options(s)
    measuring_options(s, run)


def run(args) -> None:
    from milan_lab.evaluation.probes import format_seg_probe
    report(args, "seg-probe", lambda: _probe(args), format_seg_probe, seeds=(args.seed,))


def _probe(args) -> dict:
    """seg_probe_eval with its data warnings as one line each (``milan-lab seg-probe: warning: ...``)."""
    from milan_lab.evaluation.probes import seg_probe_eval
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        r = seg_probe_eval(args.checkpoint, args.preset, args.data, args.train_size, args.val_size, args.steps,
                           args.seed, save=not args.no_save, baseline=not args.no_baseline, progress=progress(args),
                           out=args.out)
    for w in caught:  # ours as one line; any other warning as Python shows it
        if issubclass(w.category, DataWarning):
            print(f"milan-lab seg-probe: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return r
