"""Lesson 10 exercises: the DDPM posterior q(x_{t-1} | x_t, x_0) derived into code, the v-parameterisation, a DDIM
step with eta > 0, and the whole guided DDIM sampling loop, checked on small U-Nets and, in the solutions notebook,
on the lesson's trained one. The lesson prints the epsilon-form steps; these ask for what it only derives or names."""

from __future__ import annotations

import math

import torch

from course_lib.models.unet import UNet, UNetConfig
from course_lib.vision import diffusion
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "10_diffusion"
SETUP = """\
import math
import torch
"""
NO_LABEL = 10


# --- references ---------------------------------------------------------------------------------


def posterior(x0: torch.Tensor, x_t: torch.Tensor, t: int, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q(x_{t-1} | x_t, x_0) = N(mean, variance): mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0
    + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t, variance = beta_t (1 - abar_{t-1}) / (1 - abar_t) (a 0-d
    tensor), with abar_{-1} = 1 (so at t = 0 the mean is x0 and the variance 0)."""
    alpha_bars = torch.cumprod(1 - betas, dim=0)
    bar, beta = alpha_bars[t], betas[t]
    before = alpha_bars[t - 1] if t > 0 else torch.tensor(1.0)
    mean = (before.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - before) * x_t) / (1 - bar)
    return mean, beta * (1 - before) / (1 - bar)


def v_to_x0_and_eps(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans and Ho 2022); alpha_bar (b,), one level per sample ->
    (x0 = sqrt(abar) x_t - sqrt(1 - abar) v, eps = sqrt(1 - abar) x_t + sqrt(abar) v)."""
    a = alpha_bar.view(-1, *([1] * (x_t.dim() - 1)))
    return a.sqrt() * x_t - (1 - a).sqrt() * v, (1 - a).sqrt() * x_t + a.sqrt() * v


def ddim_step_eta(x_t, eps, alpha_bar_t: float, alpha_bar_prev: float, eta: float, noise):
    """DDIM (Song et al. 2021, eq. 12, sigma from eq. 16) with eta: x0_hat clipped to [-1, 1] and the noise
    recomputed from it, as the course's sampler does;
    sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev);
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma noise."""
    x0 = ((x_t - math.sqrt(1 - alpha_bar_t) * eps) / math.sqrt(alpha_bar_t)).clamp(-1, 1)
    eps = (x_t - math.sqrt(alpha_bar_t) * x0) / math.sqrt(1 - alpha_bar_t)
    sigma = eta * math.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev))
    return math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1 - alpha_bar_prev - sigma**2) * eps + sigma * noise


def ddim_sample(model, x_T: torch.Tensor, labels: torch.Tensor, alpha_bars: torch.Tensor, steps: int, weight: float):
    """DDIM from x_T with `steps` evenly spaced time steps and guidance weight `weight` -> x_0."""
    total = len(alpha_bars)
    times = [round(i * (total - 1) / (steps - 1)) for i in range(steps)][::-1]
    x, bars = x_T, alpha_bars.tolist()
    with torch.no_grad():
        for i, t in enumerate(times):
            eps = diffusion.guided_noise(model, x, torch.full((len(x),), t), labels, weight, NO_LABEL)
            x = diffusion.ddim_step(x, eps, bars[t], bars[times[i + 1]] if i + 1 < len(times) else 1.0)
    return x


# --- cases ----------------------------------------------------------------------------------------


def _bars(steps: int) -> torch.Tensor:
    return diffusion.cosine_schedule(steps).alpha_bars


def _posterior_cases(g: torch.Generator) -> list[Case]:
    betas = diffusion.cosine_schedule(20).betas
    x0, x_t = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1, torch.randn(3, 1, 8, 8, generator=g)
    return [
        Case("a middle step, t = 10 (catches alpha_bar[t] for alpha_bar[t - 1])", (x0, x_t, 10, betas)),
        Case("t = 0: the posterior is x0 itself, variance 0", (x0, x_t, 0, betas)),
        Case(
            "the first step, t = 19, 2-D points",
            (torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g), 19, betas),
        ),
    ]


def _v_cases(g: torch.Generator) -> list[Case]:
    bars = _bars(30)
    return [
        Case(
            "four images at four levels (catches a level shared by the batch)",
            (
                torch.randn(4, 1, 8, 8, generator=g),
                torch.randn(4, 1, 8, 8, generator=g),
                bars[torch.tensor([0, 9, 18, 29])],
            ),
        ),
        Case(
            "2-D points (catches the two outputs swapped)",
            (torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g), bars[torch.tensor([5, 15, 25])]),
        ),
    ]


def _eta_cases(g: torch.Generator) -> list[Case]:
    x, eps, z = (torch.randn(3, 1, 8, 8, generator=g) for _ in range(3))
    return [
        Case("eta 0 is the course's DDIM step", (x * 0.3, eps * 0.3, 0.5, 0.8, 0.0, z)),
        Case("eta 1 (catches sigma without the 1 - abar_t / abar_prev factor)", (x * 0.3, eps * 0.3, 0.3, 0.6, 1.0, z)),
        Case("eta 0.5 from almost pure noise (catches a missing clip)", (x, eps, 0.01, 0.9, 0.5, z)),
        Case("the final step to alpha_bar = 1: sigma 0", (x * 0.3, eps * 0.3, 0.7, 1.0, 1.0, z)),
        Case("eta 0.8, a small jump", (x * 0.3, eps * 0.3, 0.6, 0.65, 0.8, z)),
    ]


def _sample_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("T = 20, 5 DDIM steps, w = 0", (), {"seed": draw_seed(g), "steps": 5, "weight": 0.0}),
        Case("T = 20, 4 DDIM steps, w = 2 (guidance)", (), {"seed": draw_seed(g), "steps": 4, "weight": 2.0}),
    ]


@torch.no_grad()
def _run_sample(fn, case: Case):
    torch.manual_seed(case.kwargs["seed"])
    model = UNet(UNetConfig(steps=20, width=16)).eval()
    x_T = torch.randn(4, 1, 8, 8)
    labels = torch.tensor([0, 3, 7, 9])
    return fn(model, x_T, labels, _bars(20), case.kwargs["steps"], case.kwargs["weight"])


EXERCISES = [
    Exercise(posterior, NOTEBOOK, 2.0, _posterior_cases, setup=SETUP, atol=1e-5),
    Exercise(v_to_x0_and_eps, NOTEBOOK, 2.0, _v_cases, setup=SETUP, atol=1e-5),
    Exercise(ddim_step_eta, NOTEBOOK, 2.0, _eta_cases, setup=SETUP, atol=1e-4),
    Exercise(
        ddim_sample,
        NOTEBOOK,
        3.0,
        _sample_cases,
        call=_run_sample,
        setup=SETUP,
        atol=1e-3,
        trap=("sample",),  # diffusion.sample is this exercise under another name
    ),
]
