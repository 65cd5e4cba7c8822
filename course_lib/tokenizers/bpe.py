"""Lessons 04 and 07: byte-level byte-pair encoding, as GPT-2 does it, trained from scratch.

Text -> UTF-8 bytes (ids 0..255, so any string round-trips) -> repeatedly merge the most frequent
adjacent pair into a new id. Text is first split into chunks (words with their leading space,
numbers, punctuation runs, whitespace) and merges never cross a chunk boundary, so " the" becomes
one token but "e t" never does. Encoding caches each distinct chunk: a corpus of millions of
characters has only tens of thousands of distinct words.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

import torch

CHUNK = re.compile(r"""'(?:s|t|re|ve|m|ll|d)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


def chunks(text: str) -> list[str]:
    """Split text the way merges may not cross: "Hello, world" -> ["Hello", ",", " world"]."""
    return CHUNK.findall(text)


def count_pairs(ids: Iterable[int]) -> Counter:
    """How often each adjacent pair occurs: [1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}."""
    ids = list(ids)
    return Counter(zip(ids, ids[1:]))


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair`, left to right, by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """`BPETokenizer.train(text, vocab_size)`, then `encode`/`decode`. Ids: 256 bytes, the merges, special tokens."""

    def __init__(self, merges: list[tuple[int, int]], special_tokens: Iterable[str] = ()) -> None:
        self.merges = [tuple(m) for m in merges]
        self.ranks = {pair: i for i, pair in enumerate(self.merges)}
        self.vocab: list[bytes] = [bytes([i]) for i in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.special = {tok: len(self.vocab) + i for i, tok in enumerate(special_tokens)}
        self.special_by_id = {i: tok for tok, i in self.special.items()}
        self._special_re = (
            re.compile("(" + "|".join(map(re.escape, sorted(self.special, key=len, reverse=True))) + ")")
            if self.special
            else None
        )
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + len(self.special)

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Iterable[str] = ()) -> BPETokenizer:
        """Learn vocab_size - 256 - len(special_tokens) merges from `text` (ties broken by the smaller pair)."""
        special_tokens = list(special_tokens)
        n_merges = vocab_size - 256 - len(special_tokens)
        if n_merges < 0:
            raise ValueError(f"vocab_size must be at least {256 + len(special_tokens)} (bytes + special tokens)")
        counts = Counter(chunks(text))
        words = [list(w.encode("utf-8")) for w in counts]
        freq = list(counts.values())
        pair_counts: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += freq[wi]
                where[pair].add(wi)
        merges: list[tuple[int, int]] = []
        for new_id in range(256, 256 + n_merges):
            if not pair_counts:
                break  # every chunk is a single token already
            pair = min(pair_counts, key=lambda p: (-pair_counts[p], p))
            merges.append(pair)
            for wi in list(where[pair]):
                ids = words[wi]
                for p in zip(ids, ids[1:]):  # remove this word's old pairs ...
                    pair_counts[p] -= freq[wi]
                    if pair_counts[p] <= 0:
                        del pair_counts[p]
                    where[p].discard(wi)
                ids = words[wi] = merge_pair(ids, pair, new_id)
                for p in zip(ids, ids[1:]):  # ... and count its new ones
                    pair_counts[p] += freq[wi]
                    where[p].add(wi)
            where.pop(pair, None)
        return cls(merges, special_tokens)

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk.encode("utf-8"))
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if pair not in self.ranks:
                break  # no learned merge applies any more
            ids = merge_pair(ids, pair, 256 + self.ranks[pair])
        self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Text -> ids; special tokens written in the text become their single id."""
        pieces = self._special_re.split(text) if self._special_re else [text]
        out: list[int] = []
        for piece in pieces:
            if piece in self.special:
                out.append(self.special[piece])
            else:
                for chunk in chunks(piece):
                    out.extend(self._encode_chunk(chunk))
        return out

    def encode_tensor(self, text: str) -> torch.Tensor:
        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; a byte sequence cut in the middle of a character decodes to U+FFFD."""
        data = bytearray()
        for i in ids:
            i = int(i)
            if i in self.special_by_id:
                data += self.special_by_id[i].encode("utf-8")
            elif 0 <= i < len(self.vocab):
                data += self.vocab[i]
            else:
                raise ValueError(f"token id {i} is outside the vocabulary of {self.vocab_size}")
        return data.decode("utf-8", errors="replace")

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each id shown on its own (for pictures of how a text was split)."""
        return [self.special_by_id.get(int(i)) or self.vocab[int(i)].decode("utf-8", errors="replace") for i in ids]
