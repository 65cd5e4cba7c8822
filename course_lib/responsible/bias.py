"""Lesson 18: an association a language model learned from its corpus, measured with intervals: the share of
male pronouns among the gendered pronouns of a text, in the corpus and in the model's samples, with a
bootstrap over texts.
"""

from __future__ import annotations

import re

import torch

MALE = ("he", "him", "his", "himself")
FEMALE = ("she", "her", "hers", "herself")
_WORD = re.compile(r"[a-z]+")


def pronoun_counts(texts: list[str]) -> torch.Tensor:
    """(n, 2) int64: each text's male and female pronouns, counted as whole lower-cased words."""
    rows = []
    for text in texts:
        words = _WORD.findall(text.lower())
        rows.append([sum(w in MALE for w in words), sum(w in FEMALE for w in words)])
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 2)


def male_share(counts: torch.Tensor) -> float:
    """Male pronouns over all gendered pronouns, pooled over the texts of (n, 2) counts."""
    total = counts.sum(0)
    if total.sum() == 0:
        raise ValueError("no gendered pronoun in any text: the share is undefined")
    return (total[0] / total.sum()).item()


def bootstrap_shares(counts: torch.Tensor, resamples: int, generator: torch.Generator) -> torch.Tensor:
    """`male_share` of `resamples` resamples of the texts (rows drawn with replacement): (resamples,); a resample
    without any gendered pronoun counts 0."""
    n = len(counts)
    picks = torch.randint(n, (resamples, n), generator=generator)
    totals = counts[picks].sum(1).double()  # (resamples, 2)
    return (totals[:, 0] / totals.sum(1).clamp(min=1)).float()


def paired_bootstrap_difference(
    counts_a: torch.Tensor, counts_b: torch.Tensor, resamples: int, generator: torch.Generator
) -> torch.Tensor:
    """male_share(a) - male_share(b) over `resamples` resamples of the rows, the same rows for both: texts a[i] and
    b[i] share a prompt, so a resample keeps the pairs together. -> (resamples,)."""
    if counts_a.shape != counts_b.shape:
        raise ValueError(
            f"paired counts must have the same shape, got {tuple(counts_a.shape)} and {tuple(counts_b.shape)}"
        )
    picks = torch.randint(len(counts_a), (resamples, len(counts_a)), generator=generator)
    totals_a, totals_b = counts_a[picks].sum(1).double(), counts_b[picks].sum(1).double()  # (resamples, 2) each
    share_a = totals_a[:, 0] / totals_a.sum(1).clamp(min=1)
    share_b = totals_b[:, 0] / totals_b.sum(1).clamp(min=1)
    return (share_a - share_b).float()


def percentile_interval(values: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The central `level` share of `values`: (low, high) quantiles."""
    tail = (1 - level) / 2
    low, high = torch.quantile(values.double(), torch.tensor([tail, 1 - tail], dtype=torch.double))
    return low.item(), high.item()


def word_rates(texts: list[str], words: tuple[str, ...]) -> list[float]:
    """How often each of `words` occurs per 10,000 words of `texts` (lower-cased, whole words)."""
    counts = dict.fromkeys(words, 0)
    total = 0
    for text in texts:
        found = _WORD.findall(text.lower())
        total += len(found)
        for w in found:
            if w in counts:
                counts[w] += 1
    return [1e4 * counts[w] / max(total, 1) for w in words]
