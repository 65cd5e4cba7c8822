"""Lesson 02 exercises: scaled dot-product attention, padding and causal masks, heads, and multi-head attention
assembled from a trained module's state dict."""

from __future__ import annotations

import torch

from course_lib.nn.attention import (
    MultiHeadAttention,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from course_lib.nn.attention import causal_mask as _causal_mask
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "02_attention"
SETUP = """\
import math
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references (the library's own, except where the exercise's signature differs) --------------


def causal_mask(t: int) -> torch.Tensor:
    """(t, t) bool, True where query i may see key j, i.e. j <= i."""
    return _causal_mask(t)


def multi_head_attention(
    x_q: torch.Tensor,
    x_kv: torch.Tensor,
    params: dict[str, torch.Tensor],
    heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """A trained `MultiHeadAttention`'s forward from its state dict (q_proj, k_proj, v_proj, out_proj; weight and
    bias each) -> (b, t_q, d_model). The reference loads the dict into the library's module and runs it."""
    module = MultiHeadAttention(params["q_proj.weight"].shape[0], heads)
    module.load_state_dict(params)
    return module.eval()(x_q, x_kv, x_kv, mask)[0]


# --- cases ----------------------------------------------------------------------------------------


def _randn(g: torch.Generator):
    return lambda *shape: torch.randn(*shape, generator=g)


def _sdpa_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    lengths = torch.tensor([4, 2])
    return [
        Case(
            "3-D (b, t, d), no mask, d=16 (catches a missing 1/sqrt(d))",
            (randn(2, 3, 16), randn(2, 3, 16), randn(2, 3, 16)),
        ),
        Case("t_q=2, t_k=5, d_v=3 (catches a transposed product)", (randn(1, 2, 4), randn(1, 5, 4), randn(1, 5, 3))),
        Case(
            "heads (b, h, t, d) with a padding mask (b, 1, 1, t)",
            (randn(2, 2, 4, 8), randn(2, 2, 4, 8), randn(2, 2, 4, 8)),
            {"mask": torch.arange(4)[None, :] < lengths[:, None, None, None]},
        ),
        Case(
            "causal mask (mask before the softmax, not after)",
            (randn(1, 5, 4), randn(1, 5, 4), randn(1, 5, 4)),
            {"mask": torch.ones(5, 5, dtype=torch.bool).tril()},
        ),
    ]


def _padding_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("lengths 3, 1, 5 of 5", (torch.tensor([3, 1, 5]), 5)),
        Case("random lengths, max_len 9", (torch.randint(1, 10, (6,), generator=g), 9)),
    ]


def _causal_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("t=1", (1,)),
        Case("t=4 (catches the diagonal off by one)", (4,)),
        Case("t random", (int(torch.randint(5, 12, (1,), generator=g)),)),
    ]


def _split_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case("2 heads of 3 (catches (d h) instead of (h d))", (randn(2, 4, 6), 2)),
        Case("4 heads of 2", (randn(1, 3, 8), 4)),
        Case("one head", (randn(3, 2, 5), 1)),
    ]


def _merge_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case("2 heads of 3 (catches (d h) instead of (h d))", (randn(2, 2, 4, 3),)),
        Case("4 heads of 2", (randn(1, 4, 3, 2),)),
    ]


def _mha_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)

    x = randn(2, 5, 8)
    return [
        Case("self-attention, d_model 8, 2 heads", (x, x, 2), {"init_seed": draw_seed(g)}),
        Case(
            "cross-attention: 3 queries, 6 keys, 4 heads (catches W instead of W^T)",
            (randn(2, 3, 8), randn(2, 6, 8), 4),
            {"init_seed": draw_seed(g)},
        ),
        Case(
            "causal self-attention, 1 head",
            (x, x, 1),
            {"init_seed": draw_seed(g), "mask": torch.ones(5, 5, dtype=torch.bool).tril()},
        ),
        Case(
            "cross-attention with a padding mask, 2 heads",
            (randn(2, 4, 8), randn(2, 6, 8), 2),
            {"init_seed": draw_seed(g), "mask": padding_mask(torch.tensor([6, 3]), 6)},
        ),
    ]


@torch.no_grad()
def _run_mha(fn, case: Case):
    """A seeded MultiHeadAttention (biases included) hands its state dict to `fn`."""
    x_q, x_kv, heads = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    module = MultiHeadAttention(x_q.shape[-1], heads)
    params = {name: tensor.clone() for name, tensor in module.state_dict().items()}
    return fn(x_q, x_kv, params, heads, case.kwargs.get("mask"))


EXERCISES = [
    Exercise(
        scaled_dot_product_attention,
        NOTEBOOK,
        3.0,
        _sdpa_cases,
        setup=SETUP,
        forbidden=("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward"),
    ),
    Exercise(padding_mask, NOTEBOOK, 1.0, _padding_cases, setup=SETUP),
    Exercise(causal_mask, NOTEBOOK, 1.0, _causal_cases, setup=SETUP),
    Exercise(split_heads, NOTEBOOK, 1.0, _split_cases, setup=SETUP),
    Exercise(merge_heads, NOTEBOOK, 1.0, _merge_cases, setup=SETUP),
    Exercise(
        multi_head_attention,
        NOTEBOOK,
        3.0,
        _mha_cases,
        call=_run_mha,
        setup=SETUP,
        forbidden=("MultiheadAttention", "multi_head_attention_forward"),
        atol=1e-5,
        rtol=1e-4,
    ),
]
