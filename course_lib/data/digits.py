"""Lessons 00, 08-11, 18: handwritten digits, the 1,797 real 8x8 images that ship inside scikit-learn (no download)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

TEST_EVERY = 6  # every 6th image is held out: 300 test, 1,497 train, all ten classes in both


@dataclass(frozen=True)
class Digits:
    """Images (n, 8, 8) as float32 in [0, 1] and labels (n,) as int64, split into train and test."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """(b, s, s) in [0, 1] -> (b, 1, s, s) in [-1, 1], what lessons 09-10's networks read and write."""
    return images[:, None] * 2 - 1


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """(b, 1, s, s) in about [-1, 1] -> (b, s, s) in [0, 1], what the yardstick reads (the inverse, clipped)."""
    return ((images[:, 0] + 1) / 2).clamp(0, 1)


def load_digits() -> Digits:
    """scikit-learn's digits with a fixed split (index % 6 == 0 is test), identical on every machine."""
    from sklearn.datasets import load_digits as sklearn_digits

    raw = sklearn_digits()
    images = torch.tensor(raw.images, dtype=torch.float32) / 16.0  # pixel values 0..16 -> 0..1
    labels = torch.tensor(raw.target, dtype=torch.int64)
    is_test = torch.arange(len(labels)) % TEST_EVERY == 0
    return Digits(images[~is_test], labels[~is_test], images[is_test], labels[is_test])
