"""Lesson 13: the attribute readers, a small CNN that reads a scene's six attributes back from any image (trained in
course_lib.multimodal.reader_training)."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.data.shapes import COLOURS, LAYOUTS, SHAPES, SIZES

HEADS = {
    "layout": len(LAYOUTS),
    "colour_a": len(COLOURS),
    "shape_a": len(SHAPES),
    "size": len(SIZES),
    "colour_b": len(COLOURS),
    "shape_b": len(SHAPES),
}


class AttributeReader(nn.Module):
    """images (b, 3, 16, 16) in [0, 1] -> {attribute: logits (b, choices)} for the six attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # 8x8
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),  # 4x4
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 16, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, sum(HEADS.values()))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"the readers take (b, 3, H, W) images in [0, 1], got {tuple(images.shape)}")
        return dict(zip(HEADS, self.head(self.body(images)).split(list(HEADS.values()), dim=1)))
