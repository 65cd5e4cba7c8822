"""Lesson 18's library: the watermark, the memorisation audit, the pronoun statistic and the digit detector,
each against an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.responsible import bias, detector_training, memorisation, watermark


def tiny_gpt(seed: int = 0, vocab: int = 11, block: int = 8) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, layers=1, heads=2, d_model=16)).eval()


def test_green_table_has_gamma_share_per_row_and_depends_on_the_key():
    table = watermark.green_table(84, 0.5, 42)
    assert table.shape == (84, 84) and table.dtype == torch.bool
    assert (table.sum(1) == 42).all()
    assert not torch.equal(table, watermark.green_table(84, 0.5, 43))
    assert torch.equal(table, watermark.green_table(84, 0.5, 42))
    assert (watermark.green_table(10, 0.25, 1).sum(1) == round(2.5)).all()
    with pytest.raises(ValueError, match="gamma"):
        watermark.green_table(10, 1.0, 0)


def test_the_sampler_reads_the_context_it_says():
    """Every step's logits equal a fresh forward pass over the context the docstring describes: the whole
    sequence until it fills the block, then from the last rebuild (block // 2 tokens back) on."""
    model, block = tiny_gpt(), 8
    prompt = torch.randint(11, (2, 5), generator=torch.Generator().manual_seed(1))
    out, logits = watermark.watermarked_generate(
        model, prompt, 14, None, 0.0, torch.Generator().manual_seed(0), return_logits=True
    )
    start = 0
    for step in range(14):
        end = 5 + step  # tokens before the one being drawn
        if end - start > block:
            start = end - block // 2
        with torch.no_grad():
            expected = model(out[:, start:end])[0][:, -1]
        torch.testing.assert_close(logits[:, step], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(watermark.forced_logits(model, out, 5), logits)


def test_the_bonus_moves_probability_to_the_green_list_only():
    model = tiny_gpt()
    table = watermark.green_table(11, 0.5, 7)
    prompt = torch.randint(11, (256, 3), generator=torch.Generator().manual_seed(2))
    plain = watermark.watermarked_generate(model, prompt, 30, None, 0.0, torch.Generator().manual_seed(3))
    marked = watermark.watermarked_generate(model, prompt, 30, table, 4.0, torch.Generator().manual_seed(3))
    same_seed = watermark.watermarked_generate(model, prompt, 30, table, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(plain, same_seed)  # delta 0 is no watermark
    z_plain = watermark.z_score(watermark.green_hits(plain[:, 2:], table), 0.5)
    z_marked = watermark.z_score(watermark.green_hits(marked[:, 2:], table), 0.5)
    assert z_marked.mean() > z_plain.mean() + 3


def test_z_score_is_the_binomial_standardisation():
    hits = torch.tensor([[True] * 30 + [False] * 70])
    expected = (30 - 0.25 * 100) / math.sqrt(100 * 0.25 * 0.75)
    assert watermark.z_score(hits, 0.25).item() == pytest.approx(expected, rel=1e-6)


def test_edit_characters_replaces_about_the_rate():
    tokens = torch.zeros(50, 200, dtype=torch.long)
    edited = watermark.edit_characters(tokens, 0.3, 84, torch.Generator().manual_seed(0))
    changed = (edited != tokens).float().mean().item()
    assert 0.3 * (1 - 1 / 84) - 0.02 < changed < 0.3 + 0.02


def test_all_secrets_logprob_matches_scoring_each_secret_directly():
    model = tiny_gpt(3, vocab=14, block=12)
    digits, prefix = torch.arange(4, 14), torch.tensor([1, 2, 3])
    logp = memorisation.all_secrets_logprob(model, prefix, digits, 3)
    assert logp.shape == (1000,)
    for secret in (0, 7, 123, 999):
        ids = torch.tensor([int(c) for c in f"{secret:03d}"]) + 4
        seq = torch.cat([prefix, ids])[None]
        with torch.no_grad():
            lp = model(seq)[0][0, :-1].log_softmax(-1)
        direct = sum(lp[2 + i, ids[i]] for i in range(3))
        assert logp[secret].item() == pytest.approx(direct.item(), abs=1e-4)
    # a secret the model prefers gets exposure log2(1000); ties rank it last
    assert memorisation.exposure(logp, str(int(logp.argmax()))) == pytest.approx(math.log2(1000))
    assert memorisation.exposure(torch.zeros(8), "3") == pytest.approx(0.0)


def test_planting_and_deduplication():
    text = "a\nb\nb\n\nc"
    canaries = [memorisation.Canary("123", 3), memorisation.Canary("999", 0)]
    planted = memorisation.plant(text, canaries, seed=0)
    assert planted.count("My secret number is 123.") == 3 and "999" not in planted
    assert [line for line in planted.split("\n") if "secret" not in line] == text.split("\n")  # the text intact
    long_line = "To be, or not to be, that is the question:"
    deduped = memorisation.deduplicate_lines(f"{planted}\n{long_line}\nHAMLET.\n{long_line}\nHAMLET.\n\n")
    assert deduped.count("My secret number is 123.") == 1 and deduped.count(long_line) == 1
    assert deduped.split("\n").count("b") == 2 and deduped.count("HAMLET.") == 2  # short lines all stay
    assert deduped.count("\n\n") >= 1


def test_greedy_completion_is_argmax_decoding():
    model = tiny_gpt(4)
    prompt = torch.randint(11, (3, 3), generator=torch.Generator().manual_seed(5))
    out = memorisation.greedy_completion(model, prompt, 4)
    seq = prompt
    for _ in range(4):
        with torch.no_grad():
            seq = torch.cat([seq, model(seq)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq[:, 3:])
    with pytest.raises(ValueError, match="block_size"):
        memorisation.greedy_completion(model, prompt, 6)


def test_pronoun_counts_and_the_bootstrap():
    counts = bias.pronoun_counts(["He said his name.", "She and her SHE.", "Hermit; the shell."])
    assert counts.tolist() == [[2, 0], [0, 3], [0, 0]]
    assert bias.male_share(counts) == pytest.approx(0.4)
    shares = bias.bootstrap_shares(counts, 500, torch.Generator().manual_seed(0))
    low, high = bias.percentile_interval(shares)
    assert 0.0 <= low < 0.4 < high <= 1.0
    assert torch.equal(shares, bias.bootstrap_shares(counts, 500, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="no gendered"):
        bias.male_share(torch.zeros(2, 2, dtype=torch.long))
    same = bias.paired_bootstrap_difference(counts, counts, 300, torch.Generator().manual_seed(1))
    assert same.abs().max().item() == 0.0  # the same rows for both sides
    other = torch.tensor([[1, 1], [1, 1], [0, 0]])
    paired = bias.paired_bootstrap_difference(counts, other, 300, torch.Generator().manual_seed(1))
    assert paired.shape == (300,) and paired.min() >= -1 and paired.max() <= 1
    with pytest.raises(ValueError, match="same shape"):
        bias.paired_bootstrap_difference(counts, other[:2], 10, torch.Generator())
    rates = bias.word_rates(["he he she", "x"], ("he", "she"))
    assert rates == pytest.approx([1e4 * 2 / 4, 1e4 * 1 / 4])


def test_the_detector_separates_what_it_can_see():
    """Bright images against dark ones: a separable pair the detector must learn perfectly (the AUC from
    scikit-learn, as the lesson reads it)."""
    g = torch.Generator().manual_seed(0)
    real = torch.rand(200, 8, 8, generator=g) * 0.4
    fake = 0.6 + torch.rand(200, 8, 8, generator=g) * 0.4
    model = detector_training.train_detector(real, fake, detector_training.DetectorTraining(steps=60))
    s = torch.cat([detector_training.scores(model, fake), detector_training.scores(model, real)])
    assert roc_auc_score([1] * 200 + [0] * 200, s.numpy()) == 1.0
    assert detector_training.quantise(torch.tensor([0.0, 0.04, 0.97, 1.2])).tolist() == [0.0, 0.0625, 1.0, 1.0]
