"""Lessons 08, 10, 18: the VAE's likelihood, its ELBO and importance-weighted bound, its training, and two baselines.

The digits' pixels are integers 0..16, so each pixel gets a Binomial(16, p) likelihood and every bound is a
bound on log p(x) in nats per image: comparable with any other model of the same integers, such as the two
baselines here (independent pixels, and a mixture of independent-pixel components fitted by EM).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from course_lib.artifacts import pretrained
from course_lib.data.digits import Digits, load_digits
from course_lib.device import seeded
from course_lib.models.vae import VAE, VAEConfig
from course_lib.train import Optimisation, TensorBatches, optimise

LEVELS = 16  # a pixel is a count 0..16: the number of "on" cells in a 4x4 block of the original 32x32 scan


def to_counts(images: torch.Tensor) -> torch.Tensor:
    """(b, 8, 8) in [0, 1] -> (b, 64) float counts 0..16."""
    return (images.reshape(len(images), -1) * LEVELS).round()


def binomial_log_likelihood(counts: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Binomial(k; 16, sigmoid(logit)) summed over pixels: counts (b, 64), logits (..., b, 64) -> (..., b)."""
    log_choose = torch.lgamma(torch.tensor(LEVELS + 1.0)) - torch.lgamma(counts + 1) - torch.lgamma(LEVELS - counts + 1)
    per_pixel = log_choose + counts * F.logsigmoid(logits) + (LEVELS - counts) * F.logsigmoid(-logits)
    return per_pixel.sum(dim=-1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per latent dimension: (b, latent) -> (b, latent)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, 1): a sample whose gradient flows to mu and logvar."""
    eps = (
        torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        if generator
        else torch.randn_like(mu)
    )
    return mu + (0.5 * logvar).exp() * eps


def elbo_terms(
    model: VAE, counts: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """One-sample ELBO pieces per image: {"reconstruction": log p(x|z) (b,), "kl": (b, latent), "elbo": (b,)}."""
    mu, logvar = model.encode(counts / LEVELS, labels)
    z = reparameterize(mu, logvar, generator)
    reconstruction = binomial_log_likelihood(counts, model.decode(z, labels))
    kl = gaussian_kl(mu, logvar)
    return {"reconstruction": reconstruction, "kl": kl, "elbo": reconstruction - kl.sum(dim=-1)}


@torch.no_grad()
def iwae_nll(
    model: VAE,
    counts: torch.Tensor,
    labels: torch.Tensor | None = None,
    samples: int = 500,
    seed: int = 0,
    chunk: int = 100,
) -> torch.Tensor:
    """-log p(x) estimated with `samples` importance samples from q(z|x) (Burda et al. 2016): (b,) nats.

    log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), tighter than the ELBO as K grows."""
    generator = torch.Generator(device=counts.device).manual_seed(seed)
    mu, logvar = model.encode(counts / LEVELS, labels)
    std = (0.5 * logvar).exp()
    log_weights = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
        z = mu + std * eps  # (k, b, latent)
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_likelihood = binomial_log_likelihood(counts, model.decode(z, labels))
        log_weights.append(log_likelihood + log_prior - log_q)
    log_w = torch.cat(log_weights)  # (K, b)
    return -(torch.logsumexp(log_w, dim=0) - math.log(samples))


@torch.no_grad()
def active_units(model: VAE, counts: torch.Tensor, labels: torch.Tensor | None = None, threshold: float = 0.01):
    """Burda et al.'s measure: a latent dimension is active when its posterior mean varies across the data,
    Cov_x(E_q[z_i | x]) > threshold. -> (number active, the variance of each dimension's mean (latent,))."""
    mu, _ = model.encode(counts / LEVELS, labels)
    variance = mu.var(dim=0)
    return int((variance > threshold).sum()), variance


@dataclass(frozen=True, kw_only=True)
class VAETraining(Optimisation):
    steps: int = 4000
    batch: int = 128
    lr: float = 2e-3
    warmup: int = 100  # of the learning rate (kl_warmup, below, is the KL weight's)
    min_lr_ratio: float = 0.1  # cosine decay to lr / 10
    kl_warmup: int = 0  # steps over which the KL weight rises from 0 to 1 (0: the plain ELBO from the start)
    free_bits: float = 0.0  # nats per latent dimension that cost nothing (Kingma et al. 2016); 0: off


@dataclass(frozen=True)
class VAERecipe:
    model: VAEConfig = field(default_factory=VAEConfig)
    train: VAETraining = field(default_factory=VAETraining)


RECIPES: dict[str, VAERecipe] = {
    "plain": VAERecipe(),
    "kl-warmup": VAERecipe(train=VAETraining(kl_warmup=1500)),
    "conditional": VAERecipe(model=VAEConfig(classes=10), train=VAETraining(kl_warmup=1500)),
    "latent-2": VAERecipe(model=VAEConfig(latent=2), train=VAETraining(kl_warmup=1500)),  # for a map of the codes
}


def training_loss(model: VAE, counts: torch.Tensor, labels: torch.Tensor | None, step: int, t: VAETraining):
    """The negative ELBO per image, with the KL weighted by the warm-up and floored by free bits."""
    terms = elbo_terms(model, counts, labels)
    kl = terms["kl"]
    if t.free_bits > 0:
        kl = kl.mean(dim=0).clamp(min=t.free_bits).expand_as(kl)  # each dimension's batch-mean KL, at least the floor
    weight = min(1.0, step / t.kl_warmup) if t.kl_warmup else 1.0
    return -(terms["reconstruction"] - weight * kl.sum(dim=-1)).mean()


def train_vae(model: VAE, digits: Digits, t: VAETraining, *, progress: bool = False) -> dict:
    """Train on the training digits; -> {"step_loss": [...], "seconds": float}."""
    device = next(model.parameters()).device
    conditional = model.config.classes > 0
    batches = TensorBatches(to_counts(digits.train_images), digits.train_labels, batch_size=t.batch, seed=t.seed)
    step = [0]

    def loss(m: VAE, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        counts, labels = batch
        step[0] += 1
        return training_loss(m, counts, labels if conditional else None, step[0], t)

    with seeded(t.seed):
        history = optimise(model, batches, loss, t, device=device, progress=progress)
    return {"step_loss": history.step_loss, "seconds": history.seconds}


def pretrained_vae(kind: str = "plain", *, device: torch.device | str = "cpu", progress: bool = False):
    """The lesson's VAE of one recipe, from the cache or trained now (seconds): -> (model in eval mode, metrics)."""
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]
    digits = load_digits()

    def build() -> VAE:
        with seeded(recipe.train.seed):
            return VAE(recipe.model)

    config = {"kind": kind, **asdict(recipe)}
    return pretrained(
        f"digits-vae-{kind}",
        build,
        lambda m: train_vae(m, digits, recipe.train, progress=progress),
        config,
        device=device,
    )


def independent_pixels_nll(train_counts: torch.Tensor, test_counts: torch.Tensor) -> float:
    """Baseline 1: each pixel its own Binomial(16, p_j), p_j fitted on the training counts (add-one smoothed).
    -> mean test negative log-likelihood, nats per image."""
    p = (train_counts.sum(0) + 1) / (LEVELS * len(train_counts) + 2)
    logits = torch.log(p) - torch.log1p(-p)
    return -binomial_log_likelihood(test_counts, logits.expand_as(test_counts)).mean().item()


def binomial_mixture_nll(
    train_counts: torch.Tensor, test_counts: torch.Tensor, components: int = 20, iterations: int = 50, seed: int = 0
) -> float:
    """Baseline 2: a mixture of `components` independent-pixel binomials, fitted by EM on the training counts.
    -> mean test negative log-likelihood, nats per image."""
    generator = torch.Generator().manual_seed(seed)
    x = train_counts.double()
    p = (x[torch.randperm(len(x), generator=generator)[:components]] + 1) / (LEVELS + 2)  # start at random images
    log_mix = torch.full((components,), -math.log(components), dtype=torch.float64)

    def component_log_likelihood(counts: torch.Tensor) -> torch.Tensor:  # (n, components)
        logits = torch.log(p) - torch.log1p(-p)
        return binomial_log_likelihood(counts.double()[:, None, :], logits[None]).squeeze(-1)

    for _ in range(iterations):
        joint = component_log_likelihood(x) + log_mix  # E step
        responsibility = (joint - torch.logsumexp(joint, dim=1, keepdim=True)).exp()
        weight = responsibility.sum(0)  # M step, with add-one smoothing of each pixel's p
        p = (responsibility.T @ x + 1) / (LEVELS * weight[:, None] + 2)
        log_mix = torch.log(weight / weight.sum())
    test_joint = component_log_likelihood(test_counts) + log_mix
    return -torch.logsumexp(test_joint, dim=1).mean().item()


@torch.no_grad()
def decode_images(model: VAE, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Codes (n, latent) -> the decoder's mean images (n, 8, 8) in [0, 1] (each pixel's expected count / 16)."""
    return torch.sigmoid(model.decode(z, labels)).reshape(-1, 8, 8)


@torch.no_grad()
def sample_images(model: VAE, n: int, labels: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """n codes from the prior N(0, I), decoded to mean images (n, 8, 8)."""
    device = next(model.parameters()).device
    z = torch.randn(n, model.config.latent, generator=torch.Generator().manual_seed(seed)).to(device)
    return decode_images(model, z, None if labels is None else labels.to(device)).cpu()
