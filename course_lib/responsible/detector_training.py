"""Lesson 18: training the detector of generated images (`models.detector`) to tell real digits (or lesson 13's
rendered pictures) from one generator's or several generators' samples, and its scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib.device import seeded
from course_lib.models.detector import Detector
from course_lib.train import Optimisation, optimise

LEVELS = 16  # a real digit's pixel is a count 0..16 over 16


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] rounded to the 17 values a real digit's pixels take (k / 16)."""
    return (images.clamp(0, 1) * LEVELS).round() / LEVELS


@dataclass(frozen=True, kw_only=True)
class DetectorTraining(Optimisation):
    """Adam at a constant rate (AdamW with no decay), balanced batches: half real, half generated."""

    steps: int = 800
    batch: int = 128
    lr: float = 2e-3
    warmup: int = 0
    min_lr_ratio: float = 1.0


def balanced_batches(real: torch.Tensor, fake: torch.Tensor, batch: int, seed: int):
    """Endless batches of batch // 2 random real images (label 0) and as many generated ones (label 1)."""
    g = torch.Generator().manual_seed(seed)
    half = batch // 2
    labels = torch.cat([torch.zeros(half), torch.ones(half)])
    while True:
        real_picks = real[torch.randint(len(real), (half,), generator=g)]
        fake_picks = fake[torch.randint(len(fake), (half,), generator=g)]
        yield torch.cat([real_picks, fake_picks]), labels


def train_detector(real: torch.Tensor, fake: torch.Tensor, t: DetectorTraining = DetectorTraining()) -> Detector:
    """A Detector trained to give `fake` images a high logit and `real` ones a low one: -> eval mode. Grey images
    are (n, side, side), colour ones (n, channels, side, side)."""
    channels = 1 if real.dim() == 3 else real.shape[1]
    with seeded(t.seed):
        model = Detector(channels, real.shape[-1])
    optimise(
        model,
        balanced_batches(real, fake, t.batch, t.seed),
        lambda m, batch: F.binary_cross_entropy_with_logits(m(batch[0]), batch[1]),
        t,
        progress=False,
    )
    return model.eval()


@torch.no_grad()
def scores(model: Detector, images: torch.Tensor) -> torch.Tensor:
    """The detector's logit of "generated" for each image: (n, 8, 8) -> (n,)."""
    return model(images)
