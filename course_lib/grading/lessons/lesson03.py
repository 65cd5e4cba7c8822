"""Lesson 03 exercises: sinusoidal positions, an encoder layer and a decoder layer (post-LN, as in the paper)."""

from __future__ import annotations

import torch

from course_lib.grading.spec import Case, Exercise
from course_lib.nn.attention import causal_mask
from course_lib.nn.positional import sinusoidal_encoding
from course_lib.nn.transformer import DecoderLayer, EncoderLayer

NOTEBOOK = "03_transformer"
SETUP = """\
import math
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def encoder_layer(layer: EncoderLayer, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """x = norm1(x + self_attn(x)); x = norm2(x + ff(x)), using the layer's submodules."""
    x = layer.norm1(x + layer.self_attn(x, x, x, mask)[0])
    return layer.norm2(x + layer.ff(x))


def decoder_layer(
    layer: DecoderLayer,
    x: torch.Tensor,
    memory: torch.Tensor,
    self_mask: torch.Tensor,
    memory_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked self-attention, cross-attention (queries from x, keys and values from memory), feed-forward."""
    x = layer.norm1(x + layer.self_attn(x, x, x, self_mask)[0])
    x = layer.norm2(x + layer.cross_attn(x, memory, memory, memory_mask)[0])
    return layer.norm3(x + layer.ff(x))


# --- cases ----------------------------------------------------------------------------------------


def _pe_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("length 6, d_model 4", (6, 4)),
        Case("length 50, d_model 16 (catches 2i vs i in the exponent)", (50, 16)),
        Case("length 1, d_model 2", (1, 2)),
        Case("random length, d_model 8", (int(torch.randint(2, 30, (1,), generator=g)), 8)),
    ]


def _encoder_cases(g: torch.Generator) -> list[Case]:
    def seed() -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=g))

    return [
        Case("no mask, d_model 8, 2 heads", (torch.randn(2, 5, 8, generator=g),), {"init_seed": seed()}),
        Case(
            "padding mask: the second row has 3 real tokens",
            (torch.randn(2, 5, 8, generator=g),),
            {"init_seed": seed(), "lengths": [5, 3]},
        ),
    ]


def _decoder_cases(g: torch.Generator) -> list[Case]:
    def seed() -> int:
        return int(torch.randint(0, 2**31 - 1, (1,), generator=g))

    return [
        Case(
            "4 target tokens, 6 source tokens",
            (torch.randn(2, 4, 8, generator=g), torch.randn(2, 6, 8, generator=g)),
            {"init_seed": seed()},
        ),
        Case(
            "source padding: the first row has 2 real source tokens",
            (torch.randn(2, 3, 8, generator=g), torch.randn(2, 5, 8, generator=g)),
            {"init_seed": seed(), "lengths": [2, 5]},
        ),
    ]


def _seeded_layer(kind: type, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    layer = kind(8, 2, 16, dropout=0.0).eval()
    with torch.no_grad():
        for module in layer.modules():  # LayerNorm starts at 1 and 0: randomise so a swapped norm shows
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
    return layer


def _key_mask(lengths: list[int] | None, t: int) -> torch.Tensor | None:
    return None if lengths is None else (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]


@torch.no_grad()
def _run_encoder(fn, case: Case):
    (x,) = case.args
    layer = _seeded_layer(EncoderLayer, case.kwargs["init_seed"])
    return fn(layer, x, _key_mask(case.kwargs.get("lengths"), x.shape[1]))


@torch.no_grad()
def _run_decoder(fn, case: Case):
    x, memory = case.args
    layer = _seeded_layer(DecoderLayer, case.kwargs["init_seed"])
    return fn(layer, x, memory, causal_mask(x.shape[1]), _key_mask(case.kwargs.get("lengths"), memory.shape[1]))


EXERCISES = [
    Exercise(
        "sinusoidal_encoding",
        NOTEBOOK,
        "sinusoidal_encoding",
        2.0,
        sinusoidal_encoding,
        _pe_cases,
        setup=SETUP,
        atol=1e-5,
        rtol=1e-4,
    ),
    Exercise(
        "encoder_layer",
        NOTEBOOK,
        "encoder_layer",
        2.0,
        encoder_layer,
        _encoder_cases,
        call=_run_encoder,
        setup=SETUP,
        forbidden=("TransformerEncoderLayer",),
    ),
    Exercise(
        "decoder_layer",
        NOTEBOOK,
        "decoder_layer",
        3.0,
        decoder_layer,
        _decoder_cases,
        call=_run_decoder,
        setup=SETUP,
        forbidden=("TransformerDecoderLayer",),
    ),
]
