"""Every lesson: device choice, seeding and thread count, the three things every notebook sets first."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from course_lib.cores import usable_cores

DEVICE_ENV = "COURSE_DEVICE"  # e.g. COURSE_DEVICE=cpu forces the CPU on a GPU machine
SEED_ENV = "COURSE_SEED"  # e.g. COURSE_SEED=1 trains every model from other initial weights and batch orders
_KNOWN = ("cuda", "mps", "cpu")


def device_name(device: torch.device | str) -> str:
    """What a shipped checkpoint records as the machine it was made on: the GPU's name on CUDA, else the type."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def pick_device(preferred: str | None = None) -> torch.device:
    """Return cuda if present, then mps, then cpu; `preferred` or $COURSE_DEVICE overrides."""
    choice = preferred or os.environ.get(DEVICE_ENV, "").strip().lower() or None
    if choice is not None:
        kind = choice.split(":")[0]
        if kind not in _KNOWN:
            raise ValueError(f"{DEVICE_ENV}={choice!r}: expected one of {', '.join(_KNOWN)} (optionally cuda:N)")
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{DEVICE_ENV}={choice!r} but torch sees no CUDA device; unset it or use cpu")
        if kind == "mps" and not _mps_available():
            raise RuntimeError(f"{DEVICE_ENV}={choice!r} but torch sees no MPS device; unset it or use cpu")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_offset() -> int:
    """$COURSE_SEED (default 0), added to every seed that initialises weights or orders batches.

    Data sets, held-out splits and evaluation samples keep their own seeds, so a run with another offset trains
    every model anew (its cache entries are its own) and measures it on the same test: how far a result moves with
    the seed.
    """
    raw = os.environ.get(SEED_ENV, "").strip() or "0"
    if not raw.isdigit():
        raise ValueError(f"{SEED_ENV}={raw!r}: expected a non-negative integer (0, the default, is the committed run)")
    return int(raw)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices) so a run repeats exactly ($COURSE_SEED added)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed += seed_offset()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def training_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for the draws that pick, order or perturb training batches, seeded with `seed` plus $COURSE_SEED
    (as `seeded` and `train.TensorBatches` are). Data sets, splits and evaluation samples keep plain seeds."""
    return torch.Generator(device).manual_seed(seed + seed_offset())


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global generators seeded, then put them back as they were.

    Library code that must draw from the global generator (weight initialisation, dropout) runs inside this,
    so it repeats exactly and leaves the caller's random state untouched. $COURSE_SEED is added to `seed`.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + seed_offset())
        yield


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: $COURSE_THREADS or the usable cores); return the count."""
    if n is None:
        n = int(os.environ.get("COURSE_THREADS", "0")) or usable_cores()
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n
