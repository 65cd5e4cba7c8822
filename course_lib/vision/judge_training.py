"""Lessons 08-10: one yardstick for every image generator, a judge network trained once on the real digits.

From the judge come four numbers that compare a VAE, a GAN and a diffusion model on the same footing:
- judge accuracy: class-conditional samples that the judge reads as the class they were asked for;
- Frechet distance between the judge's penultimate features of samples and of real training digits (the
  Frechet Inception Distance of Heusel et al. 2017, with our judge in place of Inception), next to two real-data
  references: the test digits (new digits from the true distribution) and the training digits themselves in
  class-balanced chunks (what a copy of the training set would score). Neither is a floor: the features and the
  reference set come from the training digits, 300 images a chunk leave a sampling bias that grows with their
  spread, and class-balanced samples escape part of it, so samples can score below the test digits;
- coverage: the entropy of the judge's label histogram of samples, divided by log 10 (1: every digit equally);
- memorisation: the share of samples closer to a training image than 95% of real test images are (real test
  digits score 0.05 by construction; a model that copies its training set scores near 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.artifacts import pretrained
from course_lib.data.digits import Digits, load_digits
from course_lib.device import seeded, training_generator
from course_lib.models.judge import Judge
from course_lib.train import TensorBatches, adamw, fit


@dataclass(frozen=True)
class JudgeTraining:
    epochs: int = 40
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    shift: int = 1  # random shifts of up to this many pixels: the judge must read imperfect samples too
    seed: int = 0


RECIPE = JudgeTraining()


def random_shift(images: torch.Tensor, most: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `most` pixels in x and y, the uncovered border filled with 0 (background)."""
    padded = F.pad(images, (most, most, most, most))
    dx, dy = torch.randint(0, 2 * most + 1, (2, len(images)), generator=generator).to(images.device)
    rows = torch.arange(8, device=images.device)[None, :, None] + dy[:, None, None]  # (b, 8, 1)
    cols = torch.arange(8, device=images.device)[None, None, :] + dx[:, None, None]  # (b, 1, 8)
    return padded[torch.arange(len(images), device=images.device)[:, None, None], rows, cols]


def _train(model: Judge, digits: Digits, recipe: JudgeTraining) -> dict:
    generator = training_generator(recipe.seed)
    device = next(model.parameters()).device

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(m(random_shift(images, recipe.shift, generator)), labels)

    batches = TensorBatches(digits.train_images, digits.train_labels, batch_size=recipe.batch, seed=recipe.seed)
    with seeded(recipe.seed):
        optimizer = adamw(model, lr=recipe.lr, weight_decay=recipe.weight_decay)
        history = fit(model, batches, loss, optimizer, epochs=recipe.epochs, device=device, progress=False)
    model.eval()
    with torch.no_grad():
        predicted = model(digits.test_images.to(device)).argmax(-1).cpu()
    return {"test_accuracy": (predicted == digits.test_labels).float().mean().item(), "seconds": history.seconds}


def trained_judge(*, device: torch.device | str = "cpu", recipe: JudgeTraining = RECIPE) -> tuple[Judge, dict]:
    """The judge, from the cache or trained now (seconds); -> (judge in eval mode, {"test_accuracy", "seconds"})."""
    digits = load_digits()

    def build() -> Judge:
        with seeded(recipe.seed):
            return Judge()

    return pretrained("digit-judge", build, lambda m: _train(m, digits, recipe), asdict(recipe), device=device)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (n, d):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)

    def sqrt_psd(m: torch.Tensor) -> torch.Tensor:
        values, vectors = torch.linalg.eigh((m + m.T) / 2)
        return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T

    root_a = sqrt_psd(cov_a)
    cross = sqrt_psd(root_a @ cov_b @ root_a)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a + cov_b - 2 * cross))


