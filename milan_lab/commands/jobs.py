"""``milan-lab pretrain | finetune | linear-probe [--preset P] [--config YAML] [key=value ...]``: run a job.

A job's ``--help`` is a flag read with the other arguments, so that ``--preset P`` counts wherever it stands:
the help ends with every option of the job and its default at that preset."""
from __future__ import annotations

import argparse
import json

from milan_lab import config as C

JOB_COMMANDS = {"pretrain": "pretrain", "finetune": "finetune", "linear-probe": "linear"}
# how this module's commands take the local file that replaces a download (DownloadError.option "pretrained"; cli reads it)
LOCAL_FILE_OPTIONS = {"pretrain": "teacher_pretrained=PATH"}


def options_epilog(job: str, preset: str | None = None) -> str:
    """Every option of ``job`` with the value a run gets from ``preset`` (the job's default preset if None)."""
    preset = preset or C.JOBS[job].preset
    lines = [f"options (key=value; model.* keys may drop the prefix unless a job option has the same name), "
             f"with their defaults at --preset {preset}, ranges and help:"]
    lines += option_lines(C.describe(C.JOBS[job], preset, details=True))
    lines.append(f"presets: {', '.join(C.PRESETS)}")
    return "\n".join(lines)


def option_lines(rows) -> list[str]:
    """``describe(..., details=True)`` rows as --help lines: key, type and default (which ends its line, as
    scripts read it), then the range and the help on the next."""
    width, lines = max(len(k) for k, *_ in rows), []
    for k, t, d, r, h in rows:
        lines.append(f"  {k:<{width}}  {t:<12} default: {d!r}")
        if r or h:
            lines.append(f"  {'':<{width}}    {r + '; ' if r and h else r}{h}")
    return lines


def add_parsers(sub) -> None:
    for name, job in JOB_COMMANDS.items():
        s = sub.add_parser(name, help=f"run {name}", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter)
        s.help_preset = None  # set from --preset when the help is asked for
        s.help_epilog = lambda s=s, job=job: options_epilog(job, s.help_preset)
        s.add_argument("-h", "--help", action="store_true", dest="job_help",
                       help="show this help, with the options' defaults at --preset, and exit")
        s.set_defaults(job_parser=s, job_kind=job, run=run)
        s.add_argument("--preset", default=C.JOBS[job].preset, choices=list(C.PRESETS))
        s.add_argument("--config", help="YAML file of options (applied before key=value overrides)")
        s.add_argument("overrides", nargs="*", metavar="key=value")


def show_help(args) -> None:
    """A job's --help: its options at the --preset given, then SystemExit(0) as argparse's own --help."""
    args.job_parser.help_preset = args.preset
    args.job_parser.print_help()
    args.job_parser.exit()


def run(args) -> None:
    if args.job_help:
        show_help(args)
    cfg = C.get_config(args.job_kind, args.preset, args.overrides, args.config)
    if args.job_kind == "pretrain":
        from milan_lab.jobs.pretrain import pretrain as job
    elif args.job_kind == "finetune":
        from milan_lab.jobs.finetune import finetune as job
    else:
        from milan_lab.jobs.linear import linear_probe as job
    print(json.dumps(job(cfg), indent=1))
