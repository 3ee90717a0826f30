"""Text-prompt maps for the explorer: where a prompt is in the image, and the words a teacher knows.

Two kinds of map compare a prompt's text embedding with patch features:

* :func:`dense_text_maps`, MaskCLIP's dense features of the teacher (:meth:`Teacher.dense_features`):
  bright on the object the prompt names. On the offline scenes it localises the named object
  (mean AUROC 0.56-0.86 by prompt form and scene kind; benchmarks/text_maps.py), so the explorer shows it as "where";
* :func:`milan_lab.viz.maps.text_similarity` on the target tokens (``ln_post @ proj`` of the last
  block's output, MILAN's targets) or on the student's prediction of them: these do not localise
  (they are darkest on the object: AUROC below 0.5), a known property of CLIP's last-block patch
  tokens; side by side they show how much of the targets' text content the prediction keeps.
"""
from __future__ import annotations

import numpy as np
import torch

from milan_lab.data.tokenizer import known_words, unknown_words
from milan_lab.viz import maps
from milan_lab.viz.maps import text_similarity


def dense_text_maps(teacher, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Where each prompt is in the image: ``images`` [1, 3, H, W] (the teacher's normalised view),
    ``text`` [P, D_t] prompt embeddings -> [P, L] cosines with the teacher's MaskCLIP features."""
    return text_similarity(teacher.dense_features(images)[0], text)


def vocabulary_note(teacher) -> str | None:
    """One line naming the words a word-level teacher knows (for beside the prompt box), or None
    for an open_clip BPE teacher, which reads any word."""
    words = known_words(getattr(teacher, "tokenizer", None))
    if words is None:
        return None
    return f"This teacher knows {len(words)} words: " + ", ".join(words) + ". Other words are read as unknown."


def unknown_words_note(teacher, prompts: list[str]) -> str:
    """"unknown to this teacher: cat, stripes" for the words of ``prompts`` outside a word-level
    teacher's vocabulary (each word once), else "" (always "" for a BPE teacher)."""
    words = unknown_words(getattr(teacher, "tokenizer", None), prompts)
    return f"unknown to this teacher: {', '.join(words)}" if words else ""


def text_maps_figure(prompts: list[str], sim_where, sim_target, sim_pred) -> np.ndarray:
    """The Reconstruction tab's text maps as an RGB array: one column per prompt; the first row
    "where" (:func:`dense_text_maps`, its own colour bar), then the prompt against the target tokens
    and against the prediction of them (one shared colour bar, so the two compare). Each ``sim_*``
    is [P, L]. Prompts head their columns (wrapped) and rows are named on the left, so no title
    runs into its neighbour."""
    import textwrap

    import matplotlib.pyplot as plt

    from milan_lab.viz.plots import figure_to_array  # it sets the headless backend before pyplot draws
    n = len(prompts)
    fig, axes = plt.subplots(3, n, figsize=(1.4 + 1.75 * n, 5.6), squeeze=False)
    rows = ((sim_where, "where: MaskCLIP\n(teacher)"), (sim_target, "target tokens"), (sim_pred, "predicted tokens"))
    tokens_lo = float(min(sim_target.min(), sim_pred.min()))
    tokens_hi = float(max(sim_target.max(), sim_pred.max()))
    images = []
    for i, (sim, name) in enumerate(rows):
        lo, hi = (float(sim.min()), float(sim.max())) if i == 0 else (tokens_lo, tokens_hi)
        for j, prompt in enumerate(prompts):
            ax = axes[i, j]
            im = ax.imshow(maps.patch_grid(sim[j]), vmin=lo, vmax=hi, cmap="magma")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(textwrap.fill(f"'{prompt}'", 18), fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
        images.append(im)
    fig.colorbar(images[0], ax=axes[0, :], shrink=0.9, label="cosine\n(bright = prompt)")
    fig.colorbar(images[1], ax=axes[1:, :], shrink=0.9, label="cosine similarity\n(bright = closer)")
    return figure_to_array(fig)
