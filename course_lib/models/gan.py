"""Lesson 09: DCGAN-style generator and discriminator for 8x8 digits, and their progressively grown versions.

Images are (b, 1, s, s) in [-1, 1] (background -1). The class-conditional variants read the label through an
embedding: added to the generator's input, and as a projection in the discriminator (Miyato and Koyama 2018):
D(x, y) = w . h(x) + embed(y) . h(x), where h(x) are the discriminator's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GANConfig:
    noise: int = 32  # size of z
    width: int = 64  # channels of the widest convolution
    classes: int = 0  # 10 for the class-conditional GAN
    minibatch_std: bool = True  # the discriminator sees the batch's spread (Karras et al. 2018): against collapse


class Generator(nn.Module):
    """z (b, noise) [+ labels (b,)] -> images (b, 1, 8, 8) in [-1, 1]: 2x2 -> 4x4 -> 8x8, each step an upsampling
    and a 3x3 convolution with batch norm and ReLU (DCGAN), then a 3x3 convolution to one channel and tanh."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = c = config
        self.label_embedding = nn.Embedding(c.classes, c.noise) if c.classes else None
        self.project = nn.Sequential(nn.Linear(c.noise, 2 * c.width * 4), nn.BatchNorm1d(2 * c.width * 4), nn.ReLU())
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2),  # 2x2 -> 4x4
            nn.Conv2d(2 * c.width, c.width, 3, padding=1),
            nn.BatchNorm2d(c.width),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),  # 4x4 -> 8x8
            nn.Conv2d(c.width, c.width // 2, 3, padding=1),
            nn.BatchNorm2d(c.width // 2),
            nn.ReLU(),
            nn.Conv2d(c.width // 2, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass the labels")
            z = z + self.label_embedding(labels)
        h = self.project(z).reshape(len(z), 2 * self.config.width, 2, 2)
        return self.body(h)


def minibatch_std(x: torch.Tensor) -> torch.Tensor:
    """Append one channel: the standard deviation of each feature across the batch, averaged to one number.
    A generator that makes the same image every time shows a spread of 0, which the discriminator can see."""
    spread = x.std(dim=0, unbiased=False).mean()
    return torch.cat([x, spread.expand(len(x), 1, *x.shape[2:])], dim=1)


class Discriminator(nn.Module):
    """images (b, 1, 8, 8) [+ labels] -> one logit each: real (high) or generated (low).
    3x3 conv, then two strided 4x4 convs (8 -> 4 -> 2), LeakyReLU(0.2), no batch norm (real and generated batches
    come in separate calls, and batch norm would make a verdict depend on the rest of its batch)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = c = config
        extra = 1 if c.minibatch_std else 0
        self.stem = nn.Sequential(nn.Conv2d(1, c.width // 2, 3, padding=1), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(
            nn.Conv2d(c.width // 2 + extra, c.width, 4, stride=2, padding=1),  # 8 -> 4
            nn.LeakyReLU(0.2),
            nn.Conv2d(c.width, 2 * c.width, 4, stride=2, padding=1),  # 4 -> 2
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        features = 2 * c.width * 4
        self.head = nn.Linear(features, 1)
        self.label_embedding = nn.Embedding(c.classes, features) if c.classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(images)
        if self.config.minibatch_std:
            h = minibatch_std(h)
        h = self.body(h)  # (b, features)
        logit = self.head(h).squeeze(-1)
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass the labels")
            logit = logit + (self.label_embedding(labels) * h).sum(-1)  # the projection term
        return logit


# --- progressive growing (Karras et al. 2018), in miniature: 4x4 -> 8x8 -> 16x16 ---------------------------


@dataclass(frozen=True)
class GrowingConfig:
    noise: int = 32
    width: int = 32
    resolutions: tuple[int, ...] = (4, 8, 16)


class GrowingGenerator(nn.Module):
    """z -> a 4x4 feature map, then one block (upsample, 3x3 conv, LeakyReLU) per doubling; each resolution has
    its own 1x1 `to_image` layer. At stage s with fade-in alpha the image is
    (1 - alpha) * upsample(to_image[s-1](h_{s-1})) + alpha * to_image[s](block_s(h_{s-1}))."""

    def __init__(self, config: GrowingConfig) -> None:
        super().__init__()
        self.config = c = config
        self.start = nn.Sequential(nn.Linear(c.noise, c.width * 16), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c.width, c.width, 3, padding=1), nn.LeakyReLU(0.2))
            for _ in c.resolutions[1:]
        )
        self.to_image = nn.ModuleList(nn.Conv2d(c.width, 1, 1) for _ in c.resolutions)

    def forward(self, z: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        h = self.start(z).reshape(len(z), self.config.width, 4, 4)
        previous = h
        for block in self.blocks[:stage]:
            previous, h = h, block(h)
        image = self.to_image[stage](h)
        if stage > 0 and alpha < 1.0:
            old = F.interpolate(self.to_image[stage - 1](previous), scale_factor=2, mode="nearest")
            image = (1 - alpha) * old + alpha * image
        return torch.tanh(image)


class GrowingDiscriminator(nn.Module):
    """The mirror image: a 1x1 `from_image` per resolution, one block (3x3 conv, LeakyReLU, 2x average pool) per
    halving, then minibatch spread and a linear head on the 4x4 map. During a fade-in the new block's output is
    blended with the previous resolution's `from_image` of the pooled input."""

    def __init__(self, config: GrowingConfig) -> None:
        super().__init__()
        self.config = c = config
        self.from_image = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, c.width, 1), nn.LeakyReLU(0.2)) for _ in c.resolutions
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c.width, c.width, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for _ in c.resolutions[1:]
        )
        self.head = nn.Sequential(
            nn.Conv2d(c.width + 1, c.width, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(c.width * 16, 1)
        )

    def forward(self, images: torch.Tensor, stage: int, alpha: float = 1.0) -> torch.Tensor:
        h = self.from_image[stage](images)
        if stage > 0:
            h = self.blocks[stage - 1](h)
            if alpha < 1.0:
                h = alpha * h + (1 - alpha) * self.from_image[stage - 1](F.avg_pool2d(images, 2))
            for block in reversed(self.blocks[: stage - 1]):
                h = block(h)
        return self.head(minibatch_std(h)).squeeze(-1)


class GANPair(nn.Module):
    """Both players in one module, so that one state dict (and one cache entry) holds a trained GAN."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        self.average = Generator(config)  # the moving average of the generator's weights: the one to sample
        self.average.load_state_dict(self.generator.state_dict())


class GrowingPair(nn.Module):
    def __init__(self, config: GrowingConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = GrowingGenerator(config)
        self.discriminator = GrowingDiscriminator(config)
