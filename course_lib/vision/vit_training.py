"""Lesson 11: training a ViT and a small CNN on the same digits and budget, and reading what the ViT learned
(patch filters, position similarity, attention distance by layer, attention rollout)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data.digits import Digits
from course_lib.device import seeded, training_generator
from course_lib.models.judge import Judge
from course_lib.models.vit import ViT, ViTConfig
from course_lib.nn.attention import record_attention
from course_lib.train import Optimisation, TensorBatches, optimise
from course_lib.vision.judge_training import random_shift


@dataclass(frozen=True, kw_only=True)
class ClassifierTraining(Optimisation):
    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.01  # cosine decay to lr / 100
    weight_decay: float = 0.05
    shift: int = 0  # random shifts of up to this many pixels (0: no augmentation)


def data_fraction(digits: Digits, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `fraction` (at least 10 digits) of a seeded shuffle of the training digits. Not stratified:
    at 10% with seed 0 each class appears 10 to 18 times."""
    order = torch.randperm(len(digits.train_labels), generator=torch.Generator().manual_seed(seed))
    keep = order[: max(10, round(fraction * len(order)))]
    return digits.train_images[keep], digits.train_labels[keep]


def build(kind: str, seed: int = 0) -> nn.Module:
    """The lesson's ViT (kind "vit": patches 2x2, 4 layers of width 64) or the judge's CNN (kind "cnn")."""
    with seeded(seed):
        if kind == "vit":
            return ViT(ViTConfig())
        if kind == "cnn":
            return Judge()
    raise ValueError(f"kind must be 'vit' or 'cnn', got {kind!r}")


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    test: Digits | tuple[torch.Tensor, torch.Tensor],
    t: ClassifierTraining,
) -> dict:
    """Train with AdamW, warm-up and cosine decay, optional random shifts (8x8 digits only); `test` is the digits
    (their test split is used) or (images, labels). -> {"test_accuracy", "seconds"}."""
    test_images, test_labels = (test.test_images, test.test_labels) if isinstance(test, Digits) else test
    device = next(model.parameters()).device
    generator = training_generator(t.seed)

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        if t.shift:
            x = random_shift(x, t.shift, generator)
        return F.cross_entropy(m(x), y)

    start = time.perf_counter()
    with seeded(t.seed):
        optimise(
            model,
            TensorBatches(images, labels, batch_size=min(t.batch, len(images)), seed=t.seed),
            loss,
            t,
            device=device,
            progress=False,
        )
    with torch.no_grad():
        predicted = model(test_images.to(device)).argmax(-1).cpu()
    return {
        "test_accuracy": (predicted == test_labels).float().mean().item(),
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def attention_maps(model: ViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention weights on a batch: a list of (b, heads, 1 + tokens, 1 + tokens)."""
    with record_attention(model) as maps:
        model(images)
    return [maps[f"layers.{i}.self_attn"] for i in range(len(model.layers))]


def attention_rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """Abnar and Zuidema (2020): average the heads, add the residual path (0.5 A + 0.5 I), multiply the layers'
    matrices from the first to the last. -> (b, 1 + tokens, 1 + tokens): how much each final token draws on
    each input token through all layers."""
    rolled = None
    for weights in maps:
        a = weights.mean(dim=1)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], device=a.device)
        rolled = a if rolled is None else a @ rolled
    return rolled


def attention_distance(maps: list[torch.Tensor], grid: int, patch: int) -> torch.Tensor:
    """Mean distance in pixels between a patch and the patches it attends to, weighted by attention, per layer
    and head (the class token left out): (layers, heads). Small: local, like a convolution; large: global."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch  # (tokens, 2)
    distance = torch.cdist(centres, centres)  # (tokens, tokens)
    out = []
    for weights in maps:
        patches = weights[:, :, 1:, 1:]  # (b, heads, tokens, tokens)
        patches = patches / patches.sum(-1, keepdim=True)
        out.append((patches * distance).sum(-1).mean(dim=(0, 2)))
    return torch.stack(out)
