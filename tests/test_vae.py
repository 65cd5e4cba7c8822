"""Lesson 08's variational autoencoder: the binomial likelihood and Gaussian KL against torch.distributions, the
importance-weighted bound against the ELBO, and the baselines and a short training run
(course_lib.vision.vae_training)."""

import torch

from course_lib.data import load_digits
from course_lib.models.vae import VAE, VAEConfig
from course_lib.vision import vae_training


def test_binomial_log_likelihood_matches_torch_distributions():
    counts = torch.randint(0, 17, (3, 64)).float()
    logits = torch.randn(5, 3, 64) * 3
    expected = torch.distributions.Binomial(16, logits=logits).log_prob(counts).sum(-1)
    torch.testing.assert_close(vae_training.binomial_log_likelihood(counts, logits), expected, atol=1e-3, rtol=1e-4)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(vae_training.gaussian_kl(mu, logvar), expected)


def test_the_graders_gaussian_references_match_torch_distributions():
    """Lesson 08's exercises 1-2 are graded against these; the exercise forbids torch.distributions."""
    from course_tools.grading.lessons import lesson08

    z, mu, logvar = torch.randn(5, 3, 4), torch.randn(3, 4), torch.randn(3, 4)
    expected = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(lesson08.gaussian_log_density(z, mu, logvar), expected)
    mu_p, logvar_p = torch.randn(3, 4), torch.randn(3, 4)
    q, p = (
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(mu_p, (0.5 * logvar_p).exp()),
    )
    torch.testing.assert_close(
        lesson08.gaussian_kl_between(mu, logvar, mu_p, logvar_p), torch.distributions.kl_divergence(q, p)
    )


def test_the_importance_weighted_bound_is_tighter_than_the_elbo():
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=4, hidden=32)).eval()
    counts = vae_training.to_counts(load_digits().test_images[:20])
    with torch.no_grad():
        elbo = torch.stack([vae_training.elbo_terms(model, counts)["elbo"] for _ in range(200)]).mean(0)
    one = vae_training.iwae_nll(model, counts, samples=1, seed=1)
    many = vae_training.iwae_nll(model, counts, samples=200, seed=1)
    assert (many <= -elbo + 1e-3).all() and one.mean() > many.mean()


def test_baselines_and_a_short_training_run_order_as_expected():
    digits = load_digits()
    train, test = vae_training.to_counts(digits.train_images), vae_training.to_counts(digits.test_images)
    independent = vae_training.independent_pixels_nll(train, test)
    mixture = vae_training.binomial_mixture_nll(train, test, components=10, iterations=20)
    assert mixture < independent
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=8, hidden=64))
    record = vae_training.train_vae(model, digits, vae_training.VAETraining(steps=300, batch=64, lr=3e-3))
    assert record["step_loss"][-1] < 0.7 * record["step_loss"][0]
