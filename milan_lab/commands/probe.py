"""``milan-lab probe CHECKPOINT``: any registered probes of the probe suite (``evaluation.suite.PROBES``; default
all) of a frozen encoder at declared sizes, beside a random-init encoder's."""
from __future__ import annotations

import argparse

from milan_lab.commands.common import (context_options, encoder_arguments, measuring_options, nonnegative_int, positive_int,
                                       progress, report)


def size_item(text: str) -> tuple[str, int]:
    """argparse type: ``KEY=N`` with N an integer >= 1 (the key is checked against the suite's sizes before any
    work, by ``probe_eval``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=N (e.g. eval_train=256)")
    try:
        return key, positive_int(value)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{key}: {e}") from None


def add_parsers(sub) -> None:
    s = sub.add_parser("probe", help="the registered probes (kNN, linear, dense, attention) of an encoder at "
                                     "declared sizes, against a random-init encoder")
    encoder_arguments(s)
    s.add_argument("--probes", nargs="+", metavar="NAME", help="probes to run (default: every registered probe)")
    s.add_argument("--size", action="append", type=size_item, default=[], metavar="KEY=N",
                   help="a probe size (scenes, probe steps), repeatable: eval_train, eval_val, seg_train, seg_val, "
                        "seg_steps, attention_scenes")
    s.add_argument("--variant", default="dense", choices=["dense", "sparse"], help="offline scene kind")
    s.add_argument("--seed", type=nonnegative_int, default=0, help="draws the scenes and the random-init encoder")
    context_options(s)
    measuring_options(s, run)


def run(args) -> None:
    from milan_lab.evaluation.probes import format_probes, probe_eval
    report(args, "probe", lambda: probe_eval(args.checkpoint, args.preset, args.probes, dict(args.size), seed=args.seed,
                                             variant=args.variant, baseline=not args.no_baseline, progress=progress(args)),
           format_probes, seeds=(args.seed,))
