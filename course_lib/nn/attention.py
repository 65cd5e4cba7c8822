"""Lessons 01-03, 05, 11: attention from scratch, scaled dot-product, masks, multi-head, Bahdanau's additive.

Mask convention, as in `F.scaled_dot_product_attention`: a boolean mask is True where a query
MAY attend to a key. Masks broadcast against the scores, shaped (..., t_q, t_k).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from einops import rearrange
from torch import nn


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(t_q, t_k) bool, True on and below the diagonal: position i sees keys 0..i (aligned at the end if t_k > t_q)."""
    t_k = t_q if t_k is None else t_k
    if t_q < 1 or t_k < t_q:
        raise ValueError(f"causal_mask needs 1 <= t_q <= t_k, got t_q={t_q}, t_k={t_k}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(b, 1, 1, max_len) bool, True at real tokens: broadcasts over heads and queries."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (batch,), got shape {tuple(lengths.shape)}")
    if (lengths < 1).any() or (lengths > max_len).any():
        raise ValueError(f"lengths must lie in 1..{max_len}, got {lengths.tolist()}")
    keep = torch.arange(max_len, device=lengths.device) < lengths[:, None]  # (b, max_len)
    return rearrange(keep, "b t -> b 1 1 t")


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d) + mask) v; returns (output (..., t_q, d_v), weights (..., t_q, t_k)).

    Dividing by sqrt(d) keeps the scores' variance near 1 whatever the head size, so the softmax
    does not saturate into a one-hot and its gradients do not vanish.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shapes do not fit: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., t_q, t_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be bool (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))  # masked BEFORE the softmax
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(b, t, heads * d) -> (b, heads, t, d)."""
    if x.shape[-1] % heads:
        raise ValueError(f"model width {x.shape[-1]} is not divisible by {heads} heads")
    return rearrange(x, "b t (h d) -> b h t d", h=heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(b, heads, t, d) -> (b, t, heads * d)."""
    return rearrange(x, "b h t d -> b t (h d)")


class MultiHeadAttention(nn.Module):
    """`heads` attentions in parallel on learned projections of width d_model / heads, then one output projection."""

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        self.heads = heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (b, t_q, d_model), key/value (b, t_k, d_model) -> (b, t_q, d_model), weights (b, heads, t_q, t_k)."""
        q = split_heads(self.q_proj(query), self.heads)  # (b, h, t_q, d)
        k = split_heads(self.k_proj(key), self.heads)  # (b, h, t_k, d)
        v = split_heads(self.v_proj(value), self.heads)  # (b, h, t_k, d)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(self.dropout(merge_heads(out))), weights


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, every MultiHeadAttention of `model` stores its latest weights under its module name.

    with record_attention(model) as maps:
        model(src, tgt)
    maps["decoder.0.cross_attn"]   # (b, heads, t_q, t_k)
    """
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):

            def hook(_module: nn.Module, _inputs: tuple, output: tuple, name: str = name) -> None:
                maps[name] = output[1].detach()

            handles.append(module.register_forward_hook(hook))
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


class AdditiveAttention(nn.Module):
    """Bahdanau's score v^T tanh(W_q q + W_k k_j), softmax over the source, weighted sum of the keys."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int) -> None:
        super().__init__()
        self.w_query = nn.Linear(query_dim, hidden, bias=False)
        self.w_key = nn.Linear(key_dim, hidden, bias=True)
        self.v = nn.Linear(hidden, 1, bias=False)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (b, dq), keys (b, s, dk), mask (b, s) True at real tokens -> context (b, dk), weights (b, s)."""
        scores = self.v(torch.tanh(self.w_query(query)[:, None, :] + self.w_key(keys))).squeeze(-1)  # (b, s)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        context = torch.einsum("bs,bsd->bd", weights, keys)
        return context, weights
