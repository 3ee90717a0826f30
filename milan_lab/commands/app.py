"""``milan-lab app [--host 127.0.0.1] [--port 7860]``: the Gradio explorer."""
from __future__ import annotations

# how this module's commands take the local file that replaces a download (DownloadError.option "pretrained"; cli reads it)
LOCAL_FILE_OPTIONS = {"app": "--teacher-pretrained PATH"}


def add_parsers(sub) -> None:
    s = sub.add_parser("app", help="launch the Gradio explorer (127.0.0.1 by default)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--teacher", default=None, help="a shipped teacher (offline-shape, offline-noshape), a folder or an "
                   "open_clip name (default: the shipped shape-aware teacher)")
    s.add_argument("--teacher-pretrained", default=None)
    s.add_argument("--checkpoint", default=None, help="MILAN checkpoint (default: the shipped small model)")
    s.set_defaults(run=run)


def run(args) -> None:
    from milan_lab.app import launch
    launch(host=args.host, port=args.port, teacher=args.teacher, teacher_pretrained=args.teacher_pretrained,
           checkpoint=args.checkpoint)
