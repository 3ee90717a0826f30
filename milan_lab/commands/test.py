"""``milan-lab test MODEL --data DIR``: top-1/top-5 on an ImageNet-style folder."""
from __future__ import annotations

import json
import sys

from milan_lab.commands.common import positive_int

# how this module's commands take the local file that replaces a download (DownloadError.option "pretrained"; cli reads it)
LOCAL_FILE_OPTIONS = {"test": "--pretrained PATH"}


def add_parsers(sub) -> None:
    s = sub.add_parser("test", help="top-1/top-5 on an ImageNet-style folder")
    s.add_argument("model")
    s.add_argument("--data", required=True)
    s.add_argument("--pretrained", default=None)
    s.add_argument("--batch-size", type=positive_int, default=64)
    s.set_defaults(run=run)


def run(args) -> int:
    """Exit 1 when a file of the folder could not be read (each is named on stderr with its reason)."""
    from milan_lab.zoo import evaluate_folder, get_model
    model = get_model(args.model, pretrained=args.pretrained or True)
    result = evaluate_folder(model, args.data, args.batch_size)
    print(json.dumps(result, indent=1))
    for path, reason in result["skipped_files"].items():
        print(f"milan-lab test: skipped {path}: {reason}", file=sys.stderr)
    return 1 if result["skipped"] else 0
