"""Lessons 05-06: decoding, turning a language model's next-token logits into text, and measuring the result.

Every sampler is one function of the logits of the last position, (b, vocab) -> (b,) token ids:
greedy takes the argmax; temperature divides the logits; top-k keeps the k largest; top-p (nucleus)
keeps the smallest set whose probability reaches p. `generate` runs any of them with or without a
key-value cache; `beam_search` keeps the `beams` best partial sequences instead of one sample.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from course_lib.models.gpt import GPT

NEG_INF = float("-inf")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits in each row (ties with the k-th kept too); the rest become -inf."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the most likely tokens until their probability reaches p (always the top one)."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above this one
    drop_sorted = before >= p  # the nucleus already reached p without it
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, NEG_INF)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One decoding step: logits (b, vocab) -> token ids (b,). temperature 0 means greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    keep: int = 0,
    banned: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Append `max_new_tokens` tokens to idx (b, t) -> (b, t + max_new_tokens).

    With `use_cache` the prompt is read once and then each step feeds only the newest token; the
    whole sequence must then fit in block_size. Without it every step re-reads the last block_size
    tokens, so the text can run on past block_size, and the first `keep` tokens (a control code, a
    system prompt) always stay at the start of the window. `banned` token ids are never produced.
    """
    block = model.config.block_size
    if not 0 <= keep < block:
        raise ValueError(f"keep must be in [0, block_size={block}), got {keep}")
    if use_cache and idx.shape[1] + max_new_tokens > block:
        raise ValueError(
            f"with a KV cache the {idx.shape[1]}-token prompt + {max_new_tokens} new tokens must fit "
            f"in block_size={block} (learned positions stop there); pass use_cache=False to slide a window"
        )
    cache = model.new_cache() if use_cache else None
    step_input = idx
    for _ in range(max_new_tokens):
        if cache is None:
            window = idx if idx.shape[1] <= block else torch.cat([idx[:, :keep], idx[:, keep - block :]], dim=1)
            logits, _ = model(window)
        else:
            logits, _ = model(step_input, cache=cache)
        logits = logits[:, -1]
        if banned:
            logits[:, list(banned)] = NEG_INF
        next_token = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        step_input = next_token[:, None]
        idx = torch.cat([idx, step_input], dim=1)
    return idx


def beam_step(
    scores: torch.Tensor, log_probs: torch.Tensor, beams: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Extend each beam by every token and keep the `beams` best: scores (n,), log_probs (n, vocab)
    -> (new scores (beams,), parent beam (beams,), token (beams,)), best first."""
    total = scores[:, None] + log_probs  # (n, vocab): log p(beam) + log p(token | beam)
    best, flat = total.flatten().topk(beams)
    vocab = log_probs.shape[-1]
    return best, flat // vocab, flat % vocab


@torch.no_grad()
def beam_search(model: GPT, prompt: torch.Tensor, max_new_tokens: int, *, beams: int = 4) -> tuple[torch.Tensor, float]:
    """The most likely continuation that `beams` beams find: prompt (t,) -> (tokens (t + max_new_tokens,), log p)."""
    block = model.config.block_size
    sequences = prompt[None]  # (1, t): one beam to start with
    scores = torch.zeros(1, device=prompt.device)
    for _ in range(max_new_tokens):
        logits, _ = model(sequences[:, -block:])
        log_probs = logits[:, -1].log_softmax(dim=-1)
        scores, parent, token = beam_step(scores, log_probs, min(beams, log_probs.numel()))
        sequences = torch.cat([sequences[parent], token[:, None]], dim=1)
    return sequences[0], scores[0].item()


@torch.no_grad()
def log_likelihood(model: GPT, idx: torch.Tensor, start: int) -> torch.Tensor:
    """Mean log p(token | up to block_size tokens before it) of idx[:, start:] under the model: (b, t) -> (b,)."""
    if not 1 <= start < idx.shape[1]:
        raise ValueError(f"start must be in [1, {idx.shape[1]}), got {start}")
    block = model.config.block_size
    first = idx[:, :block]
    logits, _ = model(first)  # predicts tokens 1 .. min(block, t) - 1 with full context
    log_probs = [logits[:, :-1].log_softmax(-1).gather(-1, first[:, 1:, None]).squeeze(-1)]
    if idx.shape[1] > block:  # later tokens: one window of block_size tokens each
        windows = idx[:, :-1].unfold(1, block, 1)  # (b, t - block, block): window j predicts token j + block
        b, n, _ = windows.shape
        logits, _ = model(windows.reshape(b * n, block))
        last = logits[:, -1].log_softmax(-1).reshape(b, n, -1)
        log_probs.append(last.gather(-1, idx[:, block:, None]).squeeze(-1))
    per_token = torch.cat(log_probs, dim=1)  # (b, t - 1): log p of tokens 1 .. t - 1
    return per_token[:, start - 1 :].mean(dim=1)


def ngrams(tokens: Sequence, n: int) -> list[tuple]:
    """All n-grams of a sequence, in order."""
    tokens = list(tokens)
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence, n: int) -> float:
    """Distinct n-grams over all n-grams (1.0: nothing repeats; near 0: one phrase over and over)."""
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: Sequence, n: int = 8) -> float:
    """Fraction of n-grams that already occurred earlier in the same sequence (loops score near 1)."""
    grams = ngrams(tokens, n)
    seen: Counter = Counter()
    repeats = 0
    for gram in grams:
        repeats += seen[gram] > 0
        seen[gram] += 1
    return repeats / len(grams) if grams else 0.0


def perplexity(mean_log_likelihood: float) -> float:
    """exp(-mean log p): the number of equally likely tokens the model is choosing among."""
    return math.exp(-mean_log_likelihood)
