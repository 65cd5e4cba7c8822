"""Lesson 09's GANs: the losses against PyTorch's binary cross-entropy, ADA's augmentation and controller, the
minibatch standard deviation, and the shapes of the conditional and the growing networks
(course_lib.vision.gan_training, course_lib.models.gan)."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.models.gan import Discriminator, GANConfig, Generator, GrowingConfig, GrowingPair, minibatch_std
from course_lib.vision import gan_training


def test_gan_losses_equal_pytorch_binary_cross_entropy():
    real, fake = torch.randn(7) * 5, torch.randn(5) * 5
    expected = F.binary_cross_entropy_with_logits(real, torch.ones(7)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros(5)
    )
    torch.testing.assert_close(gan_training.discriminator_loss(real, fake), expected)
    torch.testing.assert_close(
        gan_training.generator_loss(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(5))
    )


def test_augment_is_identity_at_p0_and_shifts_each_image_by_at_most_one_pixel_at_p1():
    images = torch.rand(16, 1, 8, 8) * 2 - 1
    assert torch.equal(gan_training.augment(images, 0.0, torch.Generator().manual_seed(0)), images)
    changed = gan_training.augment(images, 1.0, torch.Generator().manual_seed(0))
    assert changed.shape == images.shape and not torch.equal(changed, images)
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)  # the background (-1) fills the uncovered border
    shifts = [(dy, dx) for dy in range(3) for dx in range(3)]  # every move of up to one pixel, by hand
    used = set()
    for i in range(16):
        matches = [s for s in shifts if torch.equal(changed[i], padded[i, :, s[0] : s[0] + 8, s[1] : s[1] + 8])]
        assert matches, f"image {i} is not a shift of its input by at most one pixel"
        used.add(matches[0])
    assert len(used) > 2


def test_ada_update_moves_toward_the_target_and_clamps():
    assert gan_training.ada_update(0.5, 0.9, 0.6, 100, 1000) == pytest.approx(0.6)
    assert gan_training.ada_update(0.5, 0.1, 0.6, 100, 1000) == pytest.approx(0.4)
    assert gan_training.ada_update(0.95, 0.9, 0.6, 100, 1000) == 1.0
    assert gan_training.ada_update(0.05, 0.1, 0.6, 100, 1000) == 0.0


def test_minibatch_std_sees_a_collapsed_batch():
    same = torch.randn(1, 3, 4, 4).expand(6, -1, -1, -1)
    assert minibatch_std(same)[:, -1].abs().max() == 0
    assert minibatch_std(torch.randn(6, 3, 4, 4))[:, -1].min() > 0


def test_gan_shapes_and_growing_stages():
    config = GANConfig(width=16, classes=10)
    images = Generator(config)(torch.randn(4, config.noise), torch.arange(4))
    assert images.shape == (4, 1, 8, 8) and images.abs().max() <= 1
    assert Discriminator(config)(images, torch.arange(4)).shape == (4,)
    pair = GrowingPair(GrowingConfig(width=8))
    for stage, size in enumerate((4, 8, 16)):
        fake = pair.generator(torch.randn(3, 32), stage, alpha=0.5)
        assert fake.shape == (3, 1, size, size)
        assert pair.discriminator(fake, stage, alpha=0.5).shape == (3,)


def test_the_shipped_experiment_pairs_fit_their_recipes_and_load_without_training(tmp_path, monkeypatch):
    from course_lib.artifacts import SHIPPED, read_metadata

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))  # nothing cached: what a fresh clone loads
    for kind in gan_training.SHIPPED_KINDS:
        meta = read_metadata(f"digits-gan-{kind}", gan_training.gan_key(kind), shipped=SHIPPED)
        assert meta is not None, (
            f"{kind}'s recipe changed: re-make with `python -m course_lib.vision.gan_training ship`"
        )
        assert meta["metrics"]["history"][-1]["step"] == gan_training.RECIPES[kind].train.steps

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped pair must load, not train")

    monkeypatch.setattr(gan_training, "train_gan", no_training)
    pair, record = gan_training.pretrained_gan("small-ada")
    assert record["history"][-1]["p"] > 0.3  # ADA raised its augmentation probability in the shipped run
    assert "conditional" not in gan_training.SHIPPED_KINDS  # the lesson trains its headline GAN in the open
