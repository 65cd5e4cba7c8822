"""Lesson 07: BERT, a Transformer encoder pretrained to fill in masked tokens, then reused for other tasks.

The encoder is lesson 03's `EncoderLayer` (pre-LN) over token + learned position embeddings. The
masked-LM head (a dense layer, GELU, LayerNorm, then logits through the tied token embedding) and the
classifier head (a linear layer on the mean of the non-padding positions) sit on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.nn.transformer_layers import EncoderLayer

IGNORE = -100  # label of positions the loss skips (the value F.cross_entropy ignores by default)


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    max_len: int = 64
    layers: int = 3
    heads: int = 4
    d_model: int = 128
    dropout: float = 0.1


class BertEncoder(nn.Module):
    """ids (b, t) and a padding mask (b, t), True at real tokens -> hidden states (b, t, d_model)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, d)
        self.pos_emb = nn.Embedding(config.max_len, d)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d, config.heads, 4 * d, config.dropout, norm_first=True) for _ in range(config.layers)
        )
        self.ln_f = nn.LayerNorm(d)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.config.max_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_len={self.config.max_len}")
        x = self.drop(self.tok_emb(ids) + self.pos_emb(torch.arange(t, device=ids.device)))
        mask = None if pad_mask is None else pad_mask[:, None, None, :]  # (b, 1, 1, t): every query sees real keys
        for layer in self.layers:
            x = layer(x, mask)
        return self.ln_f(x)


class MaskedLM(nn.Module):
    """The encoder and the masked-LM head: ids (b, t) -> logits (b, t, vocab)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.encoder = BertEncoder(config)
        d = config.d_model
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(
        self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None, at: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`at` (bool, like ids) keeps only those positions: -> logits (n, vocab) for the n True ones, in row order.
        Training needs logits only where tokens were masked; skipping the vocabulary projection elsewhere is
        most of a step's work when the vocabulary is large."""
        h = self.encoder(ids, pad_mask)  # (b, t, d)
        if at is not None:
            if at.shape != ids.shape or at.dtype != torch.bool:
                raise ValueError(
                    f"`at` must be a bool tensor shaped like ids {tuple(ids.shape)}, got {at.dtype} {tuple(at.shape)}"
                )
            h = h[at]  # (n, d)
        return self.transform(h) @ self.encoder.tok_emb.weight.T + self.bias  # tied output layer


def mean_pool(hidden: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real positions: hidden (b, t, d), pad_mask (b, t) True at real tokens -> (b, d)."""
    weights = pad_mask.to(hidden.dtype)[..., None]  # (b, t, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class Classifier(nn.Module):
    """An encoder (pretrained or fresh) and a linear layer on its mean-pooled output: -> logits (b, classes)."""

    def __init__(self, encoder: BertEncoder, classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.d_model, classes)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        return self.head(mean_pool(self.encoder(ids, pad_mask), pad_mask))


class ClozeClassifier(nn.Module):
    """Classification as the pretraining task: each input ends in one <mask>, and the logits of class c are the
    masked-LM's logits of the word `label_ids[c]` there (for "is it a question?": "." and "?"). The head is the
    pretrained one, so the model can answer before it has seen a single label (Schick & Schuetze 2021).
    ids (b, t) with exactly one mask_id per row -> logits (b, classes)."""

    def __init__(self, masked_lm: MaskedLM, label_ids: list[int], mask_id: int) -> None:
        super().__init__()
        self.masked_lm, self.mask_id = masked_lm, mask_id
        self.register_buffer("label_ids", torch.tensor(label_ids), persistent=False)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        at = ids == self.mask_id
        if not (at.sum(1) == 1).all():
            raise ValueError(f"every row needs exactly one <mask> (id {self.mask_id}); got counts {at.sum(1).tolist()}")
        return self.masked_lm(ids, pad_mask, at=at)[:, self.label_ids]


def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    p: float = 0.15,
    maskable: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's recipe: choose each position with probability p; of those, 80% become mask_id, 10% a random token,
    10% stay. -> (inputs, labels), labels = the original id at chosen positions and IGNORE elsewhere.

    Random numbers are drawn in a fixed order (choice, action, random tokens), each over ids' shape, so a
    generator seed reproduces the masking exactly. `maskable` (bool, like ids) excludes e.g. padding.
    """
    chosen = torch.rand(ids.shape, generator=generator) < p
    if maskable is not None:
        chosen &= maskable
    action = torch.rand(ids.shape, generator=generator)
    random_tokens = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the chosen positions only: logits (b, t, V), labels (b, t) with IGNORE elsewhere."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
