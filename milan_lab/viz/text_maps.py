"""Text-prompt maps for the explorer: where a prompt is in the image, and the words a teacher knows.

Two kinds of map compare a prompt's text embedding with patch features:

* :func:`dense_text_maps`, MaskCLIP's dense features of the teacher (:meth:`Teacher.dense_features`):
  bright on the object the prompt names. On the offline scenes it localises the named object
  (AUROC about 0.6-0.9 by prompt; benchmarks/text_maps.py), so the explorer shows it as "where";
* :func:`milan_lab.viz.maps.text_similarity` on the target tokens (``ln_post @ proj`` of the last
  block's output, MILAN's targets) or on the student's prediction of them: these do not localise
  (they are darkest on the object: AUROC below 0.5), a known property of CLIP's last-block patch
  tokens; side by side they show how much of the targets' text content the prediction keeps.
"""
from __future__ import annotations

import torch

from milan_lab.data.tokenizer import known_words, unknown_words
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
