"""Lessons 08-11: the judge, a small CNN that reads 8x8 digits; trained once (course_lib.vision.judge_training), it
scores every image generator of lessons 08-10 and is lesson 11's convolutional baseline."""

from __future__ import annotations

import torch
from torch import nn


class Judge(nn.Module):
    """A small CNN on (b, 8, 8) images in [0, 1]: two 3x3 convolutions, a pool, 128 features, 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (b, 64, 4, 4)
            nn.Flatten(),
            nn.Linear(64 * 16, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(b, 8, 8) -> (b, 128): the penultimate layer, where the Frechet distance is measured."""
        if images.dim() != 3 or images.shape[1:] != (8, 8):
            raise ValueError(f"the judge reads (b, 8, 8) images in [0, 1], got {tuple(images.shape)}")
        return self.body(images[:, None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
