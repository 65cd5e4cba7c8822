"""Lesson 01: greedy decoding, the one loop every encoder-decoder of lessons 01-03 uses at test time."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

State = TypeVar("State")


def greedy_decode(
    step: Callable[[torch.Tensor, State], tuple[torch.Tensor, State]],
    state: State,
    *,
    batch: int,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Feed each step's arg-max back in, starting from BOS; a row that wrote EOS gets pad_id from then on; stop
    when every row has ended or after max_len steps.

    step(tokens (b,), state) -> (logits (b, V), new state); the state is whatever the decoder carries (a GRU's
    hidden vector, a Transformer's prefix). -> token ids (b, steps taken), int64, steps <= max_len.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    token = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_len):
        logits, state = step(token, state)
        token = logits.argmax(dim=-1).masked_fill(done, pad_id)
        out.append(token)
        done = done | (token == eos_id)
        if done.all():
            break
    return torch.stack(out, dim=1)
