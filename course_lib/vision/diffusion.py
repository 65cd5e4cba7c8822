"""Lessons 10, 13, 18: denoising diffusion (Ho et al. 2020), DDIM sampling (Song et al. 2021) and classifier-free
guidance (Ho and Salimans 2022), for any shape of data: 2-D points in the warm-up, 8x8 digits after it, and lesson
13's 16x16 pictures conditioned on CLIP embeddings.

Notation: alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s, time steps t = 0..T-1 (0 is the least noisy).
A noise predictor is called as model(x_t, t, labels) -> eps_hat; "no label" is labels == classes for class
labels, the zero vector for conditioning vectors.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.artifacts import SHIPPED, pretrained, ship_artifact
from course_lib.data.digits import load_digits, to_signed, to_unit
from course_lib.device import device_name, seeded
from course_lib.models.unet import UNet, UNetConfig
from course_lib.train import Optimisation, TensorBatches, optimise


@dataclass(frozen=True)
class Schedule:
    """beta_t, alpha_t and alpha_bar_t for t = 0..T-1, as float32 tensors (T,)."""

    betas: torch.Tensor

    @property
    def steps(self) -> int:
        return len(self.betas)

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, dim=0)


def cosine_schedule(steps: int, offset: float = 0.008) -> Schedule:
    """Nichol and Dhariwal's schedule: alpha_bar(t) = cos^2((t/T + s) / (1 + s) * pi/2), betas clipped at 0.999.
    It destroys information more evenly over t than a linear schedule, which matters for small images."""
    grid = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    f = torch.cos((grid + offset) / (1 + offset) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    return Schedule(betas.float())


def linear_schedule(steps: int, first: float = 1e-4, last: float = 0.02) -> Schedule:
    """Ho et al.'s schedule for T = 1000, rescaled so that other T destroy the same amount of signal."""
    scale = 1000 / steps
    return Schedule(torch.linspace(first * scale, last * scale, steps))


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] (b,) shaped to broadcast over x (b, ...)."""
    return values.to(like.device)[t].view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The forward process in closed form: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    a = _per_sample(schedule.alpha_bars, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def no_label(labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """ "No label" in the shape of `labels`: the index `classes` for class labels, the zero vector for
    conditioning vectors (lesson 13's CLIP embeddings, which have unit length, so zero is never a real one)."""
    if labels.is_floating_point():
        return torch.zeros_like(labels)
    return torch.full_like(labels, classes)


def diffusion_loss(
    model: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    *,
    drop_label: float = 0.0,
    classes: int = 10,
) -> torch.Tensor:
    """The simplified DDPM loss: E_{t, eps} |eps - eps_hat(x_t, t)|^2 at a uniformly random t per sample, with the
    label replaced by "no label" (index `classes`, or the zero vector for conditioning vectors) with probability
    `drop_label` (classifier-free guidance)."""
    t = torch.randint(0, schedule.steps, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    dropped = torch.rand(len(x0), device=x0.device) < drop_label
    labels = torch.where(dropped.view(-1, *[1] * (labels.dim() - 1)), no_label(labels, classes), labels)
    return F.mse_loss(model(q_sample(x0, t, noise, schedule), t, labels), noise)


def guided_noise(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, weight: float, classes: int = 10
) -> torch.Tensor:
    """Classifier-free guidance: (1 + w) eps(x, t, y) - w eps(x, t, no label). w = 0 is the plain conditional
    model; both predictions come from one forward pass over the doubled batch."""
    if weight == 0:
        return model(x, t, labels)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, no_label(labels, classes)]))
    conditional, unconditional = both.chunk(2)
    return (1 + weight) * conditional - weight * unconditional


