"""English -> French number words from num2words, with a fixed held-out set of numbers.

"three hundred and seventy-one" -> "trois cent soixante et onze": word reordering, agreement and
irregular forms (soixante-dix, quatre-vingts) give attention something to align.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    number: int
    english: str
    french: str


def number_words(n: int, lang: str) -> str:
    """The words for `n` in `lang` ("en" or "fr")."""
    from num2words import num2words

    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    return num2words(n, lang=lang)


def is_held_out(n: int, test_percent: int = 10) -> bool:
    """Whether `n` belongs to the test set: a hash of the number, so the split never depends on an RNG."""
    digest = hashlib.sha256(f"number-{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < test_percent


def translation_pairs(max_number: int = 9999, test_percent: int = 10) -> dict[str, list[Pair]]:
    """{"train": [...], "test": [...]} for every number in 0..max_number; test numbers never appear in train."""
    if max_number < 10:
        raise ValueError(f"max_number must be at least 10, got {max_number}")
    if not 0 < test_percent < 100:
        raise ValueError(f"test_percent must be in 1..99, got {test_percent}")
    splits: dict[str, list[Pair]] = {"train": [], "test": []}
    for n in range(max_number + 1):
        pair = Pair(n, number_words(n, "en"), number_words(n, "fr"))
        splits["test" if is_held_out(n, test_percent) else "train"].append(pair)
    return splits
