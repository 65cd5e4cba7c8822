"""Lesson 10 exercises: the closed-form forward noising, one DDPM reverse step, one DDIM step, the guided noise
estimate, and the whole DDIM sampling loop, checked on small U-Nets and, in the solutions notebook, on the
lesson's trained one."""

from __future__ import annotations

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


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bars: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, t (b,) one step per sample."""
    a = alpha_bars[t].view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddpm_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, betas: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return diffusion.ddpm_step(x_t, eps, t, diffusion.Schedule(betas), noise)


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float) -> torch.Tensor:
    return diffusion.ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev)


def guided_noise(eps_conditional: torch.Tensor, eps_unconditional: torch.Tensor, weight: float) -> torch.Tensor:
    return (1 + weight) * eps_conditional - weight * eps_unconditional


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


def _q_cases(g: torch.Generator) -> list[Case]:
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    return [
        Case(
            "four digits at four noise levels (catches alpha_bar[t - 1] and sqrt(alpha) for sqrt(alpha_bar))",
            (x0, torch.tensor([0, 3, 7, 19]), torch.randn(4, 1, 8, 8, generator=g), _bars(20)),
        ),
        Case(
            "2-D points, t = 0 (almost no noise)",
            (
                torch.randn(3, 2, generator=g),
                torch.zeros(3, dtype=torch.long),
                torch.randn(3, 2, generator=g),
                _bars(50),
            ),
        ),
    ]


def _ddpm_cases(g: torch.Generator) -> list[Case]:
    betas = diffusion.cosine_schedule(20).betas
    x, eps, z = (torch.randn(3, 1, 8, 8, generator=g) for _ in range(3))
    return [
        Case("a middle step, t = 10 (catches alpha_bar[t - 1] in the mean)", (x, eps, 10, betas, z)),
        Case("the last step, t = 0: no noise added", (x, eps, 0, betas, z)),
        Case("the first step, t = 19", (x, eps, 19, betas, z)),
    ]


def _ddim_cases(g: torch.Generator) -> list[Case]:
    x, eps = torch.randn(3, 1, 8, 8, generator=g) * 0.5, torch.randn(3, 1, 8, 8, generator=g)
    return [
        Case("0.5 -> 0.8: x0_hat inside [-1, 1]", (x * 0.3, eps * 0.3, 0.5, 0.8)),
        Case(
            "a large jump from almost pure noise (catches a missing clip)",
            (torch.randn(3, 1, 8, 8, generator=g), eps, 0.01, 0.9),
        ),
        Case("the final step to alpha_bar = 1", (x, eps, 0.7, 1.0)),
    ]


def _guided_cases(g: torch.Generator) -> list[Case]:
    c, u = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    return [
        Case("w = 2 (catches the weight on the wrong term)", (c, u, 2.0)),
        Case("w = 0 is the conditional prediction", (c, u, 0.0)),
        Case("w = 0.5", (c, u, 0.5)),
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
    Exercise(q_sample, NOTEBOOK, 1.0, _q_cases, setup=SETUP, atol=1e-5),
    Exercise(ddpm_step, NOTEBOOK, 2.0, _ddpm_cases, setup=SETUP, atol=1e-4),
    Exercise(ddim_step, NOTEBOOK, 2.0, _ddim_cases, setup=SETUP, atol=1e-4),
    Exercise(guided_noise, NOTEBOOK, 1.0, _guided_cases, setup=SETUP),
    Exercise(ddim_sample, NOTEBOOK, 3.0, _sample_cases, call=_run_sample, setup=SETUP, atol=1e-3),
]
