"""Lessons 00, 03, 05: the course's one training loop, its optimizer and schedule; the task code of the later
lessons trains with them too.

`train` runs a fixed number of optimizer steps over any stream of batches, with a learning-rate schedule,
gradient clipping, periodic evaluation, a hook for samples and a progress bar. `fit` is the same loop counted
in epochs. `adamw` builds the optimizer every lesson uses. `Optimisation` is the one way a recipe states how
it is optimised (steps, batch, learning rate, warm-up, final learning rate, weight decay, clipping, seed): each lesson's
training config is an `Optimisation` with its own defaults plus its task's options, and `optimise` turns one
into AdamW, the warm-up + cosine schedule and a run of `train`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm  # a widget in JupyterLab, a text bar in a terminal

from course_lib.device import seed_offset


class TensorBatches:
    """Mini-batches from tensors that share a first dimension, reshuffled each epoch by a seeded generator
    (`seed` plus $COURSE_SEED)."""

    def __init__(
        self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"all tensors must share the first dimension, got {[tuple(t.shape) for t in tensors]}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors, self.batch_size, self.shuffle, self.drop_last = tensors, batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed + seed_offset())

    def __len__(self) -> int:
        n = self.tensors[0].shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self.tensors[0].shape[0]
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
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
    """What `train` measured: the loss of every step, and a record at every evaluation.

    Each record holds "step", "seconds" (training time so far, evaluation excluded), "train_loss" (the mean
    step loss since the previous record) and whatever `evaluate` returned.
    """

    step_loss: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def last(self, key: str) -> float:
        """The latest value of an evaluation metric."""
        if not self.evals or key not in self.evals[-1]:
            raise KeyError(f"no metric {key!r} recorded; have {sorted(self.evals[-1]) if self.evals else []}")
        return self.evals[-1][key]

    def column(self, key: str) -> list[float]:
        """One metric at every evaluation, in order."""
        return [record[key] for record in self.evals]


def adamw(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    decay_vectors: bool = True,
) -> torch.optim.AdamW:
    """AdamW over the model's parameters. With `decay_vectors=False`, biases and LayerNorm gains (1-d) are not
    decayed, only matrices and embeddings, as GPT-2 and nanoGPT do."""
    if decay_vectors:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=betas)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def warmup_cosine(step: int, *, warmup: int, total: int, peak: float, floor: float = 0.0) -> float:
    """Learning rate at `step`: linear warm-up to `peak`, then cosine decay to `floor` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True, kw_only=True)
class Optimisation:
    """How a model is optimised: `steps` AdamW steps on batches of `batch` examples; the learning rate rises
    linearly over `warmup` steps to `lr`, then falls on a cosine to `min_lr_ratio * lr` at the last step
    (`min_lr_ratio=1`: constant after the warm-up); `weight_decay` on every parameter, or with
    `decay_vectors=False` on matrices and embeddings only; gradients clipped to norm `grad_clip` (None: never).
    `batch` and `seed` are for the task code that makes the batches and the model: it builds batches of `batch`
    examples (fewer where the data set is smaller) and draws initial weights and batch order from `seed`;
    `optimise` reads neither.

    Keyword-only, so that a lesson's config inherits it, states its own schedule and adds its task's options:

        @dataclass(frozen=True, kw_only=True)
        class VAETraining(Optimisation):
            steps: int = 4000
            ...
            kl_warmup: int = 0
    """

    steps: int
    batch: int
    lr: float
    warmup: int  # steps of linear warm-up
    min_lr_ratio: float  # the schedule ends at this fraction of lr
    weight_decay: float = 0.0
    decay_vectors: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got steps={self.steps}, batch={self.batch}")
        if self.lr <= 0 or self.warmup < 0:
            raise ValueError(f"lr must be > 0 and warmup >= 0, got lr={self.lr}, warmup={self.warmup}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio is a fraction of lr, in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 (or None: no clipping), got {self.grad_clip}")

    def learning_rate(self, step: int) -> float:
        """The schedule at `step` (from 0): warm-up to `lr`, then cosine decay to `min_lr_ratio * lr` at `steps`
        (a run shorter than its warm-up never reaches `lr`)."""
        floor = self.min_lr_ratio * self.lr
        return warmup_cosine(step, warmup=self.warmup, total=self.steps, peak=self.lr, floor=floor)


