"""Lesson 04 exercises: byte-pair encoding by hand (the most frequent pair, one merge, encoding, training)."""

from __future__ import annotations

import torch

from course_lib.tokenizers.bpe import count_pairs, merge_pair
from course_tools.grading.spec import Case, Exercise

NOTEBOOK = "04_tokenization"
SETUP = """\
from collections import Counter
import torch
"""


# --- references ---------------------------------------------------------------------------------


def most_frequent_pair(ids: list[int]) -> tuple[int, int]:
    """The adjacent pair that occurs most often; ties go to the smallest pair. At least two ids."""
    counts = count_pairs(ids)
    return min(counts, key=lambda p: (-counts[p], p))


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Every non-overlapping occurrence of `pair`, scanning left to right, replaced by `new_id`."""
    return merge_pair(ids, pair, new_id)


def train_merges(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Learn merges on the UTF-8 bytes of `text` (no chunking): merge i creates id 256 + i."""
    ids, merges = list(text.encode("utf-8")), []
    for i in range(num_merges):
        if len(ids) < 2:
            break
        pair = most_frequent_pair(ids)
        merges.append(pair)
        ids = merge(ids, pair, 256 + i)
    return merges


def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Encode UTF-8 bytes by applying the merges that apply, always the earliest-learned (lowest rank) first."""
    ranks = {tuple(p): i for i, p in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, len(ranks)))
        if pair not in ranks:
            break
        ids = merge(ids, pair, 256 + ranks[pair])
    return ids


# --- cases ----------------------------------------------------------------------------------------

WORDS = ["the", "then", "there", "and", "an", "to", "be", "or", "not", "thee", "thou", "lord", "love", "é", "莎"]


def _text(g: torch.Generator, n: int) -> str:
    picks = torch.randint(0, len(WORDS), (n,), generator=g).tolist()
    return " ".join(WORDS[i] for i in picks)


def _ids(g: torch.Generator, n: int, high: int) -> list[int]:
    return torch.randint(0, high, (n,), generator=g).tolist()


def _pair_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("bytes of a sentence", (list(_text(g, 12).encode()),)),
        Case("a tie (the smaller pair wins)", ([5, 6, 1, 2, 9, 5, 6, 1, 2],)),
        Case("overlaps: 7 7 7 7 counts (7, 7) three times", ([3, 7, 7, 7, 7, 3, 4, 3, 4],)),
        Case("random ids", (_ids(g, 40, 5),)),
    ]


def _merge_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("two occurrences", ([1, 2, 3, 1, 2], (1, 2), 256)),
        Case("overlapping run: 1 1 1 -> 9 1", ([1, 1, 1], (1, 1), 9)),
        Case("pair at the very end", ([4, 5, 6, 7], (6, 7), 300)),
        Case("random ids", (_ids(g, 50, 4), (1, 2), 256)),
        Case("no occurrence", ([1, 3, 1, 3], (3, 3), 256)),
    ]


def _train_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("20 merges on repeated words", (_text(g, 60), 20)),
        Case("10 merges, non-ASCII text", ("naïve café, naïve café, 莎士比亚 莎士比亚", 10)),
        Case("more merges than the text allows", ("abab", 5)),
    ]


def _encode_cases(g: torch.Generator) -> list[Case]:
    trained = train_merges(_text(g, 80), 30)
    return [
        Case("a sentence from the training words", (_text(g, 10), trained)),
        Case("an unseen word and non-ASCII", ("thereupon, é 莎 !", trained)),
        Case(
            "rank order matters (catches merging the most frequent pair of the input)", ("ababc", [(98, 99), (97, 98)])
        ),
        Case("empty text", ("", trained)),
    ]


EXERCISES = [
    Exercise(most_frequent_pair, NOTEBOOK, 1.0, _pair_cases, setup=SETUP),
    Exercise(merge, NOTEBOOK, 1.0, _merge_cases, setup=SETUP),
    Exercise(train_merges, NOTEBOOK, 2.0, _train_cases, setup=SETUP),
    Exercise(bpe_encode, NOTEBOOK, 2.0, _encode_cases, setup=SETUP),
]
