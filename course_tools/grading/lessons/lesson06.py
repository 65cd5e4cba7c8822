"""Lesson 06 exercises: a repetition penalty and min-p filtering (variations on the lesson's top-k and top-p), a whole
beam search, attention with a KV cache, distinct-n."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.nn.attention import causal_mask
from course_lib.text import decoding
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "06_decoding"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al. 2019): logits (b, V) of the tokens in previous (b, n) are divided by `penalty`
    where positive and multiplied by it where negative; a token counts once however often it occurred."""
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(1, previous, True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def min_p_filter(logits: torch.Tensor, p_base: float) -> torch.Tensor:
    """Min-p (Nguyen et al. 2024): keep the tokens whose probability is at least p_base times the row's largest
    probability; the rest -inf."""
    probs = logits.softmax(dim=-1)
    keep = probs >= p_base * probs.amax(dim=-1, keepdim=True)
    return logits.masked_fill(~keep, float("-inf"))


def beam_search(
    next_log_probs: Callable[[torch.Tensor], torch.Tensor], prompt: torch.Tensor, steps: int, beams: int
) -> tuple[torch.Tensor, float]:
    """The best of `beams` beams after `steps` tokens: prompt (t,) -> (tokens (t + steps,), total log p of the new
    tokens). `next_log_probs(sequences (n, t'))` -> (n, V) log-probabilities of each sequence's next token."""
    sequences, scores = prompt[None], torch.zeros(1)
    for _ in range(steps):
        log_probs = next_log_probs(sequences)
        scores, parent, token = decoding.beam_step(scores, log_probs, min(beams, log_probs.numel()))
        sequences = torch.cat([sequences[parent], token[:, None]], dim=1)
    return sequences[0], float(scores[0])


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


def _penalty_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "4 rows of 12, 5 previous tokens each, penalty 1.3 (catches dividing negative logits)",
            (torch.randn(4, 12, generator=g) * 2, torch.randint(0, 12, (4, 5), generator=g), 1.3),
        ),
        Case(
            "repeated tokens count once (catches penalising twice)",
            (torch.randn(2, 6, generator=g) + 1.0, torch.tensor([[1, 1, 1], [4, 4, 2]]), 2.0),
        ),
        Case(
            "penalty 1 changes nothing", (torch.randn(3, 7, generator=g), torch.randint(0, 7, (3, 4), generator=g), 1.0)
        ),
    ]


def _min_p_cases(g: torch.Generator) -> list[Case]:
    peaked = torch.tensor([[6.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, -1.0, -9.0]])
    return [
        Case("p_base 0.1 on 6 rows of 30", (torch.randn(6, 30, generator=g) * 2, 0.1)),
        Case("p_base 0.5 (catches comparing with p_base alone)", (torch.randn(5, 12, generator=g) * 3, 0.5)),
        Case("a peaked row keeps one token, a flat one several", (peaked, 0.2)),
        Case("p_base 0 keeps everything", (torch.randn(2, 7, generator=g), 0.0)),
    ]


def _beam_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("vocabulary 6, 3 beams, 5 steps", (torch.tensor([1, 4]), 5, 3), {"table_seed": draw_seed(g), "vocab": 6}),
        Case(
            "vocabulary 9, 4 beams, 8 steps (catches greedy, or scores not summed)",
            (torch.tensor([0]), 8, 4),
            {"table_seed": draw_seed(g), "vocab": 9},
        ),
        Case("1 beam is greedy", (torch.tensor([2, 2, 3]), 6, 1), {"table_seed": draw_seed(g), "vocab": 5}),
        Case(
            "more beams than candidates at first", (torch.tensor([3]), 4, 12), {"table_seed": draw_seed(g), "vocab": 5}
        ),
    ]


def _run_beam(fn, case: Case):
    """The model: a fixed random table of log p(next | last two tokens), peaked enough that beams disagree."""
    prompt, steps, beams = case.args
    vocab = case.kwargs["vocab"]
    table = torch.randn(vocab, vocab, vocab, generator=torch.Generator().manual_seed(case.kwargs["table_seed"])) * 2.5
    table = table.log_softmax(dim=-1)

    def next_log_probs(sequences: torch.Tensor) -> torch.Tensor:
        before = sequences[:, -2] if sequences.shape[1] > 1 else sequences[:, -1]
        return table[before, sequences[:, -1]].clone()

    tokens, log_p = fn(next_log_probs, prompt.clone(), steps, beams)
    return torch.as_tensor(tokens).long(), float(log_p)


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
    Exercise(repetition_penalty, NOTEBOOK, 1.0, _penalty_cases, setup=SETUP),
    Exercise(min_p_filter, NOTEBOOK, 2.0, _min_p_cases, setup=SETUP),
    Exercise(beam_search, NOTEBOOK, 3.0, _beam_cases, call=_run_beam, setup=SETUP),
    Exercise(
        cached_attention,
        NOTEBOOK,
        2.0,
        _cache_cases,
        setup=SETUP,
        forbidden=("scaled_dot_product_attention", "MultiheadAttention"),
    ),
    Exercise(distinct_n, NOTEBOOK, 1.0, _distinct_cases, call=_run_distinct, setup=SETUP),
]
