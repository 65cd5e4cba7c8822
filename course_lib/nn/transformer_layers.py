"""Lesson 03: the Transformer's encoder and decoder layers and its feed-forward block (lesson 07's BERT and
lesson 11's ViT stack the encoder layer).

Layers are post-LN as in the 2017 paper (x = LayerNorm(x + sublayer(x))); `norm_first=True` gives
the pre-LN variant GPT uses (x = x + sublayer(LayerNorm(x))).
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.nn.attention import MultiHeadAttention


class FeedForward(nn.Sequential):
    """Position-wise MLP: d_model -> d_ff -> d_model with a ReLU."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual connection and LayerNorm."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (b, t, d_model), mask broadcastable to (b, heads, t, t) -> (b, t, d_model)."""

        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.dropout(self.self_attn(h, h, h, mask)[0])

        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + self.dropout(self.ff(self.norm2(x)))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.dropout(self.ff(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder's output, feed-forward; residual + LayerNorm each."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (b, t, d_model), memory (b, s, d_model) -> (b, t, d_model)."""

        def self_block(h: torch.Tensor) -> torch.Tensor:
            return self.dropout(self.self_attn(h, h, h, self_mask)[0])

        def cross_block(h: torch.Tensor) -> torch.Tensor:
            return self.dropout(self.cross_attn(h, memory, memory, memory_mask)[0])

        if self.norm_first:
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            return x + self.dropout(self.ff(self.norm3(x)))
        x = self.norm1(x + self_block(x))
        x = self.norm2(x + cross_block(x))
        return self.norm3(x + self.dropout(self.ff(x)))
