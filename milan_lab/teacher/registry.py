"""Registers milan-lab's open_clip model configs (``milan-clip-tiny``) with open_clip."""
from __future__ import annotations

from pathlib import Path

import open_clip


ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_TEACHER = ASSETS / "teacher"
_done = False


def register() -> None:
    global _done
    if not _done:
        open_clip.add_model_config(ASSETS / "model_configs")
        _done = True
