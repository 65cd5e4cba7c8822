"""Lesson 13 exercises: the prior's training loss (its target is the clean image embedding), one guided DDIM step
of the decoder, and the whole text -> prior -> decoder pipeline, checked on small models and, in the solutions
notebook, on the lesson's trained ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.data.shapes import make_shapes
from course_lib.models.clip import CLIP, CLIPConfig
from course_lib.models.prior import Prior
from course_lib.models.unet import UNet, UNetConfig
from course_lib.multimodal.text_to_image import prior_sample
from course_lib.vision.diffusion import cosine_schedule, ddim_step, ddim_times, guided_noise
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "13_text_to_image"
SETUP = """\
import math
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def prior_loss(prior, image, text, t, noise, alpha_bars):
    """x_t = sqrt(abar_t) z_image + sqrt(1 - abar_t) noise; mean squared error of prior(x_t, t, z_text) vs z_image."""
    a = alpha_bars[t][:, None]
    return F.mse_loss(prior(a.sqrt() * image + (1 - a).sqrt() * noise, t, text), image)


def guided_ddim_step(decoder, x, t, embedding, weight, alpha_bar_t, alpha_bar_prev):
    eps = guided_noise(decoder, x, torch.full((len(x),), t), embedding, weight)
    return ddim_step(x, eps, alpha_bar_t, alpha_bar_prev)


def text_to_image(clip, prior, decoder, tokens, prior_noise, image_noise, schedules, guidance):
    """schedules = {"prior": (alpha_bars, times), "decoder": (alpha_bars, times)}, times largest first."""
    bars, times = schedules["prior"]
    text = clip.encode_text(tokens)
    z = prior_sample(prior, text, ddim_steps=len(times), noise=prior_noise)
    bars, times = schedules["decoder"]
    x = image_noise
    for i, t in enumerate(times):
        previous = bars[times[i + 1]].item() if i + 1 < len(times) else 1.0
        x = guided_ddim_step(decoder, x, t, z, guidance, bars[t].item(), previous)
    return ((x + 1) / 2).clamp(0, 1)


# --- cases ----------------------------------------------------------------------------------------


def _prior_loss_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("8 embeddings of width 16, 50 steps", (), {"seed": draw_seed(g), "n": 8}),
        Case("one embedding at t = 0 and large t", (), {"seed": draw_seed(g), "n": 2}),
    ]


def _run_prior_loss(fn, case: Case):
    torch.manual_seed(case.kwargs["seed"])
    n = case.kwargs["n"]
    prior = Prior(embed=16, width=32, steps=50)
    image, text = F.normalize(torch.randn(n, 16), dim=-1), F.normalize(torch.randn(n, 16), dim=-1)
    t = torch.randint(0, 50, (n,)) if n > 2 else torch.tensor([0, 49])
    noise = torch.randn(n, 16)
    with torch.no_grad():
        return fn(prior, image, text, t, noise, cosine_schedule(50).alpha_bars)


def _small_decoder(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(UNetConfig(steps=50, width=8, channels=3, cond=8, coordinates=True))


def _step_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("guidance 3, a middle step", (), {"seed": draw_seed(g), "weight": 3.0, "t": 30, "prev": 20}),
        Case(
            "guidance 0 is the conditional model alone", (), {"seed": draw_seed(g), "weight": 0.0, "t": 10, "prev": 5}
        ),
        Case(
            "the first step from pure noise (catches a missing x0 clip)",
            (),
            {"seed": draw_seed(g), "weight": 1.5, "t": 49, "prev": 40},
        ),
        Case("the last step, to alpha_bar 1", (), {"seed": draw_seed(g), "weight": 2.0, "t": 3, "prev": -1}),
    ]


def _run_step(fn, case: Case):
    decoder = _small_decoder(case.kwargs["seed"])
    x = torch.randn(3, 3, 16, 16) * 1.5
    embedding = F.normalize(torch.randn(3, 8), dim=-1)
    bars = cosine_schedule(50).alpha_bars
    previous = 1.0 if case.kwargs["prev"] < 0 else bars[case.kwargs["prev"]].item()
    with torch.no_grad():
        return fn(
            decoder, x, case.kwargs["t"], embedding, case.kwargs["weight"], bars[case.kwargs["t"]].item(), previous
        )


def _pipeline_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("4 captions, 5 prior steps, 6 decoder steps, guidance 2", (), {"seed": draw_seed(g), "guidance": 2.0}),
        Case("guidance 0", (), {"seed": draw_seed(g), "guidance": 0.0}),
    ]


def small_pipeline(seed: int, prior_steps: int = 5, decoder_steps: int = 6) -> dict:
    """Small untrained models and inputs for the pipeline: what the grader feeds `text_to_image`."""
    torch.manual_seed(seed)
    clip = CLIP(CLIPConfig(d_model=16, heads=2, layers=1, d_ff=32, embed=8)).eval()
    prior = Prior(embed=8, width=32, steps=40).eval()
    decoder = _small_decoder(seed + 1).eval()
    tokens = make_shapes(4, "test", seed=seed % 1000).tokens
    schedules = {
        "prior": (cosine_schedule(40).alpha_bars, ddim_times(40, prior_steps)),
        "decoder": (cosine_schedule(50).alpha_bars, ddim_times(50, decoder_steps)),
    }
    return {
        "clip": clip,
        "prior": prior,
        "decoder": decoder,
        "tokens": tokens,
        "prior_noise": torch.randn(4, 8),
        "image_noise": torch.randn(4, 3, 16, 16),
        "schedules": schedules,
    }


def _run_pipeline(fn, case: Case):
    p = small_pipeline(case.kwargs["seed"])
    with torch.no_grad():
        return fn(
            p["clip"],
            p["prior"],
            p["decoder"],
            p["tokens"],
            p["prior_noise"],
            p["image_noise"],
            p["schedules"],
            case.kwargs["guidance"],
        )


EXERCISES = [
    Exercise(prior_loss, NOTEBOOK, 1.0, _prior_loss_cases, call=_run_prior_loss, setup=SETUP),
    Exercise(guided_ddim_step, NOTEBOOK, 2.0, _step_cases, call=_run_step, setup=SETUP, atol=1e-4),
    Exercise(
        text_to_image,
        NOTEBOOK,
        3.0,
        _pipeline_cases,
        call=_run_pipeline,
        setup=SETUP,
        atol=2e-3,  # untrained nets: a different but equal order of operations can move a pixel across the x0 clip
        rtol=1e-3,
    ),
]
