"""Lessons 05-06's decoding: the KV cache changes nothing but speed; filters, beam search and likelihoods match
plain references (course_lib.text.decoding, course_lib.nn.kv_cache)."""

import math

import pytest
import torch

from course_lib.models.gpt import GPT, GPTConfig
from course_lib.text import decoding


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=24, layers=2, heads=2, d_model=16)).eval()


def test_cached_forward_equals_full_forward(model):
    idx = torch.randint(11, (3, 20), generator=torch.Generator().manual_seed(1))
    full, _ = model(idx)
    cache = model.new_cache()
    pieces = [model(idx[:, :7], cache=cache)[0]] + [model(idx[:, i : i + 1], cache=cache)[0] for i in range(7, 13)]
    pieces.append(model(idx[:, 13:], cache=cache)[0])  # several new tokens at once after a cache
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    assert len(cache) == 20 and cache.layers[1].keys.shape == (3, 2, 20, 8)


def test_cache_refuses_to_run_past_block_size(model):
    cache = model.new_cache()
    model(torch.zeros(1, 20, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="20 cached \\+ 5 new tokens"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="use_cache=False"):
        decoding.generate(model, torch.zeros(1, 4, dtype=torch.long), 21)


@pytest.mark.parametrize("settings", [dict(temperature=0), dict(temperature=0.8, top_k=5), dict(top_p=0.9)])
def test_generate_with_and_without_cache_gives_identical_tokens(model, settings):
    prompt = torch.randint(11, (4, 3), generator=torch.Generator().manual_seed(2))
    with_cache = decoding.generate(
        model, prompt, 21, use_cache=True, generator=torch.Generator().manual_seed(3), **settings
    )
    without = decoding.generate(
        model, prompt, 21, use_cache=False, generator=torch.Generator().manual_seed(3), **settings
    )
    assert with_cache.shape == (4, 24)
    assert torch.equal(with_cache, without)


def test_generate_without_cache_slides_past_block_size_and_respects_banned(model):
    out = decoding.generate(
        model,
        torch.zeros(2, 1, dtype=torch.long),
        60,
        use_cache=False,
        banned=[0, 1, 2],
        generator=torch.Generator().manual_seed(0),
    )
    assert out.shape == (2, 61) and not torch.isin(out[:, 1:], torch.tensor([0, 1, 2])).any()


def test_top_k_and_top_p_filters_against_plain_python():
    logits = torch.randn(6, 13, generator=torch.Generator().manual_seed(4))
    kept = decoding.top_k_filter(logits, 4).isfinite()
    assert torch.equal(kept.sum(-1), torch.full((6,), 4))
    assert all(set(kept[r].nonzero().flatten().tolist()) == set(logits[r].topk(4).indices.tolist()) for r in range(6))
    for p in (0.05, 0.5, 0.9, 1.0):
        filtered = decoding.top_p_filter(logits, p)
        for r in range(6):
            probs = logits[r].softmax(-1).tolist()
            order = sorted(range(13), key=lambda i: -probs[i])
            nucleus, total = set(), 0.0
            for i in order:  # add tokens until their mass reaches p
                nucleus.add(i)
                total += probs[i]
                if total >= p:
                    break
            assert set(filtered[r].isfinite().nonzero().flatten().tolist()) == nucleus, (p, r)
            torch.testing.assert_close(filtered[r][list(nucleus)], logits[r][list(nucleus)])
    with pytest.raises(ValueError, match="top_p"):
        decoding.top_p_filter(logits, 0.0)


def test_sample_next_greedy_and_filters():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 5.0]])
    assert decoding.sample_next(logits, temperature=0).tolist() == [1, 2]
    draws = torch.stack(
        [decoding.sample_next(logits, top_k=1, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    )
    assert (draws == torch.tensor([1, 2])).all()
    with pytest.raises(ValueError, match="temperature"):
        decoding.sample_next(logits, temperature=-1)


def test_beam_step_and_search(model):
    scores = torch.tensor([-1.0, -2.0])
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]]))
    best, parent, token = decoding.beam_step(scores, log_probs, 3)
    totals = {(b, t): scores[b].item() + log_probs[b, t].item() for b in range(2) for t in range(3)}
    expected = sorted(totals, key=totals.get, reverse=True)[:3]
    assert list(zip(parent.tolist(), token.tolist())) == expected
    torch.testing.assert_close(best, torch.tensor([totals[e] for e in expected]))

    prompt = torch.tensor([3, 1, 4])
    greedy = decoding.generate(model, prompt[None], 10, temperature=0)[0]
    one_beam, _ = decoding.beam_search(model, prompt, 10, beams=1)
    assert torch.equal(one_beam, greedy)
    tokens, score = decoding.beam_search(model, prompt, 10, beams=5)
    assert tokens.shape == (13,)
    assert math.isclose(score, decoding.log_likelihood(model, tokens[None], 3).item() * 10, rel_tol=1e-4)
    assert score >= decoding.log_likelihood(model, greedy[None], 3).item() * 10 - 1e-4


def test_log_likelihood_matches_a_token_by_token_loop(model):
    idx = torch.randint(11, (2, 40), generator=torch.Generator().manual_seed(5))  # longer than block_size=24
    expected = []
    for row in idx:
        lps = []
        for i in range(5, 40):
            context = row[max(0, i - 24) : i]
            lps.append(model(context[None])[0][0, -1].log_softmax(-1)[row[i]].item())
        expected.append(sum(lps) / len(lps))
    torch.testing.assert_close(decoding.log_likelihood(model, idx, 5), torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_repetition_statistics():
    assert decoding.distinct_n("abcd", 2) == 1.0
    assert decoding.distinct_n("aaaa", 1) == 0.25
    assert decoding.repetition_rate("abcabcabc", 3) == pytest.approx(4 / 7)
    assert decoding.repetition_rate("abcdefg", 3) == 0.0
    assert decoding.perplexity(0.0) == 1.0
