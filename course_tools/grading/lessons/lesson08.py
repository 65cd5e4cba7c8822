"""Lesson 08 exercises: the log-density of a diagonal Gaussian, the KL between two diagonal Gaussians, the
discretised logistic likelihood of pixel counts (a continuous density turned into a probability, stable in its
tails), the importance-weighted bound as its number of samples grows, and the whole VAE forward pass (its loss
terms) from a trained state dict."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last axis; the arguments broadcast (tests/test_vae.py checks
    it against torch.distributions, which the exercise forbids)."""
    z, mu, logvar = torch.broadcast_tensors(z, mu, logvar)
    return -0.5 * (logvar + (z - mu) ** 2 * torch.exp(-logvar) + math.log(2 * math.pi)).sum(dim=-1)


def gaussian_kl_between(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p))) per dimension (broadcast shape):
    (log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1) / 2 (tests/test_vae.py checks
    it against torch.distributions)."""
    return (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1) / 2


def discretised_logistic_log_likelihood(
    counts: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """log P(counts) summed over the last (pixel) axis, where P(k) is the mass a logistic (mu, s = exp(log_scale))
    puts on [k - 1/2, k + 1/2], count 0 taking everything below 1/2 and count 16 everything above 15 1/2
    (PixelCNN++). sigma(u) - sigma(l) = sigma(u) sigma(-l) (1 - exp(l - u)) keeps every factor's log finite;
    tests/test_lesson_grading.py checks it against float64 differences of CDFs."""
    inv_scale = torch.exp(-log_scale)
    upper, lower = (counts + 0.5 - mu) * inv_scale, (counts - 0.5 - mu) * inv_scale
    inside = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-inv_scale))
    first, last = counts == 0, counts == vae_training.LEVELS
    return torch.where(first, F.logsigmoid(upper), torch.where(last, F.logsigmoid(-lower), inside)).sum(dim=-1)


def iwae_curve(log_weights: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """log_weights (N, b) = log p(x, z) - log q(z | x) for N samples per image -> (len(ks), b): for each k, the
    k-sample bound estimated from the N // k disjoint groups of k consecutive samples (the rest unused), each
    group's log (1/k) sum exp, averaged over the groups."""
    n, b = log_weights.shape
    rows = []
    for k in ks:
        groups = log_weights[: n // k * k].reshape(n // k, k, b)  # (groups, k, b)
        rows.append((torch.logsumexp(groups, dim=1) - math.log(k)).mean(dim=0))
    return torch.stack(rows)


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


def _density_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case(
            "batch 4, latent 3 (catches sigma = exp(logvar), a missing 2 pi)", (randn(4, 3), randn(4, 3), randn(4, 3))
        ),
        Case(
            "the standard normal: mu 0, logvar 0 (the prior p(z))", (randn(5, 2), torch.zeros(5, 2), torch.zeros(5, 2))
        ),
        Case(
            "K samples (K, b, d) against one posterior (b, d): broadcasting, and narrow posteriors",
            (randn(6, 2, 4), randn(2, 4), torch.full((2, 4), -3.0)),
        ),
        Case(
            "the prior as 0-d tensors mu = 0, logvar = 0 (broadcast against (b, d))",
            (randn(3, 5), torch.zeros(()), torch.zeros(())),
        ),
    ]


def _kl_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    same_mu, same_logvar = randn(2, 3), randn(2, 3)
    return [
        Case(
            "random q and p (catches KL(p || q), the other direction)",
            (randn(4, 6), randn(4, 6), randn(4, 6), randn(4, 6)),
        ),
        Case(
            "p the standard normal: the lesson's KL from the prior",
            (randn(3, 5), randn(3, 5), torch.zeros(3, 5), torch.zeros(3, 5)),
        ),
        Case("q equal to p: KL 0", (same_mu, same_logvar, same_mu.clone(), same_logvar.clone())),
        Case(
            "a wide p and a narrow q, shifted (catches a missing variance ratio)",
            (randn(2, 4), torch.full((2, 4), -3.0), randn(2, 4) + 2, torch.full((2, 4), 1.5)),
        ),
    ]


