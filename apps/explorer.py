"""The MILAN explorer (Gradio). Run: ``python apps/explorer.py`` or ``milan-lab app``.

Binds 127.0.0.1 unless --host says otherwise; no share link; analytics off; fully offline with
the shipped teacher and model. Layout and wiring live in ``milan_lab.app`` (so the installed
``milan-lab app`` has them too); the handlers are ``milan_lab.viz.panels.Explorer``'s methods.
"""
import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from milan_lab.app import launch  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--teacher", default=None, help="open_clip name or teacher folder (default: shipped)")
    p.add_argument("--teacher-pretrained", default=None, help="open_clip tag or local checkpoint")
    p.add_argument("--checkpoint", default=None, help="MILAN checkpoint (default: shipped offline model)")
    a = p.parse_args()
    launch(a.host, a.port, a.teacher, a.teacher_pretrained, a.checkpoint)