def nearest_distances(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each image (n, 8, 8), the Euclidean pixel distance to its nearest reference image: (n,)."""
    return torch.cdist(images.flatten(1).double(), reference.flatten(1).double()).min(dim=1).values.float()


class Yardstick:
    """The four numbers of the module docstring, for any batch of generated (b, 8, 8) images in [0, 1]."""

    def __init__(self, judge: Judge | None = None, digits: Digits | None = None) -> None:
        self.judge = judge if judge is not None else trained_judge()[0]
        self.judge = self.judge.cpu().eval()
        self.digits = digits if digits is not None else load_digits()
        self.train_features = self.features(self.digits.train_images)
        test_nearest = nearest_distances(self.digits.test_images, self.digits.train_images)
        self.copy_threshold = float(torch.quantile(test_nearest, 0.05))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.judge.features(chunk.cpu().float()) for chunk in images.split(512)])

    @torch.no_grad()
    def labels(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.judge(chunk.cpu().float()).argmax(-1) for chunk in images.split(512)])

    def frechet(self, images: torch.Tensor) -> float:
        """Frechet distance of the images' judge features from the real training digits', at the test digits'
        sample size: the distance is biased upwards for small samples, so more images are scored as chunks of as
        many as there are test digits, and the chunks' distances averaged."""
        size = len(self.digits.test_images)
        if len(images) < size:
            raise ValueError(f"score at least {size} images (the test digits' sample size), got {len(images)}")
        chunks = [images[i : i + size] for i in range(0, len(images) - size + 1, size)]
        return sum(frechet_distance(self.features(c), self.train_features) for c in chunks) / len(chunks)

    def test_reference(self) -> float:
        """The same distance for the real test digits: what new digits from the true distribution score."""
        return self.frechet(self.digits.test_images)

    def copy_reference(self) -> float:
        """The same distance for the real training digits themselves, in chunks that hold every digit equally often,
        as the class-conditional samples of lessons 08-10 do: what a class-balanced copy of the training set scores.
        The test digits differ from it in three ways, not measured apart: they are new digits, their classes are
        unequal (25 to 33 of each), and they are not the reference set's own images."""
        size = len(self.digits.test_images)
        per_class = size // 10
        g = torch.Generator().manual_seed(0)
        by_class = [torch.nonzero(self.digits.train_labels == k).flatten() for k in range(10)]
        by_class = [index[torch.randperm(len(index), generator=g)] for index in by_class]
        chunks = min(len(index) for index in by_class) // per_class
        order = torch.cat([index[i * per_class : (i + 1) * per_class] for i in range(chunks) for index in by_class])
        return self.frechet(self.digits.train_images[order])

    def judge_accuracy(self, images: torch.Tensor, asked: torch.Tensor) -> float:
        """Share of class-conditional samples the judge reads as the class they were asked for."""
        return (self.labels(images) == asked.cpu()).float().mean().item()

    def coverage(self, images: torch.Tensor) -> float:
        """Entropy of the judge's label histogram / log 10: 1.0 when every digit is equally common."""
        counts = torch.bincount(self.labels(images), minlength=10).float()
        p = counts / counts.sum()
        return float(-(p[p > 0] * p[p > 0].log()).sum() / math.log(10))

    def memorisation(self, images: torch.Tensor) -> float:
        """Share of samples nearer to a training image than 95% of real test images are (0.05 for real data)."""
        return (nearest_distances(images.cpu(), self.digits.train_images) < self.copy_threshold).float().mean().item()

    def report(self, images: torch.Tensor, asked: torch.Tensor | None = None) -> dict[str, float]:
        """All four numbers (judge accuracy only when the samples were asked for classes)."""
        if images.dim() != 3 or images.shape[1:] != (8, 8):
            raise ValueError(f"samples must be (n, 8, 8) in [0, 1], got {tuple(images.shape)}")
        row = {
            "frechet": self.frechet(images),
            "coverage": self.coverage(images),
            "memorised": self.memorisation(images),
        }
        if asked is not None:
            row["judge_accuracy"] = self.judge_accuracy(images, asked)
        return row
