"""The device a run asks for, checked with the rest of the config (before any data or model is built)."""
from __future__ import annotations

import re

from milan_lab.errors import ConfigError


def check_device(name: str) -> None:
    """A device string torch accepts and this machine has (CUDA asked for but absent is refused).

    It sits in the config, the bottom layer, although it asks torch: torch is imported here only when a
    CUDA device is named, that is for a run that imports torch a moment later anyway, so that the refusal
    still comes first, in one line; a check of ``auto``, ``cpu`` or ``mps`` (every config check the CLI's
    ``--help`` and a typo's error make) imports nothing (tests/test_registries.py asserts it)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(name)):
        raise ConfigError(f"bad value for 'device': {name!r}; expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but CUDA is not available on this machine; use device=cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
