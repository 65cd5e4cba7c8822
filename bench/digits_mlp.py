"""Lesson 00's digits classifier: wall time to 97% test accuracy, images per second, model FLOP utilisation.

python bench/digits_mlp.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, matmul_peak_gflops

from course_lib import seed_everything
from course_lib.data import load_digits
from course_lib.train import TensorBatches, accuracy, fit

HIDDEN, EPOCHS, BATCH, LR, TARGET = 128, 20, 64, 3e-3, 0.97


def main() -> None:
    peak = matmul_peak_gflops()
    digits = load_digits()
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
    batches = TensorBatches(digits.train_images, digits.train_labels, batch_size=BATCH, seed=0)
    history = fit(
        model,
        batches,
        lambda m, b: F.cross_entropy(m(b[0]), b[1]),
        torch.optim.Adam(model.parameters(), lr=LR),
        epochs=EPOCHS,
        evaluate=lambda m: {"acc": accuracy(m(digits.test_images), digits.test_labels)},
        progress=False,
    )
    flops_per_image = 6 * (64 * HIDDEN + HIDDEN * 10)  # forward 2x, backward 4x the multiply-adds
    seen = EPOCHS * len(digits.train_labels)
    reached = [r["seconds"] for r in history.evals if r["acc"] >= TARGET]
    train_s = history.last("seconds")
    achieved = flops_per_image * seen / train_s / 1e9
    emit(
        "digits_mlp",
        wall_s=round(history.seconds, 3),
        train_s=round(train_s, 3),
        seconds_to_97pct=round(reached[0], 3) if reached else None,
        images_per_s=round(seen / train_s),
        matmul_peak_gflops=round(peak, 1),
        mfu=round(achieved / peak, 5),
        test_accuracy=round(history.last("acc"), 4),
    )


if __name__ == "__main__":
    main()
