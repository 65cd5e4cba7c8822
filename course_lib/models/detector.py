"""Lesson 18: the detector of generated digits, a small CNN that reads an 8x8 digit and says how likely it is
to be generated."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Detector(nn.Module):
    """(n, 8, 8) in [0, 1] -> (n,) logits of "generated": two 3x3 convolutions (16 and 32 channels, ReLU, the
    second with stride 2 to 4x4), then a linear read-out of the 512 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.head = nn.Linear(32 * 4 * 4, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(images[:, None] * 2 - 1))  # (n, 16, 8, 8), pixels centred on 0
        x = F.relu(self.conv2(x))  # (n, 32, 4, 4)
        return self.head(x.flatten(1)).squeeze(-1)
