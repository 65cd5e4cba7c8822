"""Lesson 09's GAN recipe against the DCGAN recipe of pytorch/examples, on the same nets and the same digits.

Both train the lesson's class-conditional generator and discriminator for BUDGET seconds. The anchor uses
pytorch/examples' `dcgan/main.py` settings (Adam at 2e-4, betas (0.5, 0.999), the raw generator sampled, no
minibatch standard deviation); ours is `vision.gan_training.RECIPES["conditional"]` (Adam at 5e-4, betas (0.5, 0.99),
minibatch standard deviation, an exponential moving average of the generator's weights). The Frechet distance
of 600 samples is measured along the way (evaluation time excluded); the target is the lesson's, at most 3x
the real test digits' distance (the test reference), and a stricter one, 1.5x.

python bench/gan.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, matmul_peak_gflops

from course_lib import seed_everything
from course_lib.data import load_digits
from course_lib.models.gan import GANConfig, GANPair
from course_lib.vision import gan_training
from course_lib.vision.judge_training import Yardstick

BUDGET = 40.0  # seconds of training for each recipe
TARGET_TIMES_REFERENCE = 3.0


def step_flops(pair: GANPair, batch: int) -> int:
    """FLOPs of one discriminator step and one generator step, counted by PyTorch."""
    z, labels = torch.randn(batch, pair.config.noise), torch.randint(0, 10, (batch,))
    real = torch.rand(batch, 1, 8, 8) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        fake = pair.generator(z, labels)
        gan_training.discriminator_loss(
            pair.discriminator(real, labels), pair.discriminator(fake.detach(), labels)
        ).backward()
        gan_training.generator_loss(pair.discriminator(fake, labels)).backward()
    pair.zero_grad()
    return counter.get_total_flops()


def run(name: str, config: GANConfig, training: gan_training.GANTraining, yardstick: Yardstick, digits) -> dict:
    seed_everything(0)
    pair = GANPair(config)
    flops = step_flops(pair, training.batch)
    asked = torch.arange(600) % 10
    curve, spent = [], {"eval": 0.0, "start": time.perf_counter()}

    def meter(generator) -> dict:
        start = time.perf_counter()
        distance = yardstick.frechet(gan_training.sample_gan(generator, 600, asked, seed=1))
        trained = start - spent["start"] - spent["eval"]
        curve.append((round(trained, 1), round(distance, 2)))
        spent["eval"] += time.perf_counter() - start
        return {"frechet": distance}

    gan_training.train_gan(
        pair.generator,
        pair.discriminator,
        digits.train_images,
        digits.train_labels,
        replace(training, steps=100_000, meter_every=100),
        average=pair.average if training.ema else None,
        meter=meter,
        time_budget=BUDGET,
    )
    steps = 100 * len(curve)
    seconds = curve[-1][0]
    return {"name": name, "curve": curve, "steps_per_s": steps / seconds, "flops_per_step": flops}


def main() -> None:
    peak = matmul_peak_gflops()
    digits = load_digits()
    yardstick = Yardstick()
    reference = yardstick.test_reference()
    target = TARGET_TIMES_REFERENCE * reference
    ours = gan_training.RECIPES["conditional"]
    anchor_training = replace(ours.train, lr=2e-4, betas=(0.5, 0.999), ema=0.0)
    anchor_config = replace(ours.model, minibatch_std=False)
    for name, config, training in (
        ("course GAN", ours.model, ours.train),
        ("pytorch/examples DCGAN recipe", anchor_config, anchor_training),
    ):
        result = run(name, config, training, yardstick, digits)
        reached = next((t for t, distance in result["curve"] if distance <= target), None)
        emit(
            "gan",
            model=name,
            budget_s=BUDGET,
            frechet=result["curve"][-1][1],
            best_frechet=min(d for _, d in result["curve"]),
            target_frechet=round(target, 2),
            seconds_to_target=reached,
            seconds_to_1_5x_reference=next((t for t, d in result["curve"] if d <= 1.5 * reference), None),
            images_per_s=round(result["steps_per_s"] * training.batch),
            mfu=round(result["flops_per_step"] * result["steps_per_s"] / 1e9 / peak, 4),
            curve=result["curve"],
        )


if __name__ == "__main__":
    main()