def _logistic_cases(g: torch.Generator) -> list[Case]:
    def counts(low: int, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(low, high, shape, generator=g).float()

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=g)

    def near(c: torch.Tensor, *lead: int) -> tuple[torch.Tensor, torch.Tensor]:  # locations near the counts
        return c + 3 * torch.randn(*lead, *c.shape, generator=g), 0.7 * torch.randn(*lead, *c.shape, generator=g)

    inner, several = counts(1, 16, 3, 64), counts(0, 17, 2, 10)  # inner bins only, then every count
    ends = 16 * counts(0, 2, 2, 8)  # 0s and 16s, locations from far below 0 to far above 16, some scales wide
    tail = counts(1, 16, 12, 1)  # one pixel an image: an error in one pixel is not lost in a sum
    tail_log_scale = uniform(-1.0, 1.0, 12, 1)
    side = torch.where(torch.rand(12, 1, generator=g) < 0.5, -1.0, 1.0)
    tail_mu = tail - side * uniform(40.0, 150.0, 12, 1) * tail_log_scale.exp()  # 40-150 scales out, either side
    pixels = counts(0, 17, 4, 5)
    return [
        Case(
            "batch 3 of 64 inner counts, locations and scales near them (catches a mean over pixels, s = log_scale, "
            "bins of width 2 or shifted by a half)",
            (inner, *near(inner)),
        ),
        Case(
            "counts 0 and 16, locations from -200 to 216, 3 samples of them (catches end bins computed as inner "
            "bins, cut at a finite edge, or through log(sigmoid))",
            (ends, uniform(-200.0, 216.0, 3, 2, 8), uniform(-1.5, 3.0, 3, 2, 8)),
        ),
        Case(
            "inner counts 40 to 150 scales from the location, on both sides (catches log(sigmoid(u) - sigmoid(l)) "
            "and a form stable on one side only: -inf there)",
            (tail, tail_mu, tail_log_scale),
        ),
        Case(
            "several samples (K, b, pixels) of locations and scales for one batch of counts, end bins included",
            (several, *near(several, 4)),
        ),
        Case(
            "one logistic per pixel: location and log-scale of shape (P,) for a batch (b, P) of counts",
            (pixels, uniform(-2.0, 18.0, 5), uniform(-1.0, 1.5, 5)),
        ),
    ]


def _iwae_cases(g: torch.Generator) -> list[Case]:
    randn = _randn(g)
    return [
        Case(
            "N 12, batch 3, every k that divides 12 (catches all N samples used for every k, and the mean of the logs)",
            (randn(12, 3) * 3 - 100, (1, 2, 3, 4, 6, 12)),
        ),
        Case("N 10, k 3 and 4: the samples left over are not used", (randn(10, 2) * 2, (3, 4))),
        Case("k 1 is the ELBO's estimate: the mean of the log-weights", (randn(7, 4), (1,))),
        Case("very negative log-weights (catches exp underflow)", (randn(8, 2) * 5 - 2000.0, (1, 8))),
        Case(
            "images at very different levels, -2000 and 0 (catches one shift for the whole tensor)",
            (torch.stack([randn(8) - 2000.0, randn(8)], dim=1), (2, 8)),
        ),
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
    if type(out) is not dict:
        raise TypeError(f'vae_forward must return {{"reconstruction": ..., "kl": ...}}; got {out!r:.80}')
    return out.get("reconstruction"), out.get("kl")  # (reconstruction (b,), kl (b,))


EXERCISES = [
    Exercise(
        gaussian_log_density,
        NOTEBOOK,
        1.0,
        _density_cases,
        setup=SETUP,
        forbidden=("distributions", "log_prob", "Normal", "gaussian_nll_loss", "GaussianNLLLoss"),
    ),
    Exercise(
        gaussian_kl_between,
        NOTEBOOK,
        1.0,
        _kl_cases,
        setup=SETUP,
        forbidden=("kl_divergence", "distributions", "Normal"),
    ),
    Exercise(
        discretised_logistic_log_likelihood,
        NOTEBOOK,
        2.0,
        _logistic_cases,
        setup=SETUP,
        forbidden=("distributions", "Logistic", "TransformedDistribution"),
        atol=1e-3,
    ),
    Exercise(iwae_curve, NOTEBOOK, 2.0, _iwae_cases, setup=SETUP, atol=1e-4),
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
