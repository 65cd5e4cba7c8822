"""Lesson 11: the Vision Transformer (Dosovitskiy et al. 2021): an image cut into patches, each patch a token.

patches "b c (h p1) (w p2) -> b (h w) (p1 p2 c)" -> a linear embedding -> a learned class token in front ->
learned position embeddings added -> lesson 03's encoder layers (pre-LN) -> LayerNorm -> a linear head on the
class token's final state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from course_lib.nn.transformer_layers import EncoderLayer


@dataclass(frozen=True)
class ViTConfig:
    image: int = 8  # side of the (square) input
    patch: int = 2  # side of a patch: (image / patch)^2 tokens
    channels: int = 1
    d_model: int = 64
    heads: int = 4
    layers: int = 4
    d_ff: int = 128
    classes: int = 10
    dropout: float = 0.0

    @property
    def tokens(self) -> int:
        return (self.image // self.patch) ** 2


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(b, c, H, W) -> (b, number of patches, patch * patch * c), patches in reading order (row by row)."""
    if images.shape[-1] % patch or images.shape[-2] % patch:
        raise ValueError(f"image sides {tuple(images.shape[-2:])} must be multiples of the patch size {patch}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch, p2=patch)


class ViT(nn.Module):
    """images (b, c, H, W) or (b, H, W) -> logits (b, classes)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.image % c.patch:
            raise ValueError(f"image {c.image} must be a multiple of patch {c.patch}")
        self.patch_embedding = nn.Linear(c.patch * c.patch * c.channels, c.d_model)
        self.class_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.positions = nn.Parameter(torch.randn(1, c.tokens + 1, c.d_model) * 0.02)
        self.layers = nn.ModuleList(
            EncoderLayer(c.d_model, c.heads, c.d_ff, c.dropout, norm_first=True) for _ in range(c.layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.classes)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """-> (b, 1 + tokens, d_model): the class token and the patch embeddings, positions added."""
        if images.dim() == 3:
            images = images[:, None]
        tokens = self.patch_embedding(patchify(images, self.config.patch))
        cls = self.class_token.expand(len(tokens), -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.positions

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """-> (b, d_model): the class token's final state."""
        h = self.embed(images)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h[:, 0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
