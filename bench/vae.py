"""Lesson 08's VAE against pytorch/examples' VAE recipe, on the same digits, for the same wall time.

The anchor is pytorch/examples' `vae/main.py` model scaled to 8x8 inputs: one hidden layer of 400 (ReLU), a
20-dimensional code, a Bernoulli likelihood on pixel intensities (binary cross-entropy), Adam at 1e-3, batch 128.
Its decoder's probabilities are scored with the same Binomial(16, p) likelihood as ours (the Bernoulli loss on
count / 16 is that likelihood divided by 16, up to a constant), so both get a test NLL in nats per image,
estimated with 500 importance samples. Both train for BUDGET seconds; the NLL is measured along the way.

python bench/vae.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, matmul_peak_gflops

from course_lib import seed_everything
from course_lib.data import load_digits
from course_lib.models.vae import VAE, VAEConfig
from course_lib.train import adamw, train
from course_lib.vision import vae_training

BUDGET = 20.0  # seconds of training for each model
CHECKS = 10  # NLL measurements along the way
TARGET_BELOW_INDEPENDENT = 0.15  # the lesson's target: at least 15% fewer nats than independent pixels


class ExamplesVAE(nn.Module):
    """pytorch/examples' VAE, 784 -> 64 inputs: fc1 400, fc21/fc22 20, fc3 400, fc4 64."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(64, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 64)

    def encode(self, x: torch.Tensor, labels: None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor, labels: None = None) -> torch.Tensor:
        return self.fc4(F.relu(self.fc3(z)))  # logits; the example applies a sigmoid and a BCE loss


def examples_loss(model: ExamplesVAE, counts: torch.Tensor) -> torch.Tensor:
    x = counts / vae_training.LEVELS
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    bce = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / len(x)


def run(name: str, model: nn.Module, loss_fn, optimizer, lr_schedule, train_counts, test_counts) -> dict:
    """Train for BUDGET seconds (evaluation time excluded) with the course's loop, measuring the test NLL after each
    of CHECKS equal slices of it; -> the NLL curve and the throughput."""
    generator = torch.Generator().manual_seed(0)

    def batches():  # endless random batches of 128, the example's batch size
        while True:
            yield train_counts[torch.randint(len(train_counts), (128,), generator=generator)]

    stream, done, trained, curve = batches(), 0, 0.0, []
    for _ in range(CHECKS):
        history = train(
            model,
            stream,
            loss_fn,
            optimizer,
            steps=10**9,
            lr_schedule=None if lr_schedule is None else (lambda step, done=done: lr_schedule(done + step)),
            time_budget=BUDGET / CHECKS,
            progress=False,
        )
        done += len(history.step_loss)
        trained += history.evals[-1]["seconds"]
        curve.append((round(trained, 2), vae_training.iwae_nll(model, test_counts, samples=500).mean().item()))
    return {"name": name, "curve": curve, "images_per_s": 128 * done / trained}


def main() -> None:
    peak = matmul_peak_gflops()
    digits = load_digits()
    train_counts, test_counts = vae_training.to_counts(digits.train_images), vae_training.to_counts(digits.test_images)
    independent = vae_training.independent_pixels_nll(train_counts, test_counts)
    target = (1 - TARGET_BELOW_INDEPENDENT) * independent

    seed_everything(0)
    ours = VAE(VAEConfig())
    recipe = vae_training.RECIPES["plain"].train
    optimizer = adamw(
        ours, lr=recipe.lr, weight_decay=recipe.weight_decay, betas=recipe.betas, decay_vectors=recipe.decay_vectors
    )
    steps = [0]

    def our_loss(model: VAE, batch: torch.Tensor) -> torch.Tensor:
        steps[0] += 1  # the KL warm-up counts from 1, as vae_training.train_vae does
        return vae_training.training_loss(model, batch, None, steps[0], recipe)

    seed_everything(0)
    anchor = ExamplesVAE()
    anchor_optimizer = torch.optim.Adam(anchor.parameters(), lr=1e-3)

    runs = (
        ("course VAE", ours, our_loss, optimizer, recipe.learning_rate),
        ("pytorch/examples VAE", anchor, examples_loss, anchor_optimizer, None),
    )
    for name, model, loss_fn, model_optimizer, schedule in runs:
        result = run(name, model, loss_fn, model_optimizer, schedule, train_counts, test_counts)
        reached = next((t for t, nll in result["curve"] if nll <= target), None)
        params = sum(p.numel() for p in model.parameters())
        flops_per_image = 6 * params  # forward + backward, matmuls only
        emit(
            "vae",
            model=name,
            budget_s=BUDGET,
            test_nll_nats=round(result["curve"][-1][1], 2),
            independent_pixels_nll=round(independent, 2),
            target_nll=round(target, 2),
            seconds_to_target=reached,
            images_per_s=round(result["images_per_s"]),
            mfu=round(flops_per_image * result["images_per_s"] / 1e9 / peak, 4),
            curve=result["curve"],
            bits_per_pixel=round(result["curve"][-1][1] / 64 / math.log(2), 3),
        )


if __name__ == "__main__":
    main()
