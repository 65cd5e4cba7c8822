"""Lesson 08's blocks against independent references, and the yardstick on data whose answers are known."""

import math

import pytest
import torch
import torch.nn.functional as F

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


# --- lesson 09: GANs -------------------------------------------------------------------------------


def test_gan_losses_equal_pytorch_binary_cross_entropy():
    from course_lib.vision import gan as G

    real, fake = torch.randn(7) * 5, torch.randn(5) * 5
    expected = F.binary_cross_entropy_with_logits(real, torch.ones(7)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros(5)
    )
    torch.testing.assert_close(G.discriminator_loss(real, fake), expected)
    torch.testing.assert_close(G.generator_loss(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(5)))


def test_augment_is_identity_at_p0_and_keeps_range_of_shifts():
    from course_lib.vision import gan as G

    images = torch.rand(16, 1, 8, 8) * 2 - 1
    assert torch.equal(G.augment(images, 0.0, torch.Generator().manual_seed(0)), images)
    changed = G.augment(images, 1.0, torch.Generator().manual_seed(0))
    assert changed.shape == images.shape and not torch.equal(changed, images)


def test_ada_update_moves_toward_the_target_and_clamps():
    from course_lib.vision import gan as G

    assert G.ada_update(0.5, 0.9, 0.6, 100, 1000) == pytest.approx(0.6)
    assert G.ada_update(0.5, 0.1, 0.6, 100, 1000) == pytest.approx(0.4)
    assert G.ada_update(0.95, 0.9, 0.6, 100, 1000) == 1.0
    assert G.ada_update(0.05, 0.1, 0.6, 100, 1000) == 0.0


def test_minibatch_std_sees_a_collapsed_batch():
    from course_lib.models.gan import minibatch_std

    same = torch.randn(1, 3, 4, 4).expand(6, -1, -1, -1)
    assert minibatch_std(same)[:, -1].abs().max() == 0
    assert minibatch_std(torch.randn(6, 3, 4, 4))[:, -1].min() > 0


def test_gan_shapes_and_growing_stages():
    from course_lib.models.gan import Discriminator, GANConfig, Generator, GrowingConfig
    from course_lib.vision import gan as G

    config = GANConfig(width=16, classes=10)
    images = Generator(config)(torch.randn(4, config.noise), torch.arange(4))
    assert images.shape == (4, 1, 8, 8) and images.abs().max() <= 1
    assert Discriminator(config)(images, torch.arange(4)).shape == (4,)
    pair = G.GrowingPair(GrowingConfig(width=8))
    for stage, size in enumerate((4, 8, 16)):
        fake = pair.generator(torch.randn(3, 32), stage, alpha=0.5)
        assert fake.shape == (3, 1, size, size)
        assert pair.discriminator(fake, stage, alpha=0.5).shape == (3,)


# --- lesson 10: diffusion --------------------------------------------------------------------------


def test_ddpm_step_at_t0_with_the_true_noise_recovers_x0():
    from course_lib.vision import diffusion as D

    schedule = D.cosine_schedule(50)
    x0, eps = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    x1 = D.q_sample(x0, torch.zeros(3, dtype=torch.long), eps, schedule)
    torch.testing.assert_close(D.ddpm_step(x1, eps, 0, schedule, torch.randn_like(x0)), x0, atol=1e-4, rtol=1e-4)


def test_ddim_step_with_the_true_noise_lands_on_x0_and_on_the_forward_marginal():
    from course_lib.vision import diffusion as D

    schedule = D.cosine_schedule(100)
    bars = schedule.alpha_bars
    x0, eps = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    x_t = D.q_sample(x0, torch.full((3,), 80), eps, schedule)
    torch.testing.assert_close(D.ddim_step(x_t, eps, bars[80].item(), 1.0), x0, atol=1e-4, rtol=1e-4)
    expected = D.q_sample(x0, torch.full((3,), 30), eps, schedule)  # same eps, lower noise level
    torch.testing.assert_close(D.ddim_step(x_t, eps, bars[80].item(), bars[30].item()), expected, atol=1e-4, rtol=1e-4)


def test_schedules_and_ddim_times():
    from course_lib.vision import diffusion as D

    for schedule in (D.cosine_schedule(200), D.linear_schedule(200)):
        bars = schedule.alpha_bars
        assert bars[0] > 0.99 and bars[-1] < 0.01 and bool((bars[1:] < bars[:-1]).all())
    assert D.ddim_times(200, 5) == [199, 149, 100, 50, 0]
    with pytest.raises(ValueError, match="steps must be in"):
        D.ddim_times(10, 11)


def test_a_tiny_diffusion_model_learns_two_points():
    """The epsilon loss falls and samples land near the two training points."""
    from course_lib.models.unet import PointDenoiser
    from course_lib.vision import diffusion as D
    from course_lib.vision.diffusion import DiffusionTraining

    torch.manual_seed(0)
    data = torch.tensor([[1.0, 1.0], [-1.0, -1.0]]).repeat(128, 1)
    schedule = D.cosine_schedule(50)
    model = PointDenoiser(50, width=64)
    record = D.train_diffusion(
        model,
        schedule,
        data,
        torch.zeros(256, dtype=torch.long),
        DiffusionTraining(steps=600, batch=64, lr=3e-3, drop_label=0.0),
    )
    assert sum(record["step_loss"][-50:]) < sum(record["step_loss"][:50])
    points = D.sample(model, (200, 2), schedule, labels=torch.zeros(200, dtype=torch.long))
    nearest = torch.cdist(points, torch.tensor([[1.0, 1.0], [-1.0, -1.0]])).min(dim=1).values
    assert (nearest < 0.3).float().mean() > 0.8


# --- lesson 11: the Vision Transformer -------------------------------------------------------------


def test_patchify_reads_patches_row_by_row():
    from course_lib.models.vit import patchify

    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    tokens = patchify(images, 2)  # (2, 2 rows x 3 columns of patches, 2 * 2 * 3)
    assert tokens.shape == (2, 6, 12)
    row, col = 1, 2  # patch 5 in reading order
    expected = images[1, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2].permute(1, 2, 0).flatten()
    assert torch.equal(tokens[1, 5], expected)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        patchify(torch.zeros(1, 1, 5, 5), 2)


def test_attention_rollout_and_distance_on_known_maps():
    from course_lib.vision import vit as VT

    t = 5
    identity = [torch.eye(t).expand(2, 3, t, t)] * 3
    torch.testing.assert_close(VT.attention_rollout(identity), torch.eye(t).expand(2, t, t))
    assert VT.attention_distance(identity, grid=2, patch=2).abs().max() == 0  # every patch reads itself


def test_a_tiny_vit_overfits_a_batch():
    from course_lib.models.vit import ViT, ViTConfig
    from course_lib.train import adamw

    torch.manual_seed(0)
    images, labels = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    model = ViT(ViTConfig(d_model=32, layers=1, d_ff=64))
    optimizer = adamw(model, lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model(images).argmax(-1) == labels).all()


def test_signed_and_unit_images_round_trip():
    from course_lib.data.digits import to_signed, to_unit

    images = load_digits().test_images[:5]
    assert to_signed(images).shape == (5, 1, 8, 8) and to_signed(images).min() >= -1
    torch.testing.assert_close(to_unit(to_signed(images)), images)
    assert to_unit(torch.full((1, 1, 2, 2), 3.0)).max() == 1  # clipped
