"""The quick linear probe: a linear classifier trained on cached features (monitoring and studies).

The full linear-probe recipe (LARS, 100 epochs, augmentation) is ``jobs/linear.py``; this one trains
on features extracted once, full batch, in seconds on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def quick_linear_probe(train, val, num_classes: int, steps: int = 300, lr: float = 0.05, seed: int = 0) -> float:
    """Full-batch training of BatchNorm(affine=False) + linear on cached features -> val top-1.
    ``train``, ``val``: (features [N, D], labels [N]) on the CPU; ``num_classes``: the dataset's, not the
    largest label seen (a class absent from a small train split still gets its logit)."""
    (xf, y), (vf, vy) = train, val
    mean, std = xf.mean(0), xf.std(0) + 1e-6
    xf, vf = (xf - mean) / std, (vf - mean) / std
    with torch.random.fork_rng(devices=[]):  # the head's init from ``seed``, leaving the caller's RNG stream as it was
        torch.manual_seed(seed)  # (a monitor probe mid-training must not shift the run's stream: resume stays exact)
        head = torch.nn.Linear(xf.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(head(xf), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((head(vf).argmax(1) == vy).float().mean())
