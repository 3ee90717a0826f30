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

    @staticmethod
    def words(text: str) -> list[str]:
        """The words of ``text`` as :meth:`encode` reads them (lower case, commas and full stops dropped)."""
        return text.lower().replace(",", " ").replace(".", " ").split()

    def encode(self, text: str) -> list[int]:
        unk = self.index["<unk>"]
        return [self.index["<start>"], *(self.index.get(w, unk) for w in self.words(text)), self.index["<end>"]]

    @property
    def known_words(self) -> list[str]:
        """The vocabulary without its special tokens (<pad>, <start>, <unk>, <end>)."""
        return [w for w in self.vocab if not (w.startswith("<") and w.endswith(">"))]

    def unknown_words(self, texts: str | list[str]) -> list[str]:
        """The words of ``texts`` outside the vocabulary, each once, in order of appearance: the
        words :meth:`encode` turns into <unk> without a word of warning."""
        texts = [texts] if isinstance(texts, str) else texts
        return list(dict.fromkeys(w for t in texts for w in self.words(t) if w not in self.index))

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


def unknown_words(tokenizer, texts: str | list[str]) -> list[str]:
    """The words of ``texts`` a teacher's tokenizer cannot represent (see
    :meth:`WordTokenizer.unknown_words`); none for open_clip's byte-level BPE, which spells any word."""
    return tokenizer.unknown_words(texts) if isinstance(tokenizer, WordTokenizer) else []


def known_words(tokenizer) -> list[str] | None:
    """The words a word-level tokenizer knows, or None for an open-vocabulary (BPE) one."""
    return tokenizer.known_words if isinstance(tokenizer, WordTokenizer) else None
