"""Lesson 08 exercises: the reparameterised sample, the Gaussian KL, the binomial log-likelihood, the
importance-weighted bound, and the whole VAE forward pass (its loss terms) from a trained state dict."""

from __future__ import annotations

import math

import torch

from course_lib.models.vae import VAE, VAEConfig
from course_lib.vision import vae_training
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "08_vae"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps."""
    return mu + (0.5 * logvar).exp() * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, same shape as mu."""
    return vae_training.gaussian_kl(mu, logvar)


def binomial_log_likelihood(counts: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Binomial(k; 16, sigmoid(logit)), summed over the last (pixel) axis."""
    return vae_training.binomial_log_likelihood(counts, logits)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log_weights (K, b) = log p(x, z_k) - log q(z_k | x) -> (b,) log (1/K) sum_k exp(log_weights)."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def vae_forward(params: dict[str, torch.Tensor], counts: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """The course's (unconditional) VAE from its state dict: counts (b, 64) 0..16, eps (b, latent) ->
    {"reconstruction": log p(x | z) (b,), "kl": KL per image (b,)}, with z = mu + sigma * eps.
    The reference loads the dict into the library's VAE."""
    latent = params["encoder.4.weight"].shape[0] // 2
    model = VAE(VAEConfig(latent=latent, hidden=params["encoder.0.weight"].shape[0]))
    model.load_state_dict(params)
    mu, logvar = model.encode(counts / vae_training.LEVELS)
    z = mu + (0.5 * logvar).exp() * eps
    return {
        "reconstruction": vae_training.binomial_log_likelihood(counts, model.decode(z)),
        "kl": vae_training.gaussian_kl(mu, logvar).sum(dim=-1),
    }


# --- cases ----------------------------------------------------------------------------------------


def _randn(g: torch.Generator):
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    return randn


def _reparam_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case("batch 4, latent 3 (catches sigma = exp(logvar))", (randn(4, 3), randn(4, 3), randn(4, 3))),
        Case("logvar 0: z = mu + eps", (randn(2, 5), torch.zeros(2, 5), randn(2, 5))),
    ]


def _kl_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case("random mu and logvar (catches a flipped sign)", (randn(4, 6), randn(4, 6))),
        Case("the prior itself: KL 0", (torch.zeros(2, 3), torch.zeros(2, 3))),
        Case("narrow posteriors", (randn(3, 2), torch.full((3, 2), -4.0))),
    ]


def _binomial_cases(g: torch.Generator) -> list[Case]:
    def counts(*shape: int) -> torch.Tensor:
        return torch.randint(0, 17, shape, generator=g).float()

    return [
        Case(
            "batch 3 of 64 pixels (catches a mean instead of a sum)", (counts(3, 64), torch.randn(3, 64, generator=g))
        ),
        Case("counts 0 and 16 with large logits", (torch.tensor([[0.0, 16.0, 8.0]]), torch.tensor([[-9.0, 9.0, 0.0]]))),
        Case(
            "several samples of logits (K, b, pixels) for one batch of counts (catches a missing log-choose)",
            (counts(2, 10), torch.randn(5, 2, 10, generator=g)),
        ),
    ]


def _iwae_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case("K 50, batch 4 (catches the mean of the logs, which is the ELBO)", (randn(50, 4) * 3 - 100,)),
        Case("K 1 is the ELBO", (randn(1, 3),)),
        Case("very negative log-weights (catches exp underflow)", (randn(20, 2) - 2000.0,)),
    ]


def _forward_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "latent 4, hidden 32, batch 5",
            (torch.randint(0, 17, (5, 64), generator=g).float(),),
            {"init_seed": draw_seed(g), "latent": 4},
        ),
        Case(
            "latent 2, hidden 32, batch 3",
            (torch.randint(0, 17, (3, 64), generator=g).float(),),
            {"init_seed": draw_seed(g), "latent": 2},
        ),
    ]


@torch.no_grad()
def _run_forward(fn, case: Case):
    (counts,) = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    model = VAE(VAEConfig(latent=case.kwargs["latent"], hidden=32))
    params = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    eps = torch.randn(len(counts), case.kwargs["latent"])
    out = fn(params, counts, eps)
    if type(out) is not dict:  # compared as it is: the message says what was expected
        return out
    return out.get("reconstruction"), out.get("kl")  # (reconstruction (b,), kl (b,))


EXERCISES = [
    Exercise(reparameterize, NOTEBOOK, 1.0, _reparam_cases, setup=SETUP),
    Exercise(gaussian_kl, NOTEBOOK, 1.0, _kl_cases, setup=SETUP, forbidden=("kl_divergence",)),
    Exercise(
        binomial_log_likelihood,
        NOTEBOOK,
        2.0,
        _binomial_cases,
        setup=SETUP,
        forbidden=("Binomial", "distributions"),
        atol=1e-3,
    ),
    Exercise(iwae_bound, NOTEBOOK, 2.0, _iwae_cases, setup=SETUP, atol=1e-4),
    Exercise(
        vae_forward,
        NOTEBOOK,
        3.0,
        _forward_cases,
        call=_run_forward,
        setup=SETUP,
        forbidden=("Binomial", "distributions", "kl_divergence"),
        atol=1e-3,
    ),
]
