"""``milan-lab``: thin subcommands over milan_lab's functions, one module each in ``milan_lab.commands``.

    milan-lab info PRESET [--json]
    milan-lab pretrain | finetune | linear-probe [--preset P] [--config YAML] [key=value ...]
    milan-lab submit --nodes N --gpus-per-node G [--partition P --time 72:00:00 ...] pretrain|finetune|linear-probe [key=value ...]
    milan-lab knn CHECKPOINT
    milan-lab compare RUN_A RUN_B [RUN ...] [--out DIR] | embed CHECKPOINT [--n 512] [--method pca|tsne] [--out FILE.png]
    milan-lab teacher train [key=value ...] | teacher eval [--teacher NAME] [--json]
    milan-lab bench [PRESET] [--json]
    milan-lab app [--host 127.0.0.1] [--port 7860]
    milan-lab list-models | predict MODEL IMAGE... | test MODEL --data DIR | export CKPT --timm OUT

This module builds the top-level parser from the command modules and turns a user error into one line
(``milan-lab CMD: error: ...``, exit 2).
"""
from __future__ import annotations

import argparse
import sys

from milan_lab.commands import COMMANDS
# the parser and the argparse types, importable from here as before (the benchmark scripts use them)
from milan_lab.commands.common import (OneLineParser, SubcommandParser, device_name, nonnegative_int, output_file,
                                       output_folder, positive_int, preset_name)
from milan_lab.errors import DownloadError, MilanLabError

__all__ = ["OneLineParser", "build_parser", "device_name", "main", "nonnegative_int", "output_file", "output_folder",
           "positive_int", "preset_name"]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="milan-lab", description="MILAN research workbench")
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)
    for command in COMMANDS:
        command.add_parsers(sub)
    return p


# what each command module says of the local file that replaces a download (DownloadError.option, "pretrained"):
# the option that takes it (LOCAL_FILE_OPTIONS) or, for commands that build the teacher from a checkpoint's
# config, the words that say so (CHECKPOINT_TEACHER_WORDS); each keyed by command name
LOCAL_FILE_OPTIONS = {k: v for m in COMMANDS for k, v in getattr(m, "LOCAL_FILE_OPTIONS", {}).items()}
CHECKPOINT_TEACHER_WORDS = {k: v for m in COMMANDS for k, v in getattr(m, "CHECKPOINT_TEACHER_WORDS", {}).items()}


def _in_cli_words(error: MilanLabError, command: str) -> str:
    """The error's message, with an API argument it names spelled as this command's option."""
    if isinstance(error, DownloadError) and error.option == "pretrained" and command in LOCAL_FILE_OPTIONS:
        return error.naming(LOCAL_FILE_OPTIONS[command])
    if isinstance(error, DownloadError) and error.option == "pretrained" and command in CHECKPOINT_TEACHER_WORDS:
        return f"{error.problem}; {CHECKPOINT_TEACHER_WORDS[command]}"
    return str(error)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args) or 0
    except MilanLabError as e:  # bad input: one clear line; anything else is a bug and keeps its traceback
        print(f"milan-lab {args.command}: error: {_in_cli_words(e, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"milan-lab {args.command}: interrupted (a training run resumes from its last checkpoint)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
