"""Shared benchmark helpers: the machine's measured fp32 matmul peak, and JSON output."""

from __future__ import annotations

import json
import platform
import time

import torch


def matmul_peak_gflops(n: int = 1024, repeats: int = 10, device: str = "cpu") -> float:
    """Best observed fp32 GFLOP/s of an n x n x n matrix product on this machine (2 n^3 flops each)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def emit(name: str, **figures: float | int | str) -> None:
    """Print one JSON line: the benchmark's name, the machine, and its figures."""
    record = {
        "bench": name,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **figures,
    }
    print(json.dumps(record))
