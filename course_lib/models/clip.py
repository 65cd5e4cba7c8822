"""Lesson 12: CLIP (Radford et al. 2021) in miniature: an image tower (lesson 11's ViT) and a text tower (a small
Transformer encoder), each ending in a linear projection to a shared space where matching pairs point the same way.

logits[i, j] = exp(s) * <image_i, text_j>, both embeddings L2-normalised, s = log(1 / temperature) learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.vit import ViT, ViTConfig
from course_lib.nn.transformer_layers import EncoderLayer


@dataclass(frozen=True)
class CLIPConfig:
    image: int = 16
    patch: int = 4  # 16 patches of 4x4
    channels: int = 3
    vocab: int = 17
    max_tokens: int = 9
    d_model: int = 64
    heads: int = 4
    layers: int = 3  # in each tower
    d_ff: int = 128
    embed: int = 64  # the shared space
    temperature: float = 0.07  # CLIP's initial temperature: logit scale 1 / 0.07 = 14.3
    max_logit_scale: float = 100.0  # CLIP's clamp on exp(s), for the stability of training


class TextTower(nn.Module):
    """tokens (b, t), <pad> = 0 -> (b, d_model): token embeddings plus learned positions, pre-LN encoder layers
    that do not attend to padding, a LayerNorm; the features are read at each caption's <eos> (its last token)."""

    def __init__(self, c: CLIPConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(c.vocab, c.d_model)
        nn.init.normal_(self.tokens.weight, std=0.02)  # as CLIP: N(0, 1) tokens would drown the positions (std 0.01)
        self.positions = nn.Parameter(torch.randn(1, c.max_tokens, c.d_model) * 0.01)
        self.layers = nn.ModuleList(EncoderLayer(c.d_model, c.heads, c.d_ff, norm_first=True) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        real = tokens != 0  # (b, t)
        lengths = real.sum(1)
        if (lengths == 0).any():
            raise ValueError("every caption needs at least one token (its <eos>)")
        h = self.tokens(tokens) + self.positions[:, : tokens.shape[1]]
        mask = real[:, None, None, :]  # (b, 1, 1, t): keys that are real tokens
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h[torch.arange(len(tokens)), lengths - 1])


class CLIP(nn.Module):
    """images (b, 3, 16, 16), tokens (b', t) -> logits (b, b'): the scaled cosine similarity of every pair."""

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = c = config
        # the ViT's classification head is the image projection: d_model -> embed
        self.image_tower = ViT(
            ViTConfig(c.image, c.patch, c.channels, c.d_model, c.heads, c.layers, c.d_ff, classes=c.embed)
        )
        self.text_tower = TextTower(c)
        self.text_projection = nn.Linear(c.d_model, c.embed, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / c.temperature)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """-> (b, embed), unit length."""
        return F.normalize(self.image_tower(images), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """-> (b, embed), unit length."""
        return F.normalize(self.text_projection(self.text_tower(tokens)), dim=-1)

    def scale(self) -> torch.Tensor:
        """exp(s), clamped at max_logit_scale (no gradient beyond it)."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.scale() * self.encode_image(images) @ self.encode_text(tokens).T
