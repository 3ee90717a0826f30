"""Every random number generator a run touches, saved and restored as plain data (weights_only-safe),
so that a resumed run draws what an unbroken one would."""
from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """Every RNG a run touches, as plain tensors and lists (weights_only-safe)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": np_state[0], "pos": int(np_state[2]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def seed_everything(seed: int) -> None:
    """Seed torch's, numpy's and Python's global generators: what a fresh run draws from them (drop path, timm's
    Mixup and RandAugment) then follows from the seed, not from whatever ran before in the process."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from (run seed, step, rank) alone, so that what a step draws
    from it depends on nothing that ran before: paired runs (ablations) and resumed runs draw the same.
    numpy's SeedSequence mixes the three into 32 bits (torch's CPU generator ignores higher seed bits)."""
    mixed = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    return torch.Generator(device).manual_seed(mixed)


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["key"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_python_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state):
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_state_from_plain(d):
    return (d["version"], tuple(d["internal"]), d["gauss"])
