"""Progress bars of the evaluation functions: tqdm on stderr, off unless the caller asks.

The functions default to no bar, so notebooks (and papermill's logs) stay as they are; the CLI
turns them on when stderr is a terminal and ``--quiet`` is not given.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(iterable=None, desc: str = "", enabled: bool = False, total: int | None = None, unit: str = "it"):
    """``tqdm`` over ``iterable`` (or a manual bar of ``total``) that vanishes when done; a no-op
    wrapper when not ``enabled``."""
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not enabled, file=sys.stderr, leave=False)
