"""Lesson 00's digits classifier: wall time to 97% test accuracy, images per second, model FLOP utilisation.

    python bench/digits_mlp.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, matmul_peak_gflops  # noqa: E402

from course_lib import seed_everything  # noqa: E402
from course_lib.data import load_digits  # noqa: E402
from course_lib.train import TensorBatches, accuracy  # noqa: E402

HIDDEN, EPOCHS, BATCH, LR, TARGET = 128, 20, 64, 3e-3, 0.97


def main() -> None:
    peak = matmul_peak_gflops()
    digits = load_digits()
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    flops_per_image = 6 * (64 * HIDDEN + HIDDEN * 10)  # forward 2x, backward 4x the multiply-adds
    seen, time_to_target, acc = 0, None, 0.0
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for x, y in TensorBatches(digits.train_images, digits.train_labels, batch_size=BATCH, seed=seen):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            seen += len(y)
        with torch.no_grad():
            acc = accuracy(model(digits.test_images), digits.test_labels)
        if time_to_target is None and acc >= TARGET:
            time_to_target = time.perf_counter() - start
    wall = time.perf_counter() - start
    achieved = flops_per_image * seen / wall / 1e9
    emit("digits_mlp", wall_s=round(wall, 3), seconds_to_97pct=None if time_to_target is None else round(time_to_target, 3),
         images_per_s=round(seen / wall), matmul_peak_gflops=round(peak, 1), mfu=round(achieved / peak, 5),
         test_accuracy=round(acc, 4))


if __name__ == "__main__":
    main()