def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, schedule: Schedule, noise: torch.Tensor) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1}: mean 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps), plus
    sigma_t z, sigma_t^2 the posterior variance beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t); no noise at t = 0."""
    beta, alpha, alpha_bar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bars[t]
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()
    if t == 0:
        return mean
    variance = beta * (1 - schedule.alpha_bars[t - 1]) / (1 - alpha_bar)
    return mean + variance.sqrt() * noise


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float) -> torch.Tensor:
    """One deterministic DDIM step (eta = 0) from alpha_bar_t to alpha_bar_prev: predict x_0 and clip it to the
    data's range [-1, 1]; take the noise that x_t holds given that x_0; re-noise x_0 with it to the lower level:
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps_hat. (Near t = T-1 alpha_bar is almost 0, and an
    unclipped x0_hat would multiply the network's errors by 1 / sqrt(alpha_bar).)"""
    x0_hat = ((x_t - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)).clamp(-1, 1)
    eps_hat = (x_t - math.sqrt(alpha_bar_t) * x0_hat) / math.sqrt(1 - alpha_bar_t)
    return math.sqrt(alpha_bar_prev) * x0_hat + math.sqrt(1 - alpha_bar_prev) * eps_hat


def ddim_times(total: int, steps: int) -> list[int]:
    """`steps` time steps spread evenly over T-1 .. 0, largest first."""
    if not 1 <= steps <= total:
        raise ValueError(f"steps must be in 1..{total}, got {steps}")
    return sorted({round(i * (total - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


@torch.no_grad()
def sample(
    model: nn.Module,
    shape: tuple[int, ...],
    schedule: Schedule,
    *,
    labels: torch.Tensor | None = None,
    guidance: float = 0.0,
    ddim_steps: int | None = None,
    classes: int = 10,
    seed: int = 0,
    trajectory: list[int] | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Draw len(labels) (or shape[0]) samples from pure noise: all T ancestral steps, or `ddim_steps` DDIM steps.
    labels None means unconditional ("no label"). With `trajectory` (a list of t), also returns {t: x_t}.
    `noise` (shape) replaces the seeded starting noise x_T (DDIM is then deterministic)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    n = shape[0]
    labels = torch.full((n,), classes, dtype=torch.long) if labels is None else labels
    labels = labels.to(device)
    x = (torch.randn(shape, generator=generator) if noise is None else noise).to(device)
    kept = {}
    times = list(range(schedule.steps - 1, -1, -1)) if ddim_steps is None else ddim_times(schedule.steps, ddim_steps)
    bars = schedule.alpha_bars.tolist()
    for i, t in enumerate(times):
        if trajectory is not None and t in trajectory:
            kept[t] = x.cpu()
        eps = guided_noise(model, x, torch.full((n,), t, device=device), labels, guidance, classes)
        if ddim_steps is None:
            x = ddpm_step(x, eps, t, schedule, torch.randn(shape, generator=generator).to(device))
        else:
            previous = bars[times[i + 1]] if i + 1 < len(times) else 1.0
            x = ddim_step(x, eps, bars[t], previous)
    x = x.cpu()
    if trajectory is not None:
        kept[-1] = x
        return x, kept
    return x


# --- the digits model --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DiffusionTraining(Optimisation):
    steps: int = 4000
    batch: int = 128
    lr: float = 2e-3
    warmup: int = 200
    min_lr_ratio: float = 0.01  # cosine decay to lr / 100
    grad_clip: float | None = 1.0
    drop_label: float = 0.15  # share of training examples shown without their label


@dataclass(frozen=True)
class DiffusionRecipe:
    model: UNetConfig = field(default_factory=UNetConfig)
    train: DiffusionTraining = field(default_factory=DiffusionTraining)


RECIPE = DiffusionRecipe()


def digits_schedule(recipe: DiffusionRecipe = RECIPE) -> Schedule:
    return cosine_schedule(recipe.model.steps)


def train_diffusion(
    model: nn.Module,
    schedule: Schedule,
    x0: torch.Tensor,
    labels: torch.Tensor,
    t: DiffusionTraining,
    *,
    classes: int = 10,
    progress: bool = False,
) -> dict:
    """Train a noise predictor on x0 (n, ...) with the course's loop. -> {"step_loss", "seconds"}."""
    device = next(model.parameters()).device
    batches = TensorBatches(x0, labels, batch_size=t.batch, seed=t.seed, drop_last=True)

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return diffusion_loss(m, *batch, schedule, drop_label=t.drop_label, classes=classes)

    with seeded(t.seed):
        history = optimise(model, batches, loss, t, device=device, progress=progress)
    return {"step_loss": history.step_loss, "seconds": history.seconds}


def pretrained_diffusion(
    *, device: torch.device | str = "cpu", progress: bool = False, use_shipped: bool = True, retrain: bool = False
) -> tuple[UNet, dict]:
    """The lesson's class-conditional U-Net (label dropped 15% of the time): from the cache, else (if
    `use_shipped`) the checkpoint the repository ships (1.2 MB: on a CPU the lesson loads it and times a few real
    steps), else trained now (about 3 minutes on 2 cores). `retrain=True` always trains."""
    digits = load_digits()
    x0 = to_signed(digits.train_images)  # (n, 1, 8, 8) in [-1, 1]

    def build() -> UNet:
        with seeded(RECIPE.train.seed):
            return UNet(RECIPE.model)

    def fit(model: UNet) -> dict:
        return train_diffusion(model, digits_schedule(), x0, digits.train_labels, RECIPE.train, progress=progress)

    shipped = SHIPPED if use_shipped else None
    return pretrained("digits-diffusion", build, fit, asdict(RECIPE), device=device, retrain=retrain, shipped=shipped)


def ship(device: str = "cpu"):
    """The lesson's U-Net from this machine's cache (never the shipped one) or trained now, written to the folder
    of shipped checkpoints in float32. -> the weights' path."""
    made_on = device_name(device)
    model, record = pretrained_diffusion(device=device, use_shipped=False)
    return ship_artifact("digits-diffusion", asdict(RECIPE), model, record, made_on)


def timed_sample(model: nn.Module, n: int, **kwargs) -> tuple[torch.Tensor, float]:
    """`sample` for n digits, in [0, 1], and the seconds it took."""
    start = time.perf_counter()
    x = sample(model, (n, 1, 8, 8), digits_schedule(), **kwargs)
    return to_unit(x), time.perf_counter() - start


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Train lesson 10's U-Net and ship it.")
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    print(ship(parser.parse_args().device))
