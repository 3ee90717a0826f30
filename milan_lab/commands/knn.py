"""``milan-lab knn CHECKPOINT``: kNN accuracy (k=20, cosine) of an encoder on the offline data, beside a
random-init encoder's and chance."""
from __future__ import annotations

from milan_lab.commands.common import (CHECKPOINT_TEACHER, context_options, encoder_arguments, measuring_options, positive_int,
                                       progress, report)

# the teacher comes from the checkpoint (DownloadError.option "pretrained" gets these words; cli reads it)
CHECKPOINT_TEACHER_WORDS = {"knn": CHECKPOINT_TEACHER}


def add_parsers(sub) -> None:
    s = sub.add_parser("knn", help="kNN accuracy (k=20, cosine) of an encoder on the offline data")
    encoder_arguments(s)
    s.add_argument("--train-size", type=positive_int, default=2048)
    s.add_argument("--val-size", type=positive_int, default=1024)
    context_options(s)
    measuring_options(s, run)


def run(args) -> None:
    from milan_lab.evaluation.probes import format_knn, knn_eval
    report(args, "knn", lambda: knn_eval(args.checkpoint, args.preset, args.train_size, args.val_size,
                                         baseline=not args.no_baseline, progress=progress(args)), format_knn)
