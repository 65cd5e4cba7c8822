"""One small training loop the lessons share: batches, a progress bar, evaluation, a loss history."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm  # a widget in JupyterLab, a text bar in a terminal


class TensorBatches:
    """Mini-batches from tensors that share a first dimension, reshuffled each epoch by a seeded generator."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"all tensors must share the first dimension, got {[tuple(t.shape) for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors, self.batch_size, self.shuffle, self.drop_last = tensors, batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = self.tensors[0].shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.tensors[0].shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """Move a tensor, or a tuple/list/dict of tensors, to `device`."""
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class History:
    """What `fit` measured: the loss of every step, and evaluation metrics after every epoch."""

    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The latest value of an evaluation metric."""
        if not self.epochs or key not in self.epochs[-1]:
            raise KeyError(f"no metric {key!r} recorded; have {sorted(self.epochs[-1]) if self.epochs else []}")
        return self.epochs[-1][key]


def fit(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    scheduler: Any = None,
    grad_clip: float | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train `model` for `epochs` passes over `batches`; `loss_fn(model, batch)` returns a scalar loss.

    `scheduler.step()` runs after every optimizer step; `evaluate(model)` after every epoch, in eval mode.
    Each epoch's record holds its number, its training wall time (evaluation excluded) and the metrics.
    """
    history = History()
    start = time.perf_counter()
    bar = tqdm(total=epochs * len(batches), disable=not progress, leave=False, desc="training",  # type: ignore[arg-type]
               mininterval=0.5)
    for epoch in range(epochs):
        model.train()
        epoch_start = time.perf_counter()
        for batch in batches:
            loss = loss_fn(model, to_device(batch, device))
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.step_loss.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{history.step_loss[-1]:.4f}")
        metrics: dict[str, float] = {"epoch": epoch + 1, "train_seconds": time.perf_counter() - epoch_start}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                metrics.update(evaluate(model))
        history.epochs.append(metrics)
    bar.close()
    history.seconds = time.perf_counter() - start
    return history


def warmup_cosine(step: int, *, warmup: int, total: int, peak: float, floor: float = 0.0) -> float:
    """Learning rate at `step`: linear warm-up to `peak`, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the label."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on batch size")
    return (logits.argmax(dim=-1) == labels).float().mean().item()
