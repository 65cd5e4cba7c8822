"""Lesson 13: the prior, a small diffusion model over CLIP image embeddings conditioned on a caption's embedding
(trained in course_lib.multimodal.text_to_image)."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.models.unet import TimeEmbedding


class Prior(nn.Module):
    """(x_t (b, e), t (b,), text embedding (b, e)) -> the predicted clean image embedding (b, e): an MLP on the
    sum of three projections (noisy embedding, time, caption)."""

    def __init__(self, embed: int = 64, width: int = 256, steps: int = 100) -> None:
        super().__init__()
        self.time = TimeEmbedding(steps, width)
        self.noisy, self.text = nn.Linear(embed, width), nn.Linear(embed, width)
        self.body = nn.Sequential(
            nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, embed)
        )
        self.steps = steps

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.body(self.noisy(x_t) + self.time(t) + self.text(text))
