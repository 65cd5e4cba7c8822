"""Lesson 05's GPT: causality, weight tying, attention equal to lesson 02's block, init, overfitting, sampling,
batches, training on real text, the parameter-count exercise and bench/gpt.py (course_lib.models.gpt,
course_lib.text.language_model)."""

from dataclasses import replace

import pytest
import torch

from course_lib.models.gpt import GPT, CausalSelfAttention, GPTConfig
from course_lib.nn import causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from course_lib.text import decoding
from course_lib.text import language_model as lm

CONFIG = GPTConfig(vocab_size=11, block_size=16, layers=2, heads=2, d_model=16)


def test_shapes_loss_and_weight_tying():
    torch.manual_seed(0)
    model = GPT(CONFIG)
    idx, targets = torch.randint(0, 11, (3, 10)), torch.randint(0, 11, (3, 10))
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 10, 11) and loss.shape == ()
    assert abs(loss.item() - torch.log(torch.tensor(11.0)).item()) < 0.1  # small init: near-uniform predictions
    assert model.head.weight is model.tok_emb.weight
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_the_future_cannot_change_the_past():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    idx = torch.randint(0, 11, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_fused_attention_equals_the_lesson_02_block():
    torch.manual_seed(0)
    attn = CausalSelfAttention(CONFIG)
    x = torch.randn(2, 9, 16)
    q, k, v = (split_heads(p, 2) for p in attn.qkv(x).chunk(3, dim=-1))
    expected = attn.proj(merge_heads(scaled_dot_product_attention(q, k, v, causal_mask(9))[0]))
    torch.testing.assert_close(attn(x), expected)


def test_residual_projections_are_scaled_down():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=8, layers=8, heads=2, d_model=64))
    std = model.blocks[0].mlp[2].weight.std().item()
    assert 0.5 * 0.02 / 4 < std < 1.5 * 0.02 / 4  # 0.02 / sqrt(2 * 8)
    assert abs(model.blocks[0].mlp[0].weight.std().item() - 0.02) < 0.004


def test_a_tiny_gpt_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(CONFIG)
    idx = torch.randint(0, 11, (4, 16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model(idx[:, :-1], idx[:, 1:])[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_sampling_past_block_size_appends_tokens_and_is_seeded():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    start = torch.zeros(2, 1, dtype=torch.long)
    a = decoding.generate(model, start, 30, use_cache=False, generator=torch.Generator().manual_seed(3))
    b = decoding.generate(model, start, 30, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2, 31) and torch.equal(a, b)  # longer than block_size
    greedy_like = decoding.generate(model, start, 5, temperature=1e-4, top_k=1)
    assert torch.equal(greedy_like[:, 1], model(start)[0][:, -1].argmax(-1))


def test_random_batch_targets_are_inputs_shifted_by_one():
    ids = torch.arange(100)
    x, y = lm.random_batch(ids, 5, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 8)
    torch.testing.assert_close(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)
    with pytest.raises(ValueError, match="too short"):
        lm.random_batch(torch.arange(5), 2, 8, torch.Generator())


def test_training_lowers_validation_loss_on_real_text(tmp_path):
    import pydoc_data.topics

    text = "".join(pydoc_data.topics.topics.values())[:200_000]
    path = tmp_path / "docs.txt"
    path.write_text(text)
    data = lm.file_chars(path)
    sizes = GPTConfig(vocab_size=None, layers=1, heads=2, d_model=32, block_size=32)  # build_gpt sets the vocabulary
    model = lm.build_gpt(data.tokenizer.vocab_size, sizes)
    before = lm.estimate_loss(model, data.val, batches=10)
    record = lm.train_gpt(
        model, data, replace(lm.RECIPE.train, steps=150, warmup=10), eval_every=50, eval_batches=10, progress=False
    )
    assert record["step"] == [50, 100, 150]
    assert record["val_loss"][-1] < before - 1.0
    assert lm.estimate_loss(model, data.val, batches=10) == lm.estimate_loss(model, data.val, batches=10)


def test_count_parameters_reference_matches_the_model():
    from course_tools.grading.lessons import lesson05

    lesson05._self_check()


def test_bench_gpt_prints_the_figures_the_issue_asks_for(tmp_path):
    import json
    import pydoc_data.topics
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "docs.txt"
    path.write_text("".join(pydoc_data.topics.topics.values())[:300_000])
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpt.py"), str(path), "--quick", "--baseline"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["bench"] for r in records] == ["gpt", "gpt", "gpt", "gpt_summary", "gpt"]
    first = records[0]
    for key in ("tokens_per_s", "mfu", "matmul_peak_gflops", "seconds_to_1.886", "final_val_loss"):
        assert key in first
    assert 0 < first["mfu"] < 1 and first["tokens_per_s"] > 0
    assert records[3]["loss_at_budget"] == records[1]["final_val_loss"]
    assert records[3]["sprint_loss"] == records[2]["final_val_loss"]
