"""A word-level tokenizer for the offline captions.

Written by hand because open_clip's tokenizers are BPE over a 49k vocabulary (or a Hugging Face
tokenizer, a download): for captions built from ~40 known words, a 49k-row token embedding
would be most of the teacher's size. It follows open_clip's conventions so the text tower of
``open_clip.CLIP`` works unchanged: id 0 pads, every text starts with <start> and ends with
<end>, and <end> has the largest id (the text tower pools at ``argmax`` of the ids).
"""
from __future__ import annotations

import torch

from milan_lab.data.scenes import ATTRIBUTES

SPECIALS_HEAD = ("<pad>", "<start>", "<unk>")


def caption_vocab() -> list[str]:
    words = {"a", "at", "the", "shape", "of", "photo"}
    for values in ATTRIBUTES.values():
        for value in values:
            words.update(value.split())
    return [*SPECIALS_HEAD, *sorted(words), "<end>"]


class WordTokenizer:
    def __init__(self, vocab: list[str] | None = None, context_length: int = 12):
        self.vocab = list(vocab or caption_vocab())
        if self.vocab[0] != "<pad>" or self.vocab[-1] != "<end>":
            raise ValueError("vocab must start with <pad> and end with <end>")
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.context_length = context_length

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        unk = self.index["<unk>"]
        words = text.lower().replace(",", " ").replace(".", " ").split()
        return [self.index["<start>"], *(self.index.get(w, unk) for w in words), self.index["<end>"]]

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        """Token ids [N, context_length]; over-long texts are cut but keep their <end>."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        n = context_length or self.context_length
        out = torch.zeros(len(texts), n, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.encode(text)
            if len(ids) > n:
                ids = ids[: n - 1] + [self.index["<end>"]]
            out[i, : len(ids)] = torch.tensor(ids)
        return out
