"""The Transformer (lesson 03): encoder and decoder layers and the encoder-decoder model.

Layers are post-LN as in the 2017 paper (x = LayerNorm(x + sublayer(x))); `norm_first=True` gives
the pre-LN variant GPT uses (x = x + sublayer(LayerNorm(x))).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.nn.attention import MultiHeadAttention, causal_mask
from course_lib.nn.positional import SinusoidalPositions


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

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
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


class Seq2SeqTransformer(nn.Module):
    """Token embeddings + sinusoidal positions, an encoder stack, a decoder stack, and a linear head to target logits."""

    def __init__(self, src_vocab: int, tgt_vocab: int, *, d_model: int = 128, heads: int = 4, layers: int = 2,
                 d_ff: int = 256, dropout: float = 0.1, max_len: int = 128, pad_id: int = 0,
                 positions: bool = True) -> None:
        super().__init__()
        self.d_model, self.pad_id = d_model, pad_id
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        self.positions = SinusoidalPositions(d_model, max_len) if positions else nn.Identity()
        self.encoder = nn.ModuleList(EncoderLayer(d_model, heads, d_ff, dropout) for _ in range(layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, heads, d_ff, dropout) for _ in range(layers))
        self.head = nn.Linear(d_model, tgt_vocab)
        self.dropout = nn.Dropout(dropout)

    def source_mask(self, src: torch.Tensor) -> torch.Tensor:
        """(b, 1, 1, s): True at real source tokens."""
        return (src != self.pad_id)[:, None, None, :]

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """src (b, s) token ids -> memory (b, s, d_model)."""
        x = self.dropout(self.positions(self.src_embed(src) * math.sqrt(self.d_model)))
        mask = self.source_mask(src)
        for layer in self.encoder:
            x = layer(x, mask)
        return x

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """tgt (b, t) ids so far, memory (b, s, d_model) -> logits (b, t, tgt_vocab)."""
        x = self.dropout(self.positions(self.tgt_embed(tgt) * math.sqrt(self.d_model)))
        self_mask = causal_mask(tgt.shape[1], device=tgt.device)
        memory_mask = self.source_mask(src)
        for layer in self.decoder:
            x = layer(x, memory, self_mask, memory_mask)
        return self.head(x)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (b, t, tgt_vocab) for every target position at once."""
        return self.decode(tgt, self.encode(src), src)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int) -> torch.Tensor:
        """(b, s) -> (b, <= max_len) token ids, starting after BOS, stopping when every row has produced EOS."""
        memory = self.encode(src)
        out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            next_token = self.decode(out, memory, src)[:, -1].argmax(dim=-1)
            next_token = next_token.masked_fill(done, self.pad_id)
            out = torch.cat([out, next_token[:, None]], dim=1)
            done |= next_token == eos_id
            if done.all():
                break
        return out[:, 1:]
