"""Lessons 08-10's yardstick for image generators: the Frechet distance against SciPy, the judge's shift
augmentation, and the yardstick on data whose answers are known (course_lib.vision.judge_training)."""

import math

import pytest
import torch

from course_lib.vision.judge_training import Yardstick, frechet_distance, random_shift, trained_judge


def test_frechet_distance_matches_scipy_sqrtm():
    from scipy import linalg

    a, b = torch.randn(400, 6).double(), (torch.randn(300, 6) * 1.5 + 0.3).double()
    ca, cb = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + float((ca + cb - 2 * linalg.sqrtm(ca @ cb).real).trace())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_random_shift_moves_the_ink_by_at_most_one_pixel_and_keeps_the_shape():
    image = torch.zeros(1, 8, 8)
    image[0, 3, 3] = 1.0
    shifted = torch.cat([random_shift(image, 1, torch.Generator().manual_seed(s)) for s in range(30)])
    assert shifted.shape == (30, 8, 8) and torch.allclose(shifted.sum((1, 2)), torch.ones(30))
    places = {tuple(torch.nonzero(x)[0].tolist()) for x in shifted}
    assert len(places) > 1 and places <= {(r, c) for r in (2, 3, 4) for c in (2, 3, 4)}


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
    assert yardstick.frechet(noise) > 10 * yardstick.test_reference()
    with pytest.raises(ValueError, match="at least 300"):
        yardstick.frechet(digits.test_images[:10])
    with pytest.raises(ValueError, match=r"\(n, 8, 8\)"):
        yardstick.report(torch.rand(300, 16, 16))
    assert math.isfinite(yardstick.test_reference())
    # the training digits score below new digits against their own set: the test reference is no floor
    assert yardstick.copy_reference() < yardstick.test_reference()
