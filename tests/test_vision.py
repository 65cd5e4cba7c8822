"""Lesson 08's blocks against independent references, and the yardstick on data whose answers are known."""

import math

import pytest
import torch

from course_lib.data import load_digits
from course_lib.models.vae import VAE, VAEConfig
from course_lib.vision import vae as V
from course_lib.vision.judge import Yardstick, frechet_distance, random_shift, trained_judge


def test_binomial_log_likelihood_matches_torch_distributions():
    counts = torch.randint(0, 17, (3, 64)).float()
    logits = torch.randn(5, 3, 64) * 3
    expected = torch.distributions.Binomial(16, logits=logits).log_prob(counts).sum(-1)
    torch.testing.assert_close(V.binomial_log_likelihood(counts, logits), expected, atol=1e-3, rtol=1e-4)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(V.gaussian_kl(mu, logvar), expected)


def test_frechet_distance_matches_scipy_sqrtm():
    from scipy import linalg

    a, b = torch.randn(400, 6).double(), (torch.randn(300, 6) * 1.5 + 0.3).double()
    ca, cb = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + float((ca + cb - 2 * linalg.sqrtm(ca @ cb).real).trace())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_the_importance_weighted_bound_is_tighter_than_the_elbo():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=4, hidden=32)).eval()
    counts = V.to_counts(load_digits().test_images[:20])
    with torch.no_grad():
        elbo = torch.stack([V.elbo_terms(model, counts)["elbo"] for _ in range(200)]).mean(0)
    one = V.iwae_nll(model, counts, samples=1, seed=1)
    many = V.iwae_nll(model, counts, samples=200, seed=1)
    assert (many <= -elbo + 1e-3).all() and one.mean() > many.mean()


def test_baselines_and_a_short_training_run_order_as_expected():
    digits = load_digits()
    train, test = V.to_counts(digits.train_images), V.to_counts(digits.test_images)
    independent = V.independent_pixels_nll(train, test)
    mixture = V.binomial_mixture_nll(train, test, components=10, iterations=20)
    assert mixture < independent
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=8, hidden=64))
    record = V.train_vae(model, digits, V.VAETraining(steps=300, batch=64, lr=3e-3))
    assert record["step_loss"][-1] < 0.7 * record["step_loss"][0]


def test_random_shift_moves_the_ink_and_keeps_the_shape():
    image = torch.zeros(1, 8, 8)
    image[0, 3, 3] = 1.0
    shifted = torch.cat([random_shift(image, 1, torch.Generator().manual_seed(s)) for s in range(30)])
    assert shifted.shape == (30, 8, 8) and torch.allclose(shifted.sum((1, 2)), torch.ones(30))
    assert len({tuple(torch.nonzero(x)[0].tolist()) for x in shifted}) > 1


@pytest.fixture(scope="module")
def yardstick():
    judge, record = trained_judge()
    assert record["test_accuracy"] >= 0.98
    return Yardstick(judge)


def test_the_yardstick_on_data_whose_answers_are_known(yardstick):
    digits = yardstick.digits
    assert yardstick.memorisation(digits.test_images) == pytest.approx(0.05, abs=0.01)
    assert yardstick.memorisation(digits.train_images[:300]) == 1.0
    ones = digits.train_images[digits.train_labels == 1][:1].expand(300, 8, 8)
    assert yardstick.coverage(ones) == pytest.approx(0.0, abs=1e-6)
    assert yardstick.coverage(digits.test_images) > 0.99
    noise = torch.rand(300, 8, 8, generator=torch.Generator().manual_seed(0))
    assert yardstick.frechet(noise) > 10 * yardstick.floor()
    with pytest.raises(ValueError, match="at least 300"):
        yardstick.frechet(digits.test_images[:10])
    with pytest.raises(ValueError, match=r"\(n, 8, 8\)"):
        yardstick.report(torch.rand(300, 16, 16))
    assert math.isfinite(yardstick.floor())
