"""Lesson 09 exercises: the discriminator's and the generator's losses, one update of ADA's probability, and one
full GAN training step (both players), checked on small GANs and, in the solutions notebook, on the trained one."""

from __future__ import annotations

import torch

from course_lib.models.gan import Discriminator, GANConfig, Generator
from course_lib.vision import gan_training
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "09_gan"
SETUP = """\
import math
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean log sigmoid(real) - mean log(1 - sigmoid(fake))."""
    return gan_training.discriminator_loss(real_logits, fake_logits)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss: -mean log sigmoid(fake)."""
    return gan_training.generator_loss(fake_logits)


def ada_update(p: float, r_t: float, target: float, images_seen: int, speed_images: int) -> float:
    return gan_training.ada_update(p, r_t, target, images_seen, speed_images)


def gan_training_step(generator, discriminator, g_opt, d_opt, real, z, labels) -> tuple[float, float]:
    """One discriminator step on real and (detached) fakes, then one generator step through the updated
    discriminator on the same fakes; -> (discriminator loss, generator loss) as floats."""
    fake = generator(z, labels)
    d_loss = gan_training.discriminator_loss(discriminator(real, labels), discriminator(fake.detach(), labels))
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    g_loss = gan_training.generator_loss(discriminator(fake, labels))
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
    return d_loss.item(), g_loss.item()


# --- cases ----------------------------------------------------------------------------------------


def _d_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "batch 8 of each (catches a swapped or missing sign)",
            (torch.randn(8, generator=g), torch.randn(8, generator=g)),
        ),
        Case(
            "confident logits (catches log(sigmoid) underflow)",
            (torch.tensor([120.0, 2.0]), torch.tensor([-30.0, 120.0])),
        ),
        Case(
            "different batch sizes (catches a sum instead of a mean)",
            (torch.randn(5, generator=g), torch.randn(3, generator=g)),
        ),
    ]


def _g_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("batch 6 (catches the saturating log(1 - D))", (torch.randn(6, generator=g) * 3,)),
        Case("rejected fakes, logits -120 (catches log(sigmoid) underflow)", (torch.tensor([-120.0, -5.0, 0.0]),)),
    ]


def _ada_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("overfitting: r_t above target, p rises", (0.3, 0.9, 0.6, 256, 20_000)),
        Case("underfitting: r_t below target, p falls", (0.3, 0.2, 0.6, 256, 20_000)),
        Case("p cannot go below 0", (0.001, 0.1, 0.6, 256, 20_000)),
        Case("p cannot go above 1", (0.999, 0.95, 0.6, 512, 10_000)),
        Case("r_t exactly at the target: p stays where it is", (0.4, 0.6, 0.6, 256, 20_000)),
    ]


def _step_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("conditional GAN, width 16, batch 8", (), {"seed": draw_seed(g), "classes": 10, "batch": 8}),
        Case("unconditional GAN, width 16, batch 5", (), {"seed": draw_seed(g), "classes": 0, "batch": 5}),
    ]


def _run_step(fn, case: Case):
    """Build the case's GAN from its seed, run one step of `fn`, return its losses and a few weights after it."""
    torch.manual_seed(case.kwargs["seed"])
    config = GANConfig(width=16, classes=case.kwargs["classes"])
    generator, discriminator = Generator(config), Discriminator(config)
    # plain SGD: Adam's first step is lr * sign(gradient), which would turn rounding noise into visible differences
    g_opt = torch.optim.SGD(generator.parameters(), lr=0.1)
    d_opt = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    b = case.kwargs["batch"]
    real = torch.rand(b, 1, 8, 8) * 2 - 1
    z = torch.randn(b, config.noise)
    labels = torch.randint(0, 10, (b,)) if config.classes else None
    backward_into_generator = []  # one entry per backward pass that reaches the generator's output

    def count_backward(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda grad: backward_into_generator.append(1))

    generator.register_forward_hook(count_backward)
    out = fn(generator, discriminator, g_opt, d_opt, real, z, labels)
    if not isinstance(out, tuple) or len(out) != 2:
        return out  # compared as it is: the message says what was expected
    d_loss, g_loss = (float(v) for v in out)
    return (
        torch.tensor([d_loss, g_loss]),
        generator.body[-2].weight.detach().clone(),  # the generator's last convolution, after its step
        discriminator.head.weight.detach().clone(),  # the discriminator's head, after its step
        # the discriminator's step must not back-propagate into the generator (detach the fakes there)
        f"backward passes that reach the generator: {len(backward_into_generator)}",
    )


EXERCISES = [
    Exercise(discriminator_loss, NOTEBOOK, 1.0, _d_cases, setup=SETUP, forbidden=("binary_cross_entropy", "BCE")),
    Exercise(generator_loss, NOTEBOOK, 1.0, _g_cases, setup=SETUP, forbidden=("binary_cross_entropy", "BCE")),
    Exercise(ada_update, NOTEBOOK, 1.0, _ada_cases, setup=SETUP),
    Exercise(
        gan_training_step,
        NOTEBOOK,
        3.0,
        _step_cases,
        call=_run_step,
        setup=SETUP,
        forbidden=("binary_cross_entropy", "BCE"),
        atol=1e-4,
    ),
]
