"""Lesson 06 exercises: top-k and nucleus filtering, a beam-search step, attention with a KV cache, distinct-n."""

from __future__ import annotations

import math

import torch

from course_lib.grading.spec import Case, Exercise
from course_lib.nn.attention import causal_mask
from course_lib.text import decoding

NOTEBOOK = "06_decoding"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """logits (b, V): keep the k largest of each row (and any tied with the k-th), set the rest to -inf."""
    return decoding.top_k_filter(logits, k)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """logits (b, V): keep the most likely tokens, best first, until their total probability reaches p; the rest
    -inf."""
    return decoding.top_p_filter(logits, p)


def beam_step(
    scores: torch.Tensor, log_probs: torch.Tensor, beams: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """scores (n,) of n beams, log_probs (n, V) of their next tokens -> the `beams` best extensions, best first:
    (their scores (beams,), the beam each extends (beams,), the token it adds (beams,))."""
    return decoding.beam_step(scores, log_probs, beams)


def cached_attention(
    q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal attention of s new tokens over the cached and new keys: q, k_new, v_new (b, h, s, d), caches (b, h, c, d)
    -> (output (b, h, s, d), keys (b, h, c + s, d), values (b, h, c + s, d)); new token i sees keys 0 .. c + i."""
    k = torch.cat([k_cache, k_new], dim=2)
    v = torch.cat([v_cache, v_new], dim=2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~causal_mask(q.shape[2], k.shape[2], device=q.device), float("-inf"))
    return scores.softmax(dim=-1) @ v, k, v


def distinct_n(tokens: list[int], n: int) -> float:
    """Number of distinct n-grams divided by the number of n-grams (0.0 if the sequence is shorter than n)."""
    return decoding.distinct_n(tokens, n)


# --- cases ----------------------------------------------------------------------------------------


def _top_k_cases(g: torch.Generator) -> list[Case]:
    ties = torch.tensor([[1.0, 3.0, 3.0, 0.0, 2.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    return [
        Case("8 rows of 20, k 5", (torch.randn(8, 20, generator=g) * 2, 5)),
        Case("k 1 (greedy)", (torch.randn(4, 9, generator=g), 1)),
        Case("k larger than the vocabulary keeps everything", (torch.randn(3, 6, generator=g), 10)),
        Case("ties with the k-th are kept", (ties, 2)),
    ]


def _top_p_cases(g: torch.Generator) -> list[Case]:
    peaked = torch.tensor([[6.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    return [
        Case("p 0.9 on 6 rows of 30", (torch.randn(6, 30, generator=g) * 2, 0.9)),
        Case("p 0.5", (torch.randn(6, 12, generator=g) * 3, 0.5)),
        Case("tiny p keeps the top token", (torch.randn(3, 8, generator=g), 1e-4)),
        Case("p 1 keeps everything", (torch.randn(2, 7, generator=g), 1.0)),
        Case("a peaked row: the top token alone reaches p", (peaked, 0.9)),
        Case(
            "logits in shuffled order (catches a result left in sorted order)",
            (torch.randn(5, 10, generator=g)[:, torch.randperm(10, generator=g)] * 2, 0.8),
        ),
    ]


def _beam_cases(g: torch.Generator) -> list[Case]:
    def log_probs(n: int, v: int) -> torch.Tensor:
        return (torch.randn(n, v, generator=g) * 2).log_softmax(-1)

    return [
        Case("3 beams over 10 tokens", (-torch.rand(3, generator=g) * 5, log_probs(3, 10), 3)),
        Case("a single start beam grows to 4", (torch.zeros(1), log_probs(1, 12), 4)),
        Case(
            "the best beam's extensions can all win (catches top-1 per beam)",
            (torch.tensor([0.0, -30.0, -30.0]), log_probs(3, 8), 3),
        ),
    ]


def _run_beam(fn, case: Case):
    scores, parent, token = fn(*case.args)
    return scores, parent.long(), token.long()


def _cache_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return [
        Case(
            "one new token after 5 cached",
            (randn(2, 2, 1, 4), randn(2, 2, 1, 4), randn(2, 2, 1, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4)),
        ),
        Case(
            "3 new tokens after 4 cached (catches a missing or misaligned mask)",
            (randn(1, 3, 3, 8), randn(1, 3, 3, 8), randn(1, 3, 3, 8), randn(1, 3, 4, 8), randn(1, 3, 4, 8)),
        ),
        Case(
            "an empty cache",
            (randn(2, 1, 4, 6), randn(2, 1, 4, 6), randn(2, 1, 4, 6), torch.zeros(2, 1, 0, 6), torch.zeros(2, 1, 0, 6)),
        ),
    ]


def _distinct_cases(g: torch.Generator) -> list[Case]:
    loop = [1, 2, 3] * 5
    return [
        Case("random tokens, bigrams", (torch.randint(0, 5, (40,), generator=g).tolist(), 2)),
        Case("a loop, trigrams", (loop, 3)),
        Case("unigrams", ([4, 4, 4, 7], 1)),
        Case("shorter than n", ([1, 2], 3)),
    ]


def _run_distinct(fn, case: Case):
    return float(fn(list(case.args[0]), case.args[1]))


EXERCISES = [
    Exercise("top_k_filter", NOTEBOOK, "top_k_filter", 1.0, top_k_filter, _top_k_cases, setup=SETUP),
    Exercise("top_p_filter", NOTEBOOK, "top_p_filter", 2.0, top_p_filter, _top_p_cases, setup=SETUP),
    Exercise("beam_step", NOTEBOOK, "beam_step", 2.0, beam_step, _beam_cases, call=_run_beam, setup=SETUP),
    Exercise(
        "cached_attention",
        NOTEBOOK,
        "cached_attention",
        2.0,
        cached_attention,
        _cache_cases,
        setup=SETUP,
        forbidden=("scaled_dot_product_attention", "MultiheadAttention"),
    ),
    Exercise("distinct_n", NOTEBOOK, "distinct_n", 1.0, distinct_n, _distinct_cases, call=_run_distinct, setup=SETUP),
]
