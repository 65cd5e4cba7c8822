"""Lessons 01, 03: the recurrent encoder-decoder, with and without additive (Bahdanau) attention; lesson 03
compares the Transformer with it.

Without attention the decoder sees the source only through one fixed-size vector, the encoder's
final state; with attention it re-reads every encoder state at every step, weighted by
alpha_j = softmax_j(v^T tanh(W_q s + W_k h_j)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.nn.attention import AdditiveAttention
from course_lib.nn.greedy import greedy_decode


@dataclass(frozen=True)
class Seq2SeqGRUConfig:
    """The recurrent translator's sizes, the constructor's keyword arguments (its defaults too): the vocabularies
    come from the data, so a model is `Seq2SeqGRU(src_vocab, tgt_vocab, **asdict(config))`."""

    embed: int = 64
    hidden: int = 128
    attention: bool = True


class Seq2SeqGRU(nn.Module):
    """Bidirectional GRU encoder, GRU decoder; `attention=False` gives the fixed-context model of 2014."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        embed: int = 64,
        hidden: int = 128,
        attention: bool = True,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.pad_id, self.attention = pad_id, attention
        self.src_embed = nn.Embedding(src_vocab, embed, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed, padding_idx=pad_id)
        self.encoder = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)  # encoder summary -> decoder's first state
        self.attend = AdditiveAttention(hidden, 2 * hidden, hidden) if attention else None
        self.decoder = nn.GRUCell(embed + 2 * hidden, hidden)
        self.out = nn.Linear(hidden + 2 * hidden + embed, tgt_vocab)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (b, s) -> encoder states (b, s, 2h), first decoder state (b, h), source mask (b, s)."""
        mask = src != self.pad_id
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths, batch_first=True, enforce_sorted=False)
        states, last = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([last[0], last[1]], dim=-1)  # forward and backward final states (b, 2h)
        return states, torch.tanh(self.bridge(summary)), mask

    def step(
        self,
        token: torch.Tensor,
        hidden: torch.Tensor,
        states: torch.Tensor,
        mask: torch.Tensor,
        fixed_context: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder step: token (b,) -> logits (b, V), new hidden (b, h), attention weights (b, s) or None."""
        emb = self.tgt_embed(token)  # (b, e)
        if self.attend is not None:
            context, weights = self.attend(hidden, states, mask)  # (b, 2h), (b, s)
        else:
            context, weights = fixed_context, None
        hidden = self.decoder(torch.cat([emb, context], dim=-1), hidden)
        return self.out(torch.cat([hidden, context, emb], dim=-1)), hidden, weights

    def _fixed_context(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = states.shape[-1] // 2
        last = mask.sum(dim=1) - 1  # index of each row's last real token
        forward_last = states[torch.arange(states.shape[0]), last, :h]
        return torch.cat([forward_last, states[:, 0, h:]], dim=-1)  # (b, 2h): both directions' summaries

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tgt_in (b, t) starts with BOS -> logits (b, t, V)."""
        states, hidden, mask = self.encode(src)
        fixed = self._fixed_context(states, mask)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, hidden, _ = self.step(tgt_in[:, t], hidden, states, mask, fixed)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, bos_id: int, eos_id: int, max_len: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> token ids (b, <= max_len) and attention weights (b, <= max_len, s) (None without attention)."""
        states, hidden, mask = self.encode(src)
        fixed = self._fixed_context(states, mask)
        alignments = []

        def step(token: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, hidden, weights = self.step(token, hidden, states, mask, fixed)
            if weights is not None:
                alignments.append(weights)
            return logits, hidden

        tokens = greedy_decode(
            step,
            hidden,
            batch=src.shape[0],
            bos_id=bos_id,
            eos_id=eos_id,
            max_len=max_len,
            pad_id=self.pad_id,
            device=src.device,
        )
        return tokens, (torch.stack(alignments, dim=1) if alignments else None)
