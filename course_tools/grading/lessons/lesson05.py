"""Lesson 05 exercises: causal self-attention, the whole GPT forward from a state dict, the shifted loss, sampling,
the LR schedule, parameters."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.nn.attention import causal_mask, merge_heads, split_heads
from course_lib.train import warmup_cosine
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "05_gpt"
SETUP = """\
import math
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def causal_self_attention(x: torch.Tensor, w_qkv: torch.Tensor, w_proj: torch.Tensor, heads: int) -> torch.Tensor:
    """x (b, t, d) @ w_qkv (d, 3d) -> q, k, v (in that order); causal attention per head; merge; @ w_proj (d, d)."""
    q, k, v = (split_heads(part, heads) for part in (x @ w_qkv).chunk(3, dim=-1))  # (b, h, t, e)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(~causal_mask(x.shape[1], device=x.device), float("-inf")).softmax(dim=-1)
    return merge_heads(weights @ v) @ w_proj


def gpt_forward(params: dict[str, torch.Tensor], heads: int, idx: torch.Tensor) -> torch.Tensor:
    """The course's GPT forward from its state dict: idx (b, t) -> logits (b, t, vocab).

    The reference loads the dict into the library's GPT and runs it.
    """
    layers = len({name.split(".")[1] for name in params if name.startswith("blocks.")})
    vocab, d_model = params["tok_emb.weight"].shape
    config = GPTConfig(vocab, block_size=params["pos_emb.weight"].shape[0], layers=layers, heads=heads, d_model=d_model)
    model = GPT(config)
    model.load_state_dict(params)
    return model.eval()(idx)[0]


def next_token_loss(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """logits (b, t, V) computed from idx (b, t): position i predicts idx[:, i + 1]; mean cross-entropy."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten())


def sample_next(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """logits (b, V) -> (b, 1) ids drawn from softmax(logits / temperature) with torch.multinomial and `generator`."""
    probs = (logits / temperature).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def learning_rate(step: int, warmup: int, total: int, peak: float, floor: float) -> float:
    """Linear warm-up to `peak` over `warmup` steps (step 0 gets peak / warmup), then cosine decay to `floor` at
    `total`."""
    return warmup_cosine(step, warmup=warmup, total=total, peak=peak, floor=floor)


def count_parameters(vocab_size: int, block_size: int, layers: int, d_model: int) -> int:
    """Parameters of the course's GPT, all of them: embeddings (the output layer is tied), blocks, final LayerNorm."""
    d = d_model
    per_block = 2 * (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return vocab_size * d + block_size * d + layers * per_block + 2 * d


# --- cases ----------------------------------------------------------------------------------------


def _attn_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    return [
        Case("d 8, 2 heads (catches a missing causal mask)", (randn(2, 5, 8), randn(8, 24, scale=0.5), randn(8, 8), 2)),
        Case(
            "d 12, 3 heads (catches q, k, v split in the wrong order)",
            (randn(1, 7, 12), randn(12, 36, scale=0.5), randn(12, 12), 3),
        ),
        Case("one token", (randn(3, 1, 4), randn(4, 12), randn(4, 4), 1)),
    ]


def _forward_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "1 layer, 2 heads, 6 tokens",
            (2, torch.randint(0, 10, (2, 6), generator=g)),
            {"init_seed": draw_seed(g), "layers": 1},
        ),
        Case(
            "2 layers, 4 heads, a full block of 8 tokens (catches a missing causal mask)",
            (4, torch.randint(0, 10, (3, 8), generator=g)),
            {"init_seed": draw_seed(g), "layers": 2},
        ),
        Case(
            "2 layers, 2 heads, one token",
            (2, torch.randint(0, 10, (2, 1), generator=g)),
            {"init_seed": draw_seed(g), "layers": 2},
        ),
    ]


