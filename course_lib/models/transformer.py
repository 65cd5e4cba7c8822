"""Lessons 02-03: the encoder-decoder Transformer that translates lesson 01's number words.

Token embeddings scaled by sqrt(d_model), sinusoidal positions, a stack of post-LN encoder layers, a
stack of decoder layers with cross-attention, and a linear head to target logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.nn.attention import causal_mask
from course_lib.nn.greedy import greedy_decode
from course_lib.nn.positional import SinusoidalPositions
from course_lib.nn.transformer_layers import DecoderLayer, EncoderLayer


@dataclass(frozen=True)
class Seq2SeqTransformerConfig:
    """The Transformer translator's sizes, keyword arguments of the constructor with its defaults (the vocabularies
    come from the data; `max_len`, `pad_id` and `positions` keep theirs): a model is
    `Seq2SeqTransformer(src_vocab, tgt_vocab, **asdict(config))`."""

    d_model: int = 128
    heads: int = 4
    layers: int = 2
    d_ff: int = 256
    dropout: float = 0.1


class Seq2SeqTransformer(nn.Module):
    """Token embeddings + sinusoidal positions, an encoder stack, a decoder stack, a linear head to target logits."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 2,
        d_ff: int = 256,
        dropout: float = 0.1,
        max_len: int = 128,
        pad_id: int = 0,
        positions: bool = True,
    ) -> None:
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

        def step(token: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            prefix = torch.cat([prefix, token[:, None]], dim=1)  # (b, t): BOS and every word written so far
            return self.decode(prefix, memory, src)[:, -1], prefix

        start = torch.empty(src.shape[0], 0, dtype=torch.long, device=src.device)
        return greedy_decode(
            step,
            start,
            batch=src.shape[0],
            bos_id=bos_id,
            eos_id=eos_id,
            max_len=max_len,
            pad_id=self.pad_id,
            device=src.device,
        )
