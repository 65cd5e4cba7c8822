"""Lesson 03 exercises: rotary positions (a variation on the sinusoids), the label-smoothed loss of the paper, and
the whole encoder-decoder's forward pass assembled from a trained model's state dict."""

from __future__ import annotations

import torch

from course_lib.models.transformer import Seq2SeqTransformer
from course_lib.nn.positional import sinusoidal_encoding
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "03_transformer"
SETUP = """\
import math
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def rotary_embedding(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x (..., t, d), d even: the pair (x[2i], x[2i+1]) at position p rotated by the angle p * base^(-2i/d)."""
    t, d = x.shape[-2], x.shape[-1]
    rate = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angle = (torch.arange(t, dtype=torch.float64)[:, None] * rate).to(x.dtype)  # (t, d/2)
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # (..., t, d/2, 2)
    return rotated.flatten(-2)


def label_smoothed_loss(logits: torch.Tensor, targets: torch.Tensor, epsilon: float, pad_id: int = 0) -> torch.Tensor:
    """logits (b, t, V), targets (b, t): cross-entropy against (1 - eps) one-hot + eps / V uniform, padding skipped.

    (PyTorch's F.cross_entropy(..., label_smoothing=eps, ignore_index=pad_id) gives the same; tests compare.)
    """
    log_probs = logits.log_softmax(dim=-1)
    nll = -log_probs.gather(-1, targets[..., None])[..., 0]  # (b, t)
    uniform = -log_probs.mean(dim=-1)  # cross-entropy against the uniform distribution
    return ((1 - epsilon) * nll + epsilon * uniform)[targets != pad_id].mean()


def transformer_forward(
    params: dict[str, torch.Tensor],
    heads: int,
    src: torch.Tensor,
    tgt_in: torch.Tensor,
    pe: torch.Tensor,
    pad_id: int = 0,
) -> torch.Tensor:
    """The course's Seq2SeqTransformer forward (teacher forcing) from its state dict -> logits (b, t, tgt_vocab).

    The reference loads the dict into the library's model (dropout off) and runs it; `pe` is sinusoidal_encoding.
    """
    layers = len({name.split(".")[1] for name in params if name.startswith("encoder.")})
    model = Seq2SeqTransformer(
        params["src_embed.weight"].shape[0],
        params["head.weight"].shape[0],
        d_model=params["head.weight"].shape[1],
        heads=heads,
        layers=layers,
        d_ff=params["encoder.0.ff.0.weight"].shape[0],
        dropout=0.0,
        max_len=pe.shape[0],
        pad_id=pad_id,
    )
    model.load_state_dict(params)
    return model.eval()(src, tgt_in)


# --- cases ----------------------------------------------------------------------------------------


def _rotary_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("one head, 6 positions, d 4", (torch.randn(1, 6, 4, generator=g),)),
        Case(
            "(b, h, t, d) = (2, 3, 9, 8) (catches i instead of 2i in the exponent)",
            (torch.randn(2, 3, 9, 8, generator=g),),
        ),
        Case(
            "base 100, 40 positions (catches pairs taken as halves)",
            (torch.randn(40, 6, generator=g),),
            {"base": 100.0},
        ),
    ]


def _smoothing_cases(g: torch.Generator) -> list[Case]:
    targets = torch.randint(1, 7, (3, 5), generator=g)
    targets[0, 3:] = 0  # padding at the end of the first row
    return [
        Case("epsilon 0.1, padding in row 0", (torch.randn(3, 5, 7, generator=g), targets, 0.1)),
        Case(
            "epsilon 0 is plain cross-entropy",
            (torch.randn(2, 4, 5, generator=g), torch.randint(1, 5, (2, 4), generator=g), 0.0),
        ),
        Case(
            "epsilon 0.3, pad id 2 (catches a hard-coded pad id)",
            (torch.randn(2, 6, 9, generator=g) * 3, torch.randint(0, 9, (2, 6), generator=g), 0.3),
            {"pad_id": 2},
        ),
    ]


def _forward_cases(g: torch.Generator) -> list[Case]:
    def tokens(b: int, t: int, vocab: int, lengths: list[int]) -> torch.Tensor:
        ids = torch.randint(1, vocab, (b, t), generator=g)
        for row, length in enumerate(lengths):
            ids[row, length:] = 0
        return ids

    return [
        Case(
            "1 layer, 2 heads, no padding",
            (2, tokens(2, 5, 11, [5, 5]), tokens(2, 4, 13, [4, 4])),
            {"init_seed": draw_seed(g), "layers": 1},
        ),
        Case(
            "2 layers, 2 heads, padded sources (catches a missing source mask)",
            (2, tokens(3, 7, 11, [7, 4, 2]), tokens(3, 5, 13, [5, 5, 5])),
            {"init_seed": draw_seed(g), "layers": 2},
        ),
        Case(
            "2 layers, 4 heads, one target token",
            (4, tokens(2, 6, 11, [6, 3]), tokens(2, 1, 13, [1, 1])),
            {"init_seed": draw_seed(g), "layers": 2},
        ),
    ]


@torch.no_grad()
def _run_forward(fn, case: Case):
    """A seeded small Seq2SeqTransformer (LayerNorms randomised so a swapped norm shows) hands over its state dict."""
    heads, src, tgt_in = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    model = Seq2SeqTransformer(11, 13, d_model=8, heads=heads, layers=case.kwargs["layers"], d_ff=16, dropout=0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0.0, 0.1)
    params = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    return fn(params, heads, src, tgt_in, sinusoidal_encoding(32, 8), 0)


EXERCISES = [
    Exercise(rotary_embedding, NOTEBOOK, 2.0, _rotary_cases, setup=SETUP),
    Exercise(label_smoothed_loss, NOTEBOOK, 2.0, _smoothing_cases, setup=SETUP, forbidden=("label_smoothing",)),
    Exercise(
        transformer_forward,
        NOTEBOOK,
        4.0,
        _forward_cases,
        call=_run_forward,
        setup=SETUP,
        forbidden=("TransformerEncoderLayer", "TransformerDecoderLayer", "Transformer"),
        atol=1e-4,
    ),
]
