"""Lesson 08: a variational autoencoder for 8x8 digits whose pixels are counts 0..16.

The encoder maps an image (and, for the conditional variant, its label) to the mean and log-variance of a
Gaussian over the latent code; the decoder maps a code (and the label) to one logit per pixel, the success
probability of a Binomial(16, p) per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VAEConfig:
    latent: int = 16
    hidden: int = 256
    classes: int = 0  # 10 for the class-conditional variant, 0 for the plain VAE
    pixels: int = 64


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, outputs)
    )


class VAE(nn.Module):
    """encode(x) -> (mu, logvar) of q(z | x); decode(z) -> pixel logits of p(x | z); labels join both when
    `config.classes` > 0."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = mlp(c.pixels + c.classes, c.hidden, 2 * c.latent)
        self.decoder = mlp(c.latent + c.classes, c.hidden, c.pixels)

    def _with_label(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.config.classes == 0:
            return x
        if labels is None:
            raise ValueError("this VAE is class-conditional: pass the labels")
        return torch.cat([x, F.one_hot(labels, self.config.classes).to(x.dtype)], dim=-1)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (b, 64) in [0, 1] -> mu, logvar (b, latent)."""
        mu, logvar = self.encoder(self._with_label(x, labels)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (..., b, latent) -> logits (..., b, 64) of each pixel's Binomial(16, sigmoid(logit))."""
        if self.config.classes and labels is not None:
            labels = labels.expand(z.shape[:-1])
        return self.decoder(self._with_label(z, labels))
