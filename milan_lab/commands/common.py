"""What the commands share: the one-line-error parser, argparse types checked before any work, the options
several commands take (``--json``, ``--record``, ``--no-baseline``/``--quiet``), a measuring command's run
(:func:`report`) and the record writer behind ``--record``.
The benchmark scripts use the parser and the types too."""
from __future__ import annotations

import argparse
import json
import sys
import time

from milan_lab import config as C
from milan_lab.errors import MilanLabError
from milan_lab.io.targets import check_writable


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: ...``, exit 2), as every other user
    error of milan-lab is; ``--help`` still shows the usage. The benchmark scripts use it too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# what the checkpoint commands (attention, knn, seg-probe) say to a teacher download: they build the teacher from
# the checkpoint's own config, so no option of theirs names a local file
CHECKPOINT_TEACHER = ("the teacher comes from the checkpoint's config: pass a checkpoint whose teacher is local, "
                      "or point that config's teacher_pretrained to a local file")


def _int_at_least(low: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a seed)."""
    return _int_at_least(0, text)


def preset_name(text: str) -> str:
    """argparse type: the name of a preset in milan_lab/presets."""
    if text not in C.PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}; known: {', '.join(C.PRESETS)}")
    return text


def device_name(text: str) -> str:
    """argparse type: a device this machine has (``config.check_device``: cuda without a GPU is refused)."""
    try:
        C.check_device(text)
    except MilanLabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def output_file(text: str) -> str:
    """argparse type: a file path that can be written (``io.targets.check_writable``), checked before any work."""
    return _writable(text, folder=False)


def output_folder(text: str) -> str:
    """argparse type: a folder that exists or can be created, and takes new files."""
    return _writable(text, folder=True)


def _writable(text: str, folder: bool) -> str:
    try:
        check_writable(text, folder=folder)
    except MilanLabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def record_option(parser) -> None:
    parser.add_argument("--record", metavar="FILE", type=output_file,
                        help="also write the result with its provenance (command, commit, machine, matmul peak, seeds) "
                             "to this JSON file (checked before the measurement)")


def encoder_arguments(parser) -> None:
    """The encoder a probe command scores: a checkpoint or run folder, or 'random' of ``--preset``'s architecture."""
    parser.add_argument("checkpoint", help="pretraining checkpoint or output_dir; 'random' for random init")
    parser.add_argument("--preset", default=C.PretrainConfig.preset, choices=list(C.PRESETS),
                        help="the architecture of 'random' (a checkpoint brings its own)")


def context_options(parser) -> None:
    """The options of a probe that prints its score beside a random-init encoder's and chance."""
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the random-init encoder of the same architecture, probed the same way (about "
                             "doubles the time)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when stderr "
                                                              "is not a terminal)")


def progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def measuring_options(parser, run) -> None:
    """The options a measuring command ends with (``--json``, ``--record``) and the function it runs."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    record_option(parser)
    parser.set_defaults(run=run)


def report(args, kind: str, measure, text, seeds=(0,)) -> dict:
    """A measuring command's run: ``measure()`` timed, its result printed (JSON with ``--json``, else
    ``text(result)``), then written to ``--record`` with its provenance, the seconds and ``seeds``."""
    t = time.perf_counter()
    result = measure()
    print(json.dumps(result, indent=1) if args.json else text(result))
    save_record(args, kind, result, time.perf_counter() - t, seeds)
    return result


def save_record(args, kind: str, result: dict, seconds: float, seeds=(0,)) -> None:
    """``--record FILE``: the result with its provenance, the command line as typed."""
    if getattr(args, "record", None):
        from milan_lab.tools.records import write_record
        command = " ".join(["milan-lab", *args.argv])
        print(f"record: {write_record(args.record, kind, result, seeds, seconds, command=command)}", file=sys.stderr)


class SubcommandParser(OneLineParser):
    """A subcommand's parser, whose help may end with an epilog worked out when the help is shown
    (``help_epilog``, a callable): a job's lists every option with its default at the ``--preset`` given."""
    help_epilog = None

    def format_help(self) -> str:
        if self.help_epilog is not None:
            self.epilog = self.help_epilog()
        return super().format_help()
