"""Lesson 01 exercises: Bahdanau's additive score, the attention-weighted context, the loss, greedy decoding."""

from __future__ import annotations

import torch

from course_lib.nn.greedy import greedy_decode as nn_greedy_decode
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "01_seq2seq_attention"
SETUP = """\
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def additive_scores(
    query: torch.Tensor, keys: torch.Tensor, w_query: torch.Tensor, w_key: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """e_j = v . tanh(W_q q + W_k k_j): query (b, dq), keys (b, s, dk), w_query (dq, h), w_key (dk, h), v (h,)
    -> (b, s)."""
    hidden = torch.tanh((query @ w_query)[:, None, :] + keys @ w_key)  # (b, s, h)
    return hidden @ v


def attention_context(
    scores: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha = softmax over real source positions; context = sum_j alpha_j k_j -> (context (b, dk), alpha (b, s))."""
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return torch.einsum("bs,bsd->bd", weights, keys), weights


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Mean of -log p(target) over the positions whose target is not padding: logits (b, t, V), targets (b, t)."""
    log_probs = logits.log_softmax(dim=-1)
    picked = log_probs.gather(-1, targets[..., None]).squeeze(-1)  # (b, t)
    real = targets != pad_id
    return -(picked * real).sum() / real.sum()


def greedy_decode(step, hidden: torch.Tensor, bos_id: int, eos_id: int, max_len: int, pad_id: int = 0) -> torch.Tensor:
    """Feed each step's arg-max back in, from BOS; after a row's EOS it gets pad_id; stop when all rows ended.

    step(tokens (b,), hidden) -> (logits (b, V), hidden). Returns (b, steps taken) int64, steps <= max_len.
    """
    return nn_greedy_decode(
        step, hidden, batch=hidden.shape[0], bos_id=bos_id, eos_id=eos_id, max_len=max_len, pad_id=pad_id
    )


# --- cases ----------------------------------------------------------------------------------------


def _score_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return [
        Case("batch 2, 5 source words, dq=dk=h=4", (randn(2, 4), randn(2, 5, 4), randn(4, 4), randn(4, 4), randn(4))),
        Case(
            "dq, dk and h all differ (catches a swapped W)",
            (randn(3, 6), randn(3, 7, 8), randn(6, 5), randn(8, 5), randn(5)),
        ),
        Case(
            "large inputs (the tanh must saturate, not explode)",
            (randn(2, 3) * 10, randn(2, 4, 3) * 10, randn(3, 2), randn(3, 2), randn(2)),
        ),
    ]


def _context_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    lengths = torch.tensor([5, 3, 1])
    ragged = torch.arange(5)[None, :] < lengths[:, None]
    return [
        Case("no padding", (randn(2, 4), randn(2, 4, 6), torch.ones(2, 4, dtype=torch.bool))),
        Case("padded rows of length 5, 3, 1 (mask before the softmax)", (randn(3, 5) * 3, randn(3, 5, 2), ragged)),
        Case(
            "large scores (overflow without a stable softmax)",
            (randn(2, 6) * 200, randn(2, 6, 3), torch.ones(2, 6, dtype=torch.bool)),
        ),
    ]


def _loss_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    targets = torch.randint(1, 7, (3, 5), generator=g)
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    other_pad = torch.randint(0, 6, (2, 4), generator=g)
    other_pad[1, 2:] = 6
    return [
        Case("no padding", (randn(2, 4, 7), torch.randint(1, 7, (2, 4), generator=g))),
        Case("padded targets (padding must not count in the mean)", (randn(3, 5, 7) * 2, targets)),
        Case("pad_id=6", (randn(2, 4, 7), other_pad), {"pad_id": 6}),
    ]


def _decode_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "all rows end at the same step",
            (),
            {"init_seed": draw_seed(g), "batch": 3, "vocab": 6, "max_len": 12, "eos_from": 4, "eos_to": 5},
        ),
        Case(
            "rows end at different steps (pad after each row's EOS, stop when all ended)",
            (),
            {"init_seed": draw_seed(g), "batch": 8, "vocab": 7, "max_len": 20, "eos_from": 1, "eos_to": 15},
        ),
        Case(
            "no EOS within max_len=5 (stop at max_len)",
            (),
            {"init_seed": draw_seed(g), "batch": 3, "vocab": 9, "max_len": 5, "eos_from": 6, "eos_to": 9},
        ),
    ]


def _run_greedy_decode(fn, case: Case):
    """A scripted decoder as `step`: seeded logits per row and step, shifted by the token fed in; BOS 1, EOS 2, pad 0.

    Each row's EOS wins at a step drawn per row (after max_len in the last case), so rows end at
    different times; the shift by the fed token makes a loop that feeds the wrong token diverge.
    """
    k = case.kwargs
    g = torch.Generator().manual_seed(k["init_seed"])
    batch, vocab, max_len = k["batch"], k["vocab"], k["max_len"]
    script = torch.randn(batch, max_len, vocab, generator=g) * 2  # (b, step, V)
    by_token = torch.randn(vocab, vocab, generator=g) * 1.5  # logits shift for each fed token
    script[..., 2] = -50.0
    script[..., 0] = -50.0  # the model never predicts padding
    eos_step = torch.randint(k["eos_from"], k["eos_to"], (batch,), generator=g)
    for row, t in enumerate(eos_step.tolist()):
        if t < max_len:
            script[row, t, 2] = 50.0

    def step(tokens: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if tokens.dtype != torch.long or tokens.shape != (batch,):
            raise ValueError(f"step expects tokens of shape ({batch},) int64, got {tuple(tokens.shape)} {tokens.dtype}")
        t = int(hidden[0, 0])
        if t >= max_len:
            raise RuntimeError(f"step was called more than max_len={max_len} times")
        return script[:, t] + by_token[tokens], hidden + 1

    return fn(step, torch.zeros(batch, 1), 1, 2, max_len)


EXERCISES = [
    Exercise(additive_scores, NOTEBOOK, 2.0, _score_cases, setup=SETUP),
    Exercise(attention_context, NOTEBOOK, 2.0, _context_cases, setup=SETUP),
    Exercise(
        sequence_loss,
        NOTEBOOK,
        2.0,
        _loss_cases,
        setup=SETUP,
        forbidden=("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"),
    ),
    Exercise(greedy_decode, NOTEBOOK, 2.0, _decode_cases, call=_run_greedy_decode, setup=SETUP),
]
