"""Lesson 00 exercises: stable softmax, batched matmul with einsum, patches with einops, gradient accumulation."""

from __future__ import annotations

import torch
from einops import einsum, rearrange
from torch import nn

from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "00_foundations"
SETUP = """\
import torch
from torch import nn
import torch.nn.functional as F
from einops import rearrange, reduce, repeat, einsum
"""


# --- references ---------------------------------------------------------------------------------


def stable_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x): the shift changes nothing but overflow."""
    shifted = x - x.amax(dim=dim, keepdim=True)
    weights = shifted.exp()
    return weights / weights.sum(dim=dim, keepdim=True)


def batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(b, i, k) x (b, k, j) -> (b, i, j) with einsum."""
    return einsum(a, b, "batch i k, batch k j -> batch i j")


def image_to_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(b, c, h, w) -> (b, number of patches, patch * patch * c), patches in row-major order."""
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch)


def accumulated_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, micro_batches: int
) -> float:
    """One optimizer step on the whole batch, its gradient summed over `micro_batches` chunks (x.chunk).

    Each chunk's summed loss is divided by the whole batch's size, so the gradient equals the full batch's
    mean-loss gradient even when the chunks are uneven; returns the whole batch's mean loss as a float.
    """
    optimizer.zero_grad()
    total = 0.0
    for x_part, y_part in zip(x.chunk(micro_batches), y.chunk(micro_batches)):
        loss = nn.functional.cross_entropy(model(x_part), y_part, reduction="sum") / len(x)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


# --- cases ----------------------------------------------------------------------------------------


def _softmax_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    masked = randn(3, 6)
    masked[:, ::2] = float("-inf")  # masked positions, as attention will use them
    return [
        Case("small logits", (randn(4, 10),)),
        Case("large logits (overflow without the max shift)", (randn(3, 8) * 30 + 1000,)),
        Case("very negative logits (underflow to 0/0)", (randn(3, 8) * 30 - 1000,)),
        Case("dim=0", (randn(5, 3),), {"dim": 0}),
        Case("3-D input, dim=1", (randn(2, 4, 7),), {"dim": 1}),
        Case("-inf entries (masked)", (masked,)),
    ]


def _matmul_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("square matrices", (torch.randn(2, 3, 3, generator=g), torch.randn(2, 3, 3, generator=g))),
        Case(
            "non-square (catches a transposed operand)",
            (torch.randn(4, 2, 5, generator=g), torch.randn(4, 5, 3, generator=g)),
        ),
        Case("batch of one, row times column", (torch.randn(1, 1, 6, generator=g), torch.randn(1, 6, 1, generator=g))),
        Case(
            "float64 stays float64",
            (
                torch.randn(3, 4, 2, generator=g, dtype=torch.float64),
                torch.randn(3, 2, 5, generator=g, dtype=torch.float64),
            ),
        ),
    ]


def _patch_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("one channel, 8x8 into four 4x4 patches", (torch.randn(2, 1, 8, 8, generator=g), 4)),
        Case("three channels, 6x4 image (catches h/w and channel order)", (torch.randn(1, 3, 6, 4, generator=g), 2)),
        Case("a single patch", (torch.randn(3, 2, 4, 4, generator=g), 4)),
    ]


def _train_cases(g: torch.Generator) -> list[Case]:
    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)

    return [
        Case(
            "18 examples in 4 uneven micro-batches (5, 5, 5, 3), SGD (catches a sum of chunk means)",
            (*batch(18), 4),
            {"init_seed": draw_seed(g)},
        ),
        Case(
            "10 examples in 3 uneven micro-batches, SGD with momentum (catches a mean of chunk means)",
            (*batch(10), 3),
            {"init_seed": draw_seed(g), "optimizer": "momentum"},
        ),
        Case(
            "8 examples in 1 micro-batch, Adam (the plain step)",
            (*batch(8), 1),
            {"init_seed": draw_seed(g), "optimizer": "adam"},
        ),
        Case("7 examples in 3 uneven micro-batches (3, 3, 1), SGD", (*batch(7), 3), {"init_seed": draw_seed(g)}),
    ]


def _run_train_step(fn, case: Case):
    """Build a seeded model and optimizer, call `fn` three times, return the losses, the final weights and how
    many examples the model saw at once (accumulation exists so that it never sees more than one chunk)."""
    x, y, micro_batches = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    batch_sizes = []  # examples reaching the first layer per call (model.forward(x) passes through it too)
    model[0].register_forward_pre_hook(lambda module, inputs: batch_sizes.append(inputs[0].shape[:-1].numel()))
    kind = case.kwargs.get("optimizer", "sgd")
    if kind == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9 if kind == "momentum" else 0.0)
    losses = tuple(fn(model, optimizer, x, y, micro_batches) for _ in range(3))
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    chunk = -(-len(x) // micro_batches)  # x.chunk's size: ceil(N / micro_batches)
    calls = f"model calls on more than {chunk} examples at once: {sum(size > chunk for size in batch_sizes)}"
    return losses, weights, calls


EXERCISES = [
    Exercise(stable_softmax, NOTEBOOK, 2.0, _softmax_cases, setup=SETUP, forbidden=("softmax", "log_softmax")),
    Exercise(
        batched_matmul,
        NOTEBOOK,
        2.0,
        _matmul_cases,
        setup=SETUP,
        forbidden=("matmul", "bmm", "mm", "@"),
        atol=1e-5,
        rtol=1e-5,
    ),
    Exercise(image_to_patches, NOTEBOOK, 2.0, _patch_cases, setup=SETUP),
    Exercise(accumulated_step, NOTEBOOK, 2.0, _train_cases, call=_run_train_step, setup=SETUP, forbidden=("fit",)),
]
