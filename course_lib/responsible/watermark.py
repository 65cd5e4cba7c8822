"""Lesson 18: a green-list watermark (Kirchenbauer et al., 2023) in a character GPT's sampler, and its detector.

The previous token and a secret key seed a random split of the vocabulary into a green share `gamma` and a red
rest; sampling adds `delta` to the green logits. The text carries no visible marker (it is only somewhat less
likely under the unwatermarked model); with the key, a detector counts green tokens and asks how unlikely that
many would be by chance.
"""

from __future__ import annotations

import math

import torch

from course_lib.models.gpt import GPT
from course_lib.text.decoding import sample_next


def green_table(vocab_size: int, gamma: float, key: int) -> torch.Tensor:
    """(vocab, vocab) bool: row p marks the green tokens after token p, round(gamma * vocab) of them, drawn from
    a generator seeded by (key, p)."""
    if not 0 < gamma < 1:
        raise ValueError(f"gamma is the green share of the vocabulary, in (0, 1); got {gamma}")
    greens = round(gamma * vocab_size)
    table = torch.zeros(vocab_size, vocab_size, dtype=torch.bool)
    for previous in range(vocab_size):
        order = torch.randperm(vocab_size, generator=torch.Generator().manual_seed(key * 1_000_003 + previous))
        table[previous, order[:greens]] = True
    return table


def _cached_steps(model: GPT, idx: torch.Tensor, cache, step_input: torch.Tensor):
    """One step of the sampler's context rule -> (logits of the next token (b, vocab), the cache to use next).
    The cache is rebuilt from the last block_size // 2 tokens of idx whenever the next input would overflow it."""
    block = model.config.block_size
    if cache is None:  # the first step reads the prompt, at most a block of it
        cache, step_input = model.new_cache(), idx[:, -block:]
    elif len(cache) + step_input.shape[1] > block:  # full: start again from the last half block
        cache, step_input = model.new_cache(), idx[:, -(block // 2) :]
    return model(step_input, cache=cache)[0][:, -1], cache


@torch.no_grad()
def watermarked_generate(
    model: GPT,
    prompt: torch.Tensor,
    new_tokens: int,
    table: torch.Tensor | None,
    delta: float,
    generator: torch.Generator,
    temperature: float = 1.0,
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """prompt (b, t) -> (b, t + new_tokens): sample with `delta` added to the logits of the green list of the
    previous token (no watermark when `table` is None or delta is 0).

    A KV cache makes each step read one token; when it reaches block_size the cache is rebuilt from the last
    block_size // 2 tokens, so every token is drawn seeing between half a block and a whole block of context.
    With `return_logits`, also the model's own logits at each step, before the watermark: (b, new_tokens, vocab).
    """
    idx, cache, step_input, seen = prompt, None, prompt, []
    for _ in range(new_tokens):
        raw, cache = _cached_steps(model, idx, cache, step_input)  # (b, vocab)
        seen.append(raw)
        logits = raw / temperature
        if table is not None and delta:
            logits = logits + delta * table[idx[:, -1]].to(logits.dtype)
        step_input = sample_next(logits, generator=generator)[:, None]
        idx = torch.cat([idx, step_input], dim=1)
    return (idx, torch.stack(seen, dim=1)) if return_logits else idx


@torch.no_grad()
def forced_logits(model: GPT, tokens: torch.Tensor, start: int) -> torch.Tensor:
    """The model's logits for tokens[:, start:], each read with the context `watermarked_generate` would have
    had, had it written them: (b, t - start, vocab)."""
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start must be in [1, {tokens.shape[1]}), got {start}")
    cache, step_input, seen = None, tokens[:, :start], []
    for j in range(start, tokens.shape[1]):
        logits, cache = _cached_steps(model, tokens[:, :j], cache, step_input)
        seen.append(logits)
        step_input = tokens[:, j : j + 1]
    return torch.stack(seen, dim=1)


def mean_nll(model: GPT, tokens: torch.Tensor, start: int) -> torch.Tensor:
    """Mean negative log-likelihood (nats per token) of tokens[:, start:] under `model`, read as `forced_logits`
    reads them: (b,)."""
    logits = forced_logits(model, tokens, start)
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, start:], reduction="none").mean(1)


def green_hits(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """tokens (b, t) -> (b, t - 1) bool: whether each token after the first is green given the one before."""
    return table[tokens[:, :-1], tokens[:, 1:]]


def z_score(hits: torch.Tensor, gamma: float) -> torch.Tensor:
    """(b, T) bool -> (b,): green count against its chance mean gamma T, in standard deviations."""
    count, total = hits.sum(dim=1).double(), hits.shape[1]
    return ((count - gamma * total) / math.sqrt(total * gamma * (1 - gamma))).float()


def edit_characters(tokens: torch.Tensor, rate: float, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """Replace a share `rate` of the positions of each row (chosen at random) by random tokens."""
    b, t = tokens.shape
    chosen = torch.rand(b, t, generator=generator) < rate
    random = torch.randint(vocab_size, (b, t), generator=generator)
    return torch.where(chosen, random, tokens)
