"""Lessons 10, 13: the noise predictors of a diffusion model: a small U-Net (lesson 10's 8x8 digits, lesson 13's
16x16 colour pictures) and an MLP for 2-D points.

Both map (x_t, t, conditioning) to a prediction of the noise in x_t. The time step enters through lesson 03's
sinusoidal table and an MLP. Lesson 10's label enters through an embedding with one extra row, `classes`,
meaning "no label"; lesson 13's CLIP embedding through a linear layer (the zero vector meaning "none") and
also as a coarse 4x4 map of features (`where`), with two coordinate channels beside the pixels. Classifier-free
guidance trains with the conditioning dropped to "none" some of the time.
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
    """GroupNorm -> SiLU -> 3x3 conv, plus the conditioning vector as a per-channel shift, then GroupNorm -> SiLU
    -> 3x3 conv; a skip around both."""

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
    width: int = 32  # channels at the full resolution; the half resolution has twice as many
    classes: int = 10  # the label embedding has classes + 1 rows; the last means "no label"
    channels: int = 1
    cond: int = 0  # > 0: condition on a vector of this width instead of a label (the zero vector: "none")
    coordinates: bool = False  # two extra input channels holding each pixel's x and y (CoordConv)
    cond_scale: float = 1.0  # the vector is multiplied by this first: a unit vector's d entries are about 1/sqrt(d)
    # in size, and sqrt(d) gives them unit variance, the input the layers that read it are initialised for (their
    # outputs start at the usual size, and Adam's fixed-size steps change those outputs as fast as the others')


class UNet(nn.Module):
    """x_t (b, channels, s, s), t (b,), labels (b,) or vectors (b, cond) -> predicted noise like x_t.
    ResBlock at s x s -> down to s/2: ResBlock, ResBlock -> up to s, joined with the s x s skip: ResBlock -> 3x3
    conv (s = 8 for the digits, 16 for lesson 13's pictures, conditioned on CLIP embeddings)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = c = config
        w, e = c.width, 4 * c.width
        self.time = TimeEmbedding(c.steps, e)
        self.label = nn.Embedding(c.classes + 1, e) if c.cond == 0 else nn.Linear(c.cond, e)
        self.stem = nn.Conv2d(c.channels + 2 * c.coordinates, w, 3, padding=1)
        self.down_block = ResBlock(w, w, e)
        self.down = nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)  # s -> s/2
        self.middle = nn.ModuleList([ResBlock(2 * w, 2 * w, e), ResBlock(2 * w, 2 * w, e)])
        if c.cond:  # the vector also as a coarse map: it can say where things go, not only what they are
            self.where = nn.Sequential(
                nn.Linear(c.cond, e), nn.SiLU(), nn.Linear(e, 2 * w * 16), nn.Unflatten(1, (2 * w, 4, 4))
            )
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, padding=1))  # s/2 -> s
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
        skip = self.down_block(self.stem(x), cond)  # (b, w, s, s)
        h = self.down(skip)  # (b, 2w, s/2, s/2)
        if self.config.cond:
            h = h + F.interpolate(self.where(labels), size=h.shape[-2:])
        for block in self.middle:
            h = block(h, cond)
        h = torch.cat([self.up(h), skip], dim=1)  # (b, 2w, s, s)
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
