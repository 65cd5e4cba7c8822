"""Lesson 13: training the attribute readers (course_lib.models.readers), a small CNN trained on renders of every
object (the held-out ones too) that reads a scene's six attributes back from any image, real or generated: lesson
13's judge, as course_lib.models.judge is lessons 08-11's."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.artifacts import pretrained
from course_lib.data.shapes import VERSION, make_shapes
from course_lib.device import seeded, training_generator
from course_lib.models.readers import HEADS, AttributeReader
from course_lib.train import Optimisation, TensorBatches, optimise


@dataclass(frozen=True, kw_only=True)
class ReaderTraining(Optimisation):
    steps: int = 1500
    batch: int = 128
    lr: float = 2e-3
    warmup: int = 100
    min_lr_ratio: float = 0.0  # cosine decay to 0
    weight_decay: float = 0.01
    examples: int = 24_000  # three quarters like the training split, one quarter with held-out objects
    noise: float = 0.1  # Gaussian noise of std up to this, so that imperfect samples are read too
    data: str = VERSION


RECIPE = ReaderTraining()


def reader_loss(model: AttributeReader, images: torch.Tensor, scenes: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over the attributes a scene has (-1 and a pair's size are skipped)."""
    logits = model(images)
    scenes = scenes.clone()
    scenes[scenes[:, 0] > 0, 3] = -1  # two objects: no size to read
    return sum(F.cross_entropy(logits[name], scenes[:, i], ignore_index=-1) for i, name in enumerate(HEADS))


@torch.no_grad()
def read(model: AttributeReader, images: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """images (n, 3, 16, 16) -> scenes (n, 6) in the data set's convention (-1 for a missing second object)."""
    device = next(model.parameters()).device
    out = []
    for chunk in images.split(batch):
        logits = model(chunk.to(device).clamp(0, 1))
        scenes = torch.stack([logits[name].argmax(1) for name in HEADS], dim=1).cpu()
        one = scenes[:, 0] == 0
        scenes[one, 4:] = -1
        scenes[~one, 3] = 0
        out.append(scenes)
    return torch.cat(out)


def all_right(read_scenes: torch.Tensor, asked: torch.Tensor) -> torch.Tensor:
    """(n,) bool: every attribute the caption named was read back (layout, i.e. the relation, included)."""
    return (read_scenes == asked).all(1)


def trained_readers(*, device: torch.device | str = "cpu") -> tuple[AttributeReader, dict]:
    """The readers, from the cache or trained now (about 20 s); metrics hold their accuracy on fresh renders."""
    generator = training_generator(RECIPE.seed)

    def build() -> AttributeReader:
        with seeded(RECIPE.seed):
            return AttributeReader()

    def fit(model: AttributeReader) -> dict:
        seen, held = make_shapes(RECIPE.examples * 3 // 4, "train", 10), make_shapes(RECIPE.examples // 4, "unseen", 11)
        images, scenes = torch.cat([seen.images, held.images]), torch.cat([seen.attributes, held.attributes])

        def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            x, y = batch
            std = RECIPE.noise * torch.rand(len(x), 1, 1, 1, generator=generator).to(x.device)
            return reader_loss(m, x + std * torch.randn(x.shape, generator=generator).to(x.device), y)

        with seeded(RECIPE.seed):
            history = optimise(
                model,
                TensorBatches(images, scenes, batch_size=RECIPE.batch, seed=RECIPE.seed),
                loss,
                RECIPE,
                device=next(model.parameters()).device,
                progress=False,
            )
        scores = {}
        for split, seed in (("test", 12), ("unseen", 13)):
            fresh = make_shapes(2000, split, seed)
            scores[f"all_right_{split}"] = all_right(read(model, fresh.images), fresh.attributes).float().mean().item()
        return {**scores, "seconds": history.seconds}

    return pretrained("shape-readers", build, fit, asdict(RECIPE), device=device)
