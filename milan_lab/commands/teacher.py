"""``milan-lab teacher train [key=value ...] | teacher eval [--teacher NAME] [--json]``: train or evaluate the
small CLIP teacher."""
from __future__ import annotations

import argparse

from milan_lab import config as C
from milan_lab.commands.common import measuring_options, positive_int, report
from milan_lab.commands.jobs import option_lines

# how this module's commands take the local file that replaces a download (DownloadError.option "pretrained"; cli reads it)
LOCAL_FILE_OPTIONS = {"teacher": "--pretrained PATH"}


def add_parsers(sub) -> None:
    t = sub.add_parser("teacher", help="train or evaluate the small CLIP teacher")
    tsub = t.add_subparsers(dest="teacher_command", required=True)
    s = tsub.add_parser("train", help="train a small CLIP on offline captions (reproduces the shipped one)",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(
                            ["options (key=value), with their defaults, ranges and help:",
                             *option_lines(C.describe(C.TeacherTrainConfig, details=True))]))
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(run=train)
    s = tsub.add_parser("eval", help="zero-shot accuracy and attention-on-objects of a teacher")
    s.add_argument("--teacher", default=None, help="a shipped teacher (offline-shape, offline-noshape), a folder, an "
                   "open_clip name, or nothing for the shipped shape-aware teacher")
    s.add_argument("--pretrained", default=None)
    s.add_argument("-n", type=positive_int, default=512)
    measuring_options(s, evaluate)


def train(args) -> None:
    from milan_lab.jobs.teacher import TeacherTrainConfig, train_teacher
    cfg = C.apply_overrides(TeacherTrainConfig(), args.overrides)
    folder = train_teacher(cfg)
    print(f"teacher exported to {folder} (load with load_teacher({str(folder)!r}))")


def format_teacher_eval(result: dict) -> str:
    lines = [f"zero-shot {k:<18} {100 * v:5.1f} %" for k, v in result["zero_shot"].items()]
    lines.append(f"attention on objects         {result['attention_on_objects']:.2f}x the objects' area share "
                 f"(median {result['attention_on_objects_median']:.2f}x, {result['n_images']} held-out images)")
    return "\n".join(lines)


def evaluate(args) -> None:
    from milan_lab.evaluation.teacher import evaluate_teacher
    from milan_lab.factory.teachers import load_teacher
    report(args, "teacher-eval", lambda: evaluate_teacher(load_teacher(args.teacher, args.pretrained), n=args.n),
           format_teacher_eval)