@torch.no_grad()
def _run_forward(fn, case: Case):
    """A seeded small GPT with random LayerNorms and large residual projections (so every mistake shows)."""
    heads, idx = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    model = GPT(GPTConfig(vocab_size=10, block_size=8, layers=case.kwargs["layers"], heads=heads, d_model=16))
    for name, p in model.named_parameters():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            p.uniform_(0.5, 1.5)
        elif name.endswith(("ln1.bias", "ln2.bias", "ln_f.bias", "qkv.bias", "proj.bias", "mlp.0.bias", "mlp.2.bias")):
            p.normal_(0.0, 0.1)
        elif name.endswith(("attn.proj.weight", "mlp.2.weight", "qkv.weight")):
            p.normal_(0.0, 0.3)
    params = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    return fn(params, heads, idx)


def _loss_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "batch 2, 6 tokens, vocabulary 7 (catches unshifted targets)",
            (torch.randn(2, 6, 7, generator=g) * 2, torch.randint(0, 7, (2, 6), generator=g)),
        ),
        Case("batch 1, 2 tokens", (torch.randn(1, 2, 5, generator=g), torch.randint(0, 5, (1, 2), generator=g))),
    ]


def _sample_cases(g: torch.Generator) -> list[Case]:
    logits = torch.randn(64, 6, generator=g) * 2
    return [
        Case("temperature 1", (logits,), {"temperature": 1.0, "sample_seed": draw_seed(g)}),
        Case("temperature 0.5 (sharper)", (logits,), {"temperature": 0.5, "sample_seed": draw_seed(g)}),
        Case("temperature 2 (flatter)", (logits,), {"temperature": 2.0, "sample_seed": draw_seed(g)}),
    ]


def _run_sample(fn, case: Case):
    (logits,) = case.args
    return fn(logits, case.kwargs["temperature"], torch.Generator().manual_seed(case.kwargs["sample_seed"]))


def _lr_cases(g: torch.Generator) -> list[Case]:
    peak = float(torch.rand(1, generator=g)) * 1e-2 + 1e-3
    args = {"warmup": 10, "total": 100, "peak": peak, "floor": peak / 10}
    return [Case(f"step {s}", (s,), args) for s in (0, 4, 9, 10, 55, 99, 100, 150)]


def _run_lr(fn, case: Case):
    return float(fn(case.args[0], **case.kwargs))


def _count_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("vocab 65, block 64, 4 layers of 128", (65, 64, 4, 128)),
        Case("vocab 11, block 8, 1 layer of 16", (11, 8, 1, 16)),
        Case("random sizes", (int(torch.randint(10, 300, (1,), generator=g)), 32, 2, 48)),
    ]


def _run_count(fn, case: Case):
    return int(fn(*case.args))


EXERCISES = [
    Exercise(
        causal_self_attention,
        NOTEBOOK,
        2.0,
        _attn_cases,
        setup=SETUP,
        forbidden=("scaled_dot_product_attention", "MultiheadAttention"),
    ),
    Exercise(
        gpt_forward,
        NOTEBOOK,
        4.0,
        _forward_cases,
        call=_run_forward,
        setup=SETUP,
        forbidden=("scaled_dot_product_attention", "MultiheadAttention", "TransformerEncoderLayer"),
        atol=1e-4,
    ),
    Exercise(next_token_loss, NOTEBOOK, 1.0, _loss_cases, setup=SETUP),
    Exercise(sample_next, NOTEBOOK, 1.0, _sample_cases, call=_run_sample, setup=SETUP),
    Exercise(learning_rate, NOTEBOOK, 1.0, _lr_cases, call=_run_lr, setup=SETUP, atol=1e-9, rtol=1e-6),
    Exercise(count_parameters, NOTEBOOK, 1.0, _count_cases, call=_run_count, setup=SETUP),
]


def _self_check() -> None:
    """count_parameters agrees with the real model (run by the tests)."""
    for vocab, block, layers, d in ((65, 64, 4, 128), (11, 8, 1, 16)):
        model = GPT(GPTConfig(vocab_size=vocab, block_size=block, layers=layers, heads=4, d_model=d))
        assert count_parameters(vocab, block, layers, d) == model.num_params(embeddings=True), (vocab, d)
    assert math.isclose(learning_rate(0, 10, 100, 1.0, 0.0), 0.1)
