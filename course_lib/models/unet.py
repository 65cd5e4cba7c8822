"""Lessons 10, 13: the noise predictors of a diffusion model: a small U-Net for 8x8 digits and an MLP for 2-D points.

Both map (x_t, t, labels) to a prediction of the noise in x_t. The time step enters through lesson 03's
sinusoidal table and an MLP; the label through an embedding with one extra row, `classes`, meaning "no label"
(classifier-free guidance trains with the label dropped to that row some of the time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.nn.positional import sinusoidal_encoding


class TimeEmbedding(nn.Module):
    """t (b,) integers in [0, steps) -> (b, dim): the sinusoidal table, then Linear -> SiLU -> Linear."""

    def __init__(self, steps: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_encoding(steps, dim), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.table[t])


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> 3x3 conv, plus the conditioning vector as a per-channel shift, twice; a skip."""

    def __init__(self, inputs: int, outputs: int, cond: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, inputs), nn.Conv2d(inputs, outputs, 3, padding=1)
        self.cond = nn.Linear(cond, outputs)
        self.norm2, self.conv2 = nn.GroupNorm(8, outputs), nn.Conv2d(outputs, outputs, 3, padding=1)
        self.skip = nn.Conv2d(inputs, outputs, 1) if inputs != outputs else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.cond(cond)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


@dataclass(frozen=True)
class UNetConfig:
    steps: int = 200  # diffusion steps T, the size of the time table
    width: int = 32  # channels at 8x8; 4x4 has twice as many
    classes: int = 10  # the label embedding has classes + 1 rows; the last means "no label"
    channels: int = 1
    cond: int = 0  # > 0: condition on a vector of this width instead of a label (the zero vector: "none")
    coordinates: bool = False  # two extra input channels holding each pixel's x and y (CoordConv)
    cond_scale: float = 1.0  # the vector is multiplied by this first: a unit vector's d entries are about 1/sqrt(d)
    # in size, and sqrt(d) gives them unit variance, the input the layers that read it are initialised for (their
    # outputs start at the usual size, and Adam's fixed-size steps change those outputs as fast as the others')


class UNet(nn.Module):
    """x_t (b, channels, s, s), t (b,), labels (b,) or vectors (b, cond) -> predicted noise like x_t. For the 8x8
    digits: ResBlock -> down to 4x4: ResBlock, ResBlock -> up to 8x8, joined with the 8x8 skip: ResBlock -> 3x3
    conv. Lesson 13 runs the same on 16x16 colour images conditioned on CLIP embeddings."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        w, e = c.width, 4 * c.width
        self.time = TimeEmbedding(c.steps, e)
        self.label = nn.Embedding(c.classes + 1, e) if c.cond == 0 else nn.Linear(c.cond, e)
        self.stem = nn.Conv2d(c.channels + 2 * c.coordinates, w, 3, padding=1)
        self.down_block = ResBlock(w, w, e)
        self.down = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)  # 8 -> 4
        self.middle = nn.ModuleList([ResBlock(2 * w, 2 * w, e), ResBlock(2 * w, 2 * w, e)])
        if c.cond:  # the vector also as a coarse map: it can say where things go, not only what they are
            self.where = nn.Sequential(
                nn.Linear(c.cond, e), nn.SiLU(), nn.Linear(e, 2 * w * 16), nn.Unflatten(1, (2 * w, 4, 4))
            )
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, padding=1))  # 4 -> 8
        self.up_block = ResBlock(2 * w, w, e)
        self.out = nn.Sequential(nn.GroupNorm(8, w), nn.SiLU(), nn.Conv2d(w, c.channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.cond:
            labels = labels * self.config.cond_scale  # (b, cond)
        cond = self.time(t) + self.label(labels)
        if self.config.coordinates:  # where each pixel is: convolutions alone only see it near the borders
            side = torch.linspace(-1, 1, x.shape[-1], device=x.device)
            grid = torch.stack(torch.meshgrid(side, side, indexing="ij")).expand(len(x), -1, -1, -1)
            x = torch.cat([x, grid], dim=1)
        skip = self.down_block(self.stem(x), cond)  # (b, w, 8, 8)
        h = self.down(skip)  # (b, 2w, s/2, s/2)
        if self.config.cond:
            h = h + F.interpolate(self.where(labels), size=h.shape[-2:])
        for block in self.middle:
            h = block(h, cond)
        h = torch.cat([self.up(h), skip], dim=1)  # (b, 2w, 8, 8)
        return self.out(self.up_block(h, cond))


class PointDenoiser(nn.Module):
    """The 2-D warm-up's noise predictor: x_t (b, 2), t (b,), labels ignored -> (b, 2); an MLP of width 128."""

    def __init__(self, steps: int, width: int = 128) -> None:
        super().__init__()
        self.time = TimeEmbedding(steps, width)
        self.inp = nn.Linear(2, width)
        self.body = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU())
        self.out = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.body(self.inp(x) + self.time(t)))
