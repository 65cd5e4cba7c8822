"""Lesson 18: the detector of generated images, a small CNN that reads a picture (an 8x8 digit, or a 16x16 colour
picture of lesson 13) and says how likely it is to be generated."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Detector(nn.Module):
    """(n, side, side) grey or (n, channels, side, side) images in [0, 1] -> (n,) logits of "generated": two 3x3
    convolutions (16 and 32 channels, ReLU, the second with stride 2 to half the side), then a linear read-out of
    the 32 x (side / 2)^2 features."""

    def __init__(self, channels: int = 1, side: int = 8) -> None:
        super().__init__()
        if side % 2:
            raise ValueError(f"side must be even (the second convolution halves it), got {side}")
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.head = nn.Linear(32 * (side // 2) ** 2, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images[:, None] if images.dim() == 3 else images  # (n, channels, side, side)
        x = F.relu(self.conv1(x * 2 - 1))  # pixels centred on 0
        x = F.relu(self.conv2(x))  # (n, 32, side / 2, side / 2)
        return self.head(x.flatten(1)).squeeze(-1)
