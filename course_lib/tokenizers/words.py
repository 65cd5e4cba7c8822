"""Lesson 01: `WordVocab`, words and punctuation as tokens, for the number-word translation of lessons 01-03."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> list[str]:
    """ "quatre-vingt-onze, un" -> ["quatre", "-", "vingt", "-", "onze", ",", "un"]."""
    return _TOKEN.findall(text)


def join_words(tokens: Iterable[str]) -> str:
    """Inverse of `word_tokens` for text whose hyphens join words and whose commas follow one."""
    text = " ".join(tokens)
    return text.replace(" - ", "-").replace(" ,", ",")


class WordVocab:
    """A fixed vocabulary: ids 0-3 are <pad>, <bos>, <eos>, <unk>, then tokens by frequency (ties alphabetical)."""

    def __init__(self, texts: Iterable[str]) -> None:
        counts = Counter(tok for text in texts for tok in word_tokens(text))
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        self.itos = [PAD, BOS, EOS, UNK] + ordered
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.stoi.get(t, self.unk_id) for t in word_tokens(text)]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text, stopping at <eos> and skipping <pad>/<bos>."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return join_words(out)

    def batch(self, texts: list[str], *, bos: bool = False, eos: bool = False) -> torch.Tensor:
        """(len(texts), longest) int64 ids, right-padded with <pad>."""
        rows = [self.encode(t, bos=bos, eos=eos) for t in texts]
        out = torch.full((len(rows), max(map(len, rows))), self.pad_id, dtype=torch.long)
        for r, ids in enumerate(rows):
            out[r, : len(ids)] = torch.tensor(ids)
        return out
