"""Lesson 10's diffusion recipe against the DDPM paper's (Ho et al. 2020), on the same U-Net and the same digits.

Ours: `vision.diffusion.RECIPE` (cosine schedule, T = 200, AdamW at 2e-3 with warm-up and cosine decay, 4,000
steps). The anchor: the paper's linear schedule with T = 1000 and Adam at 2e-4, constant, trained for the same
wall time. Every 500 steps both are scored by the Frechet distance of 600 digits drawn with 50 DDIM steps
(evaluation time excluded); the target is the real test digits' distance. Then the sampling throughput of the trained
model: images per second for 50 DDIM steps and for all T ancestral steps.

python bench/diffusion.py
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
from course_lib.models.unet import UNet
from course_lib.train import TensorBatches, optimise
from course_lib.vision import diffusion
from course_lib.vision.judge_training import Yardstick


def run(
    name: str, config, schedule: diffusion.Schedule, lr: float, decay: bool, budget: float | None, yardstick
) -> dict:
    """Train from scratch: the recipe's steps when budget is None, else until `budget` seconds of training."""
    digits = load_digits()
    x0, labels = diffusion.to_signed(digits.train_images), digits.train_labels
    asked = torch.arange(600) % 10
    batch, steps = diffusion.RECIPE.train.batch, (diffusion.RECIPE.train.steps if budget is None else 100_000)
    seed_everything(0)
    model = UNet(config)
    with FlopCounterMode(display=False) as counter:
        diffusion.diffusion_loss(model, x0[:batch], labels[:batch], schedule, drop_label=0.15).backward()
    model.zero_grad()

    def evaluate(m: torch.nn.Module) -> dict:
        images = diffusion.to_unit(diffusion.sample(m, (600, 1, 8, 8), schedule, labels=asked, ddim_steps=50, seed=1))
        return {"frechet": yardstick.frechet(images)}

    recipe = replace(diffusion.RECIPE.train, lr=lr, steps=steps)  # the course's optimisation, at this lr
    if not decay:  # the anchor: a constant rate from the first step
        recipe = replace(recipe, warmup=0, min_lr_ratio=1.0)
    history = optimise(
        model,
        TensorBatches(x0, labels, batch_size=batch, seed=0, drop_last=True),
        lambda m, b: diffusion.diffusion_loss(m, *b, schedule, drop_label=recipe.drop_label),
        recipe,
        evaluate=evaluate,
        eval_every=500,
        time_budget=budget,
        progress=False,
    )
    model.eval()
    curve = [(round(r["seconds"], 1), round(r["frechet"], 2)) for r in history.evals]
    start = time.perf_counter()
    diffusion.sample(model, (600, 1, 8, 8), schedule, labels=asked, ddim_steps=50)
    ddim_rate = 600 / (time.perf_counter() - start)
    start = time.perf_counter()
    diffusion.sample(model, (200, 1, 8, 8), schedule, labels=asked[:200])
    ancestral_rate = 200 / (time.perf_counter() - start)
    return {
        "name": name,
        "curve": curve,
        "steps_per_s": 500 * len(curve) / curve[-1][0],
        "flops_per_step": counter.get_total_flops(),
        "ddim_rate": ddim_rate,
        "ancestral_rate": ancestral_rate,
        "ancestral_steps": schedule.steps,
    }


def main() -> None:
    peak = matmul_peak_gflops()
    yardstick = Yardstick()
    target = yardstick.test_reference()
    ours = diffusion.RECIPE
    budget = None
    for name, config, schedule, lr, decay in (
        ("course diffusion", ours.model, diffusion.cosine_schedule(ours.model.steps), ours.train.lr, True),
        ("DDPM paper recipe", replace(ours.model, steps=1000), diffusion.linear_schedule(1000), 2e-4, False),
    ):
        result = run(name, config, schedule, lr, decay, budget, yardstick)
        curve = result["curve"]
        budget = budget or curve[-1][0]
        emit(
            "diffusion",
            model=name,
            budget_s=budget,
            frechet_ddim50=curve[-1][1],
            target_frechet=round(target, 2),
            seconds_to_target=next((t for t, d in curve if d <= target), None),
            train_images_per_s=round(result["steps_per_s"] * ours.train.batch),
            mfu=round(result["flops_per_step"] * result["steps_per_s"] / 1e9 / peak, 4),
            ddim50_images_per_s=round(result["ddim_rate"], 1),
            ancestral_images_per_s=round(result["ancestral_rate"], 2),
            ancestral_steps=result["ancestral_steps"],
            curve=curve,
        )


if __name__ == "__main__":
    main()
