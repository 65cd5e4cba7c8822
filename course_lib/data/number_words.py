"""Lesson 01: English -> French number words from num2words, with a fixed held-out set of numbers (the task of
lessons 01-03, built by `text.translation`).

"three hundred and seventy-one" -> "trois cent soixante et onze": word reordering, agreement and
irregular forms (soixante-dix, quatre-vingts) give attention something to align.
"""

from __future__ import annotations

import hashlib
import random
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
    """Whether `n` belongs to the test set: a hash of the number, so the split never depends on an RNG.

    Numbers below 100 always train: they hold the irregular words ("seventeen" -> "dix-sept") that
    no model could guess, so the test asks only for new combinations of words it has seen.
    """
    if n < 100:
        return False
    digest = hashlib.sha256(f"number-{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < test_percent


def sample_numbers(count: int, max_number: int, seed: int = 0) -> list[int]:
    """`count` distinct numbers in 0..max_number, sorted: a digit count drawn uniformly, then a number with that
    many digits.

    Drawing the digit count first spreads the sample over every length, so "accuracy by input
    length" has short and long sentences to compare (a uniform draw would give almost only long ones).
    """
    digits = len(str(max_number))
    if count > max_number + 1:
        raise ValueError(f"cannot draw {count} distinct numbers from 0..{max_number}")
    rng = random.Random(seed)
    chosen: set[int] = set()
    while len(chosen) < count:
        d = rng.randint(1, digits)
        low, high = (0 if d == 1 else 10 ** (d - 1)), min(10**d - 1, max_number)
        if low <= high:
            chosen.add(rng.randint(low, high))
    return sorted(chosen)


def translation_pairs(
    max_number: int = 9999, test_percent: int = 10, *, sample: int | None = None, seed: int = 0
) -> dict[str, list[Pair]]:
    """{"train": [...], "test": [...]}; test numbers never appear in train.

    Every number in 0..max_number, or with `sample`, that many numbers from `sample_numbers`
    (the split is still a hash of the number, so a number's side never depends on the sample).
    """
    if max_number < 10:
        raise ValueError(f"max_number must be at least 10, got {max_number}")
    if not 0 < test_percent < 100:
        raise ValueError(f"test_percent must be in 1..99, got {test_percent}")
    numbers = range(max_number + 1) if sample is None else sample_numbers(sample, max_number, seed)
    splits: dict[str, list[Pair]] = {"train": [], "test": []}
    for n in numbers:
        pair = Pair(n, number_words(n, "en"), number_words(n, "fr"))
        splits["test" if is_held_out(n, test_percent) else "train"].append(pair)
    return splits
