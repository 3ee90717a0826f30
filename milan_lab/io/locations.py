"""Places milan-lab reads but never writes: the installed package (the shipped models, their probes,
the teacher) and the zoo's download cache. What a command derives from a file in them (a dense
probe trained for a shipped model) goes under ``outputs/`` instead, so that measuring leaves the
install as it was installed (and a read-only install works).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ASSETS = PACKAGE_DIR / "assets"  # the shipped models, their probes and the offline teachers
OUTPUTS = Path("outputs")  # relative to the working folder, as every run's output_dir is


def cache_dir() -> Path:
    """Where the zoo downloads weights (``MILAN_LAB_CACHE``, default ``~/.cache/milan_lab``)."""
    return Path(os.environ.get("MILAN_LAB_CACHE", Path.home() / ".cache" / "milan_lab"))


def is_managed(path: str | Path) -> bool:
    """Whether ``path`` lies in the installed package or the zoo's download cache."""
    path = Path(path).resolve()
    return any(path.is_relative_to(folder.resolve()) for folder in (PACKAGE_DIR, cache_dir()))