def optimise(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    spec: Optimisation,
    **train_options: Any,
) -> History:
    """Optimise `model` as `spec` says: AdamW, the warm-up + cosine schedule, clipping, `spec.steps` steps of
    `train` (whose other options pass through: `evaluate`, `eval_every`, `on_step`, `time_budget`, `device`,
    `progress`, `desc`). -> the `History`."""
    if not isinstance(spec, Optimisation):
        raise TypeError(f"spec must be an Optimisation (a lesson's training config), got {type(spec).__name__}")
    optimizer = adamw(
        model, lr=spec.lr, weight_decay=spec.weight_decay, betas=spec.betas, decay_vectors=spec.decay_vectors
    )
    return train(
        model,
        batches,
        loss_fn,
        optimizer,
        steps=spec.steps,
        lr_schedule=spec.learning_rate,
        grad_clip=spec.grad_clip,
        **train_options,
    )


def _forever(batches: Iterable) -> Iterator:
    """The batches again and again (a new epoch each pass); an endless generator is read once, as it is."""
    read = 0
    while True:
        empty = True
        for batch in batches:
            empty = False
            read += 1
            yield batch
        if empty and read:
            raise ValueError(
                f"the batches ran out after {read}: a generator is read once; pass a list, a TensorBatches or an "
                "endless generator, or fewer steps"
            )
        if empty:
            raise ValueError("the batches are empty: nothing to train on")


def train(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    steps: int,
    lr_schedule: Callable[[int], float] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    on_eval: Callable[[nn.Module, dict[str, float]], None] | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
    time_budget: float | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Take `steps` optimizer steps on `batches`; `loss_fn(model, batch)` returns a scalar loss.

    `batches` is any iterable (re-read from the start when it runs out, a new epoch) or an endless generator.
    Before each step `lr_schedule(step)` sets every group's learning rate; after it `scheduler.step()` runs.
    Every `eval_every` steps and after the last one, a record is added to the history (see `History`), with the
    metrics of `evaluate(model)`, run in eval mode without gradients; then `on_eval(model, record)` (to print a
    sample, say). `on_step(model, step)` runs after every optimizer step (to keep an average of the weights, say).
    With `time_budget`, training stops early once the steps themselves (not the evaluations) have taken that many
    seconds: the step that crosses it is the last and gets a record, as the last of `steps` does (a benchmark's
    "quality after N seconds"; the learning-rate schedule still counts to `steps`). The model is left in eval mode.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1 (or None: once, at the end), got {eval_every}")
    if time_budget is not None and time_budget <= 0:
        raise ValueError(f"time_budget is in seconds and must be > 0 (or None: no limit), got {time_budget}")
    history, stream, trained, since = History(), _forever(batches), 0.0, 0
    start = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, leave=False, desc=desc, mininterval=0.5)
    model.train()
    for step in bar:
        step_start = time.perf_counter()
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule(step)
        loss = loss_fn(model, to_device(next(stream), device))
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if on_step is not None:
            on_step(model, step)
        history.step_loss.append(loss.item())
        trained += time.perf_counter() - step_start
        since += 1
        out_of_time = time_budget is not None and trained >= time_budget
        if (eval_every is not None and (step + 1) % eval_every == 0) or step + 1 == steps or out_of_time:
            recent = history.step_loss[-since:]
            record = {"step": step + 1, "seconds": trained, "train_loss": sum(recent) / len(recent)}
            model.eval()
            with torch.no_grad():
                if evaluate is not None:
                    record.update(evaluate(model))
                if on_eval is not None:
                    on_eval(model, record)
            model.train()
            history.evals.append(record)
            since = 0
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("step", "seconds")})
        if out_of_time:
            break
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def fit(
    model: nn.Module,
    batches: TensorBatches,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """`train` counted in epochs: `epochs` passes over `batches`, `evaluate(model)` after each one."""
    return train(
        model,
        batches,
        loss_fn,
        optimizer,
        steps=epochs * len(batches),
        scheduler=scheduler,
        grad_clip=grad_clip,
        evaluate=evaluate,
        eval_every=len(batches),
        device=device,
        progress=progress,
    )


@torch.no_grad()
def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max matches the label."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on batch size")
    return (logits.argmax(dim=-1) == labels).float().mean().item()
