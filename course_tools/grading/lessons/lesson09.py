"""Lesson 09 exercises: the hinge loss of the discriminator, the WGAN-GP gradient penalty, and one full GAN training
step (both players) with them, checked on small GANs and, in the solutions notebook, on the trained one. The
lesson trains with the binary cross-entropy losses; these are the variants that SAGAN, BigGAN and WGAN-GP use."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.gan import Discriminator, GANConfig, Generator
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "09_gan"
SETUP = """\
import math
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(max(0, 1 - D(real))) + mean(max(0, 1 + D(fake))), each mean over its own batch."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def gradient_penalty(discriminator, real, fake, labels, alpha) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): x_hat = alpha real + (1 - alpha) fake; mean over the batch of
    (||d D(x_hat) / d x_hat||_2 - 1)^2, differentiable in the discriminator's weights."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed, labels).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def gan_training_step(generator, discriminator, g_opt, d_opt, real, z, labels, alpha, gp_weight):
    """The discriminator's step on its hinge loss plus gp_weight x the gradient penalty (fakes detached), then
    the generator's step on -mean D(G(z)) through the updated discriminator, same fakes; -> (d loss, g loss)."""
    fake = generator(z, labels)
    d_loss = hinge_discriminator_loss(discriminator(real, labels), discriminator(fake.detach(), labels))
    d_loss = d_loss + gp_weight * gradient_penalty(discriminator, real, fake.detach(), labels, alpha)
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    g_loss = -discriminator(fake, labels).mean()
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()
    return d_loss.item(), g_loss.item()


# --- cases ----------------------------------------------------------------------------------------


def _hinge_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "batch 8 of each, logits around 0 (catches a missing max(0, .))",
            (torch.randn(8, generator=g) * 2, torch.randn(8, generator=g) * 2),
        ),
        Case(
            "confident, right verdicts cost nothing: real 3, fake -3",
            (torch.tensor([3.0, 1.5]), torch.tensor([-3.0, -1.0])),
        ),
        Case(
            "different batch sizes (catches a sum instead of a mean)",
            (torch.randn(5, generator=g), torch.randn(3, generator=g)),
        ),
    ]


def _small_gan(seed: int, classes: int) -> tuple[Generator, Discriminator, GANConfig]:
    torch.manual_seed(seed)
    config = GANConfig(width=16, classes=classes)
    return Generator(config), Discriminator(config), config


def _penalty_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("conditional discriminator, batch 6", (), {"seed": draw_seed(g), "classes": 10, "batch": 6}),
        Case("unconditional discriminator, batch 4", (), {"seed": draw_seed(g), "classes": 0, "batch": 4}),
    ]


def _run_penalty(fn, case: Case):
    """The penalty's value and its gradient in the discriminator's last weights (it must be differentiable)."""
    _, discriminator, config = _small_gan(case.kwargs["seed"], case.kwargs["classes"])
    b = case.kwargs["batch"]
    real, fake = torch.rand(b, 1, 8, 8) * 2 - 1, torch.rand(b, 1, 8, 8) * 2 - 1
    labels = torch.randint(0, 10, (b,)) if config.classes else None
    alpha = torch.rand(b, 1, 1, 1)
    penalty = fn(discriminator, real, fake, labels, alpha)
    if type(penalty) is not torch.Tensor or penalty.shape != ():
        raise TypeError(f"gradient_penalty must return a 0-dimensional tensor; got {penalty!r:.80}")
    if not penalty.requires_grad:
        raise TypeError(
            "the penalty must be differentiable in the discriminator's weights: take the gradient with respect "
            "to x_hat with create_graph=True"
        )
    penalty.backward()
    return penalty.detach(), discriminator.head.weight.grad.clone()


def _step_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "conditional GAN, width 16, batch 8, penalty weight 10",
            (),
            {"seed": draw_seed(g), "classes": 10, "batch": 8},
        ),
        Case(
            "unconditional GAN, width 16, batch 5, penalty weight 1",
            (),
            {"seed": draw_seed(g), "classes": 0, "batch": 5, "gp_weight": 1.0},
        ),
    ]


def _run_step(fn, case: Case):
    """Build the case's GAN from its seed, run two steps of `fn` on one batch, return the losses and a few weights."""
    generator, discriminator, config = _small_gan(case.kwargs["seed"], case.kwargs["classes"])
    # plain SGD: Adam's first step is lr * sign(gradient), which would turn rounding noise into visible differences
    g_opt = torch.optim.SGD(generator.parameters(), lr=0.1)
    d_opt = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    b = case.kwargs["batch"]
    real = torch.rand(b, 1, 8, 8) * 2 - 1
    z = torch.randn(b, config.noise)
    labels = torch.randint(0, 10, (b,)) if config.classes else None
    alpha, gp_weight = torch.rand(b, 1, 1, 1), case.kwargs.get("gp_weight", 10.0)
    backward_into_generator = []  # one entry per backward pass that reaches the generator's output

    def count_backward(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda grad: backward_into_generator.append(1))

    generator.body[-1].register_forward_hook(count_backward)  # the last layer: generator.forward(...) passes it too
    outs = [fn(generator, discriminator, g_opt, d_opt, real, z, labels, alpha, gp_weight) for _ in range(2)]
    for out in outs:  # two steps in a row: gradients left over from the first would show in the second
        if type(out) is not tuple or len(out) != 2 or not all(type(v) is float for v in out):
            raise TypeError(
                f"gan_training_step must return (discriminator loss, generator loss) as two floats; got {out!r:.80}"
            )
    return (
        torch.tensor([float(v) for out in outs for v in out]),
        generator.body[-2].weight.detach().clone(),  # the generator's last convolution, after its step
        discriminator.head.weight.detach().clone(),  # the discriminator's head, after its step
        generator.project[1].running_mean.clone(),  # batch norm's statistics: one generator call per step
        # the discriminator's step must not back-propagate into the generator (detach the fakes there): one per step
        f"backward passes that reach the generator in two steps: {len(backward_into_generator)}",
    )


EXERCISES = [
    Exercise(hinge_discriminator_loss, NOTEBOOK, 1.0, _hinge_cases, setup=SETUP),
    Exercise(gradient_penalty, NOTEBOOK, 2.0, _penalty_cases, call=_run_penalty, setup=SETUP, atol=1e-4),
    Exercise(
        gan_training_step,
        NOTEBOOK,
        3.0,
        _step_cases,
        call=_run_step,
        setup=SETUP,
        atol=1e-4,
    ),
]
