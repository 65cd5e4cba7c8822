"""Lesson 10's diffusion: DDPM and DDIM steps that land where the forward process says, the noise schedules,
and a tiny model that learns two points (course_lib.vision.diffusion)."""

import pytest
import torch

from course_lib.models.unet import PointDenoiser
from course_lib.vision import diffusion


def test_ddpm_step_at_t0_with_the_true_noise_recovers_x0():
    schedule = diffusion.cosine_schedule(50)
    x0, eps = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    x1 = diffusion.q_sample(x0, torch.zeros(3, dtype=torch.long), eps, schedule)
    torch.testing.assert_close(
        diffusion.ddpm_step(x1, eps, 0, schedule, torch.randn_like(x0)), x0, atol=1e-4, rtol=1e-4
    )


def test_ddim_step_with_the_true_noise_lands_on_x0_and_on_the_forward_marginal():
    schedule = diffusion.cosine_schedule(100)
    bars = schedule.alpha_bars
    x0, eps = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    x_t = diffusion.q_sample(x0, torch.full((3,), 80), eps, schedule)
    torch.testing.assert_close(diffusion.ddim_step(x_t, eps, bars[80].item(), 1.0), x0, atol=1e-4, rtol=1e-4)
    expected = diffusion.q_sample(x0, torch.full((3,), 30), eps, schedule)  # same eps, lower noise level
    torch.testing.assert_close(
        diffusion.ddim_step(x_t, eps, bars[80].item(), bars[30].item()), expected, atol=1e-4, rtol=1e-4
    )


def test_schedules_and_ddim_times():
    for schedule in (diffusion.cosine_schedule(200), diffusion.linear_schedule(200)):
        bars = schedule.alpha_bars
        assert bars[0] > 0.99 and bars[-1] < 0.01 and bool((bars[1:] < bars[:-1]).all())
    assert diffusion.ddim_times(200, 5) == [199, 149, 100, 50, 0]
    with pytest.raises(ValueError, match="steps must be in"):
        diffusion.ddim_times(10, 11)


def test_a_tiny_diffusion_model_learns_two_points():
    """The epsilon loss falls and samples land near the two training points."""
    torch.manual_seed(0)
    data = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).repeat(128, 1)
    schedule = diffusion.cosine_schedule(50)
    model = PointDenoiser(50, width=64)
    record = diffusion.train_diffusion(
        model,
        schedule,
        data,
        torch.zeros(256, dtype=torch.long),
        diffusion.DiffusionTraining(steps=600, batch=64, lr=3e-3, drop_label=0.0),
    )
    assert sum(record["step_loss"][-50:]) < sum(record["step_loss"][:50])
    points = diffusion.sample(model, (200, 2), schedule, labels=torch.zeros(200, dtype=torch.long))
    nearest = torch.cdist(points, torch.tensor([[1.0, 1.0], [-1.0, -1.0]])).min(dim=1).values
    assert (nearest < 0.3).float().mean() > 0.8


def test_the_shipped_unet_fits_its_recipe_and_loads_without_training(tmp_path, monkeypatch):
    from dataclasses import asdict

    from course_lib.artifacts import SHIPPED, read_metadata

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))  # nothing cached: what a fresh clone loads
    meta = read_metadata("digits-diffusion", asdict(diffusion.RECIPE), shipped=SHIPPED)
    assert meta is not None, "lesson 10's recipe changed: re-make with `python -m course_lib.vision.diffusion ship`"
    assert len(meta["metrics"]["step_loss"]) == diffusion.RECIPE.train.steps

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped U-Net must load, not train")

    monkeypatch.setattr(diffusion, "train_diffusion", no_training)
    unet, record = diffusion.pretrained_diffusion()
    assert sum(p.numel() for p in unet.parameters()) == 293_665 and record["step_loss"][-1] < record["step_loss"][0]
