"""Lesson 04: the character-level tokenizer, one id per character of a fixed alphabet (lesson 05's GPT reads
characters)."""

from __future__ import annotations

import torch


class CharTokenizer:
    """Ids are the positions of the characters in the sorted alphabet of the training text."""

    def __init__(self, text: str) -> None:
        if not text:
            raise ValueError("CharTokenizer needs a non-empty text to learn its alphabet from")
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in the alphabet of {self.vocab_size} characters"
            ) from None

    def encode_tensor(self, text: str) -> torch.Tensor:
        """The whole text as int64 ids, fast enough for millions of characters."""
        table = torch.full((max(map(ord, self.chars)) + 1,), -1, dtype=torch.long)
        table[[ord(c) for c in self.chars]] = torch.arange(self.vocab_size)
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        if (codes >= len(table)).any() or (table[codes.clamp(max=len(table) - 1)] < 0).any():
            bad = next(c for c in text if c not in self.stoi)
            raise ValueError(f"character {bad!r} is not in the alphabet of {self.vocab_size} characters")
        return table[codes]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)
