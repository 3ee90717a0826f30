"""``milan-lab predict MODEL IMAGE...``: top-5 classes for images."""
from __future__ import annotations

import sys

# how this module's commands take the local file that replaces a download (DownloadError.option "pretrained"; cli reads it)
LOCAL_FILE_OPTIONS = {"predict": "--pretrained PATH"}


def add_parsers(sub) -> None:
    s = sub.add_parser("predict", help="top-5 classes for images")
    s.add_argument("model")
    s.add_argument("images", nargs="+")
    s.add_argument("--pretrained", default=None, help="checkpoint path (default: the zoo's)")
    s.set_defaults(run=run)


def run(args) -> int:
    """Every readable image is classified; each unreadable one is named with its reason (exit 1)."""
    from milan_lab.errors import BadImage
    from milan_lab.zoo import get_model, inference_model, known_classes
    model = get_model(args.model, pretrained=args.pretrained or True)
    header = known_classes(model) if isinstance(getattr(model, "num_classes", None), int) else None  # a classifier
    failed = 0
    for path in args.images:
        try:
            result = inference_model(model, path, topk=5)
        except BadImage as e:
            failed += 1
            print(f"milan-lab predict: skipped {path}: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
            continue
        if header:  # once, above the first answer: what the scores range over
            print(header)
            header = None
        print(path)
        for label, cls, score in zip(result["topk_labels"], result["topk_classes"], result["topk_scores"]):
            print(f"  {score:6.3f}  {label:4d}  {cls}")
    if failed:
        print(f"milan-lab predict: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0
