"""Lessons 15-16: the annotator, the preference data, the losses against independent computations, and tiny models
that PPO and DPO visibly move in the right direction."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from course_lib.alignment import dpo, ppo, reward_training
from course_lib.alignment.policy import exact_kl, response_logits, token_logprobs
from course_lib.alignment.preferences import (
    NEW_TOKENS,
    PROMPT_CHARS,
    PreferenceRecipe,
    Preferences,
    annotate,
    make_preferences,
    prompt_windows,
    true_reward,
)
from course_lib.artifacts import artifact_paths, load_or_make_tensors
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.reward_model import RewardModel, word_ends
from course_lib.models.value_head import PolicyWithValue
from course_lib.tokenizers import CharTokenizer

TEXT = "O happy day, I love thee well. Go to, villain, thou art a cursed knave!\n" * 30


def tiny_gpt(vocab: int, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=PROMPT_CHARS + NEW_TOKENS, layers=1, heads=2, d_model=16))


def test_true_reward_is_vader_compound_score():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["I love thee", "cursed villain", "a table", "not good"]
    expected = [SentimentIntensityAnalyzer().polarity_scores(t)["compound"] for t in texts]
    assert true_reward(texts).tolist() == pytest.approx(expected)
    assert true_reward(["I love thee"]).item() > 0 > true_reward(["cursed villain"]).item()
    assert true_reward(["a table"]).item() == 0
    with pytest.raises(TypeError, match="list of texts"):
        true_reward("I love thee")


def test_annotator_follows_bradley_terry():
    g = torch.Generator().manual_seed(0)
    n = 20000
    a_wins = annotate(torch.full((n,), 0.1), torch.zeros(n), noise=0.1, generator=g)
    assert a_wins.float().mean().item() == pytest.approx(1 / (1 + math.exp(-1)), abs=0.01)  # sigmoid(1)
    assert annotate(torch.ones(5), -torch.ones(5), noise=0.01, generator=g).all()
    with pytest.raises(ValueError, match="noise must be > 0"):
        annotate(torch.ones(1), torch.ones(1), noise=0.0, generator=g)


def test_prompts_end_before_whitespace():
    tokenizer = CharTokenizer(TEXT)
    ids = tokenizer.encode_tensor(TEXT)
    prompts = prompt_windows(ids, tokenizer, 50, seed=0)
    assert prompts.shape == (50, PROMPT_CHARS)
    for row in prompts:
        start = next(i for i in range(len(ids)) if torch.equal(ids[i : i + PROMPT_CHARS], row))
        assert tokenizer.decode([ids[start + PROMPT_CHARS].item()]) in " \n"
    assert torch.equal(prompts, prompt_windows(ids, tokenizer, 50, seed=0))


def test_preference_pairs_are_untied_and_labelled_by_the_annotator():
    tokenizer = CharTokenizer(TEXT)
    model = tiny_gpt(tokenizer.vocab_size)
    recipe = PreferenceRecipe(prompts=40, per_prompt=4, noise=0.01, held_out=0.25)
    data = make_preferences(model, tokenizer.encode_tensor(TEXT), tokenizer, recipe)
    assert data.responses.shape == (40, 4, PROMPT_CHARS + NEW_TOKENS) and data.reward.shape == (40, 4)
    assert torch.equal(data.responses[:, :, :PROMPT_CHARS], data.prompts[:, None].expand(-1, 4, -1))
    p, c, r = data.pairs.T
    assert (data.reward[p, c] != data.reward[p, r]).all()  # exact ties are not judged
    assert data.agrees_with_truth(data.pairs).float().mean() > 0.95  # almost noiseless annotator
    assert data.test.sum() == 10 and len(data.split(True)) + len(data.split(False)) == len(data.pairs)


def test_load_or_make_tensors_caches_and_remakes_a_corrupt_file(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return {"x": torch.arange(5)}

    first = load_or_make_tensors("demo", make, {"a": 1}, cache=tmp_path)
    again = load_or_make_tensors("demo", make, {"a": 1}, cache=tmp_path)
    assert torch.equal(first["x"], again["x"]) and len(calls) == 1
    weights, _ = artifact_paths("demo", {"a": 1}, tmp_path)
    weights.write_bytes(b"garbage")
    assert torch.equal(load_or_make_tensors("demo", make, {"a": 1}, cache=tmp_path)["x"], torch.arange(5))
    assert len(calls) == 2


def test_bradley_terry_loss_is_logistic_loss_and_stable():
    chosen, rejected = torch.randn(10), torch.randn(10)
    expected = F.binary_cross_entropy_with_logits(chosen - rejected, torch.ones(10))
    torch.testing.assert_close(reward_training.bradley_terry_loss(chosen, rejected), expected)
    assert torch.isfinite(reward_training.bradley_terry_loss(torch.tensor([-100.0]), torch.tensor([100.0])))


def test_reward_model_reads_only_the_continuation():
    model = RewardModel(tiny_gpt(7), "\n 'ab.!", prompt_len=PROMPT_CHARS)
    torch.nn.init.normal_(model.head.weight)
    x = torch.randint(0, 7, (3, PROMPT_CHARS + NEW_TOKENS))
    y = x.clone()
    y[:, :PROMPT_CHARS] = torch.randint(0, 7, (3, PROMPT_CHARS))
    torch.testing.assert_close(model(x), model(y))
    no_words = torch.randint(0, 2, (3, PROMPT_CHARS + NEW_TOKENS))  # newlines and spaces only
    no_words[:, :PROMPT_CHARS] = x[:, :PROMPT_CHARS]
    torch.testing.assert_close(model(no_words), torch.zeros(3))  # nothing to score but the (zero) offset
    with pytest.raises(ValueError, match="alphabet has 3 characters, the GPT 7 tokens"):
        RewardModel(tiny_gpt(7), "abc", prompt_len=2)


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_reward_training_keeps_the_embeddings_unless_asked_and_learns_the_pairs(train_embeddings):
    n, k, alphabet = 16, 2, "\n 'ab.!"
    g = torch.Generator().manual_seed(0)
    responses = torch.randint(0, 7, (n, k, PROMPT_CHARS + NEW_TOKENS), generator=g)
    responses[:, 0, PROMPT_CHARS:] = 3  # "aaaa...": one long word, always chosen
    responses[:, 1, PROMPT_CHARS:] = 1  # spaces only: no word, so it scores the (zero) offset
    pairs = torch.stack([torch.arange(n), torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)], 1)
    test = torch.arange(n) >= 12
    data = Preferences(responses[:, 0, :PROMPT_CHARS], responses, torch.tensor([[1.0, 0.0]] * n), pairs, test)
    model = RewardModel(tiny_gpt(7), alphabet, PROMPT_CHARS)
    before = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
    training = reward_training.RewardTraining(  # no weight decay: whatever moves, a gradient moved it
        steps=30, batch=4, lr=1e-2, warmup=1, weight_decay=0.0, train_embeddings=train_embeddings
    )
    record = reward_training.train_reward_model(model, data, training)
    moved = {name for name, p in model.backbone.named_parameters() if not torch.equal(p, before[name])}
    embeddings = {"tok_emb.weight", "pos_emb.weight"}
    assert (moved >= embeddings) if train_embeddings else not (moved & embeddings), moved
    assert "blocks.0.attn.qkv.weight" in moved
    assert record["test_truth"] == 1.0  # it fits the pairs (the held-out ones repeat the training continuations)


def test_word_ends_are_where_regex_words_end():
    import re

    tokenizer = CharTokenizer(TEXT + "'tis knav")
    word_char = torch.tensor([c.isalpha() or c == "'" for c in tokenizer.chars])
    texts = ["O happy day, I love thee", "'tis ill. Go to", "villain!", "!, .", "cursed knav"]
    for text in texts:
        ends = word_ends(torch.tensor([tokenizer.encode(text)]), word_char)[0]
        expected = [m.end() - 1 for m in re.finditer(r"[A-Za-z']+", text)]
        assert torch.nonzero(ends).squeeze(1).tolist() == expected, text


def test_exact_kl_matches_pytorch_kl_div():
    logits, ref = torch.randn(2, 5, 9), torch.randn(2, 5, 9)
    expected = F.kl_div(ref.log_softmax(-1), logits.log_softmax(-1), log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(exact_kl(logits, ref), expected)
    assert exact_kl(logits, logits + 3.0).abs().max() < 1e-6


def test_gae_limits_are_monte_carlo_and_td():
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    adv, returns = ppo.gae(rewards, values, gamma=1.0, lam=1.0)
    reward_to_go = rewards.flip(1).cumsum(1).flip(1)
    torch.testing.assert_close(returns, reward_to_go)
    adv, _ = ppo.gae(rewards, values, gamma=0.9, lam=0.0)
    next_values = torch.cat([values[:, 1:], torch.zeros(3, 1)], 1)
    torch.testing.assert_close(adv, rewards + 0.9 * next_values - values)


def test_clipped_loss_is_plain_at_ratio_one_and_clips_only_beyond():
    adv = torch.randn(4, 5)
    old = torch.randn(4, 5)
    torch.testing.assert_close(ppo.clipped_policy_loss(old, old, adv), -adv.mean())
    new = (old + 1.0).requires_grad_()  # ratio e > 1.2: positive advantages clipped (no gradient)
    ppo.clipped_policy_loss(new, old, adv, clip=0.2).backward()
    assert (new.grad[adv > 0] == 0).all() and (new.grad[adv < 0] != 0).all()


def test_shaped_reward_penalises_the_log_ratio_and_scores_the_last_token():
    lp, ref = torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]])
    rewards = ppo.kl_shaped_rewards(torch.tensor([3.0]), lp, ref, beta=0.5)
    torch.testing.assert_close(rewards, torch.tensor([[-0.25, 0.5 + 3.0]]))


class CountReward(torch.nn.Module):
    """Scores a continuation by how often it contains one token."""

    def __init__(self, token: int) -> None:
        super().__init__()
        self.token = token

    def forward(self, sequences):
        return (sequences[:, PROMPT_CHARS:] == self.token).float().sum(1) - 3.0


def test_ppo_raises_the_reward_of_a_tiny_policy():
    tokenizer = CharTokenizer(TEXT)
    ids = tokenizer.encode_tensor(TEXT)
    reference = tiny_gpt(tokenizer.vocab_size)
    policy = PolicyWithValue(reference)
    target = tokenizer.encode("!")[0]
    config = ppo.PPOTraining(iterations=15, batch=16, minibatch=8, lr=3e-3, beta=0.01, eval_every=15, eval_prompts=16)
    prompts = prompt_windows(ids, tokenizer, 16, seed=1)
    history = ppo.train_ppo(policy, reference, CountReward(target), ids, prompts, tokenizer, config, progress=False)
    assert history["eval_score"][-1] > history["eval_score"][0] + 3, history["eval_score"]
    assert history["eval_kl"][0] == pytest.approx(0.0, abs=1e-5) and history["eval_kl"][-1] > 0


def counted_preferences(vocab: int, prompts: int, token: int) -> Preferences:
    """Random continuations, each pair judged by how often `token` occurs (more is better), without noise."""
    g = torch.Generator().manual_seed(0)
    responses = torch.randint(0, vocab, (prompts, 4, PROMPT_CHARS + NEW_TOKENS), generator=g)
    responses[:, :, :PROMPT_CHARS] = responses[:, :1, :PROMPT_CHARS]
    reward = (responses[:, :, PROMPT_CHARS:] == token).float().sum(-1)
    a, b = torch.triu_indices(4, 4, offset=1)
    rows = [
        (p, i, j) if reward[p, i] > reward[p, j] else (p, j, i)
        for p in range(prompts)
        for i, j in zip(a.tolist(), b.tolist())
        if reward[p, i] != reward[p, j]
    ]
    test = torch.zeros(prompts, dtype=torch.bool)
    test[: prompts // 4] = True
    return Preferences(responses[:, 0, :PROMPT_CHARS], responses, reward, torch.tensor(rows), test)


def test_dpo_loss_starts_at_ln2_and_training_separates_the_pairs():
    reference = tiny_gpt(9)
    data = counted_preferences(9, 64, token=3)
    chosen, rejected = data.sequences(data.pairs[:8])
    lp_c, lp_r = dpo.sequence_logprob(reference, chosen), dpo.sequence_logprob(reference, rejected)
    assert dpo.dpo_loss(lp_c, lp_r, lp_c, lp_r, beta=0.1).item() == pytest.approx(math.log(2))
    manual = token_logprobs(response_logits(reference, chosen), chosen[:, PROMPT_CHARS:]).sum(1)
    torch.testing.assert_close(lp_c, manual)
    policy = GPT(reference.config)
    policy.load_state_dict(reference.state_dict())
    training = dpo.DPOTraining(beta=0.5, steps=60, batch=16, lr=3e-3, log_every=60, eval_pairs=64)
    record = dpo.train_dpo(policy, reference, data, training)
    assert record["accuracy"][0] == 0.5 and record["accuracy"][-1] > 0.7, record["accuracy"]
    with torch.no_grad():  # the policy now writes the preferred token more often than the reference
        probs = [response_logits(m, data.responses[:8, 0]).softmax(-1)[..., 3].mean() for m in (policy, reference)]
    assert probs[0] > 1.5 * probs[1]


def test_the_shipped_reward_model_loads_for_the_lessons_recipe_and_only_for_it(tmp_path, monkeypatch):
    import json

    from course_lib.artifacts import SHIPPED, read_metadata
    from course_lib.text.language_model import build_gpt

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))  # nothing cached: what a fresh clone loads
    (shipped_json,) = SHIPPED.glob("cheerful-reward-model-*.json")
    alphabet = tuple(json.loads(shipped_json.read_text())["config"]["alphabet"])  # lesson 05's 84 characters
    backbone = build_gpt(len(alphabet))
    key = reward_training.shipped_key(reward_training.RewardTraining(), backbone, alphabet)
    meta = read_metadata("cheerful-reward-model", key, shipped=SHIPPED)
    assert meta is not None, (
        "lesson 15's recipe changed: re-make with `python -m course_lib.alignment.reward_training ship`"
    )
    metrics = meta["metrics"]
    assert len(metrics["step_loss"]) == reward_training.RewardTraining().steps
    assert metrics["test_truth"] >= 0.83  # the lesson's assert, on the data of the machine that made it
    assert len(metrics["test_prompts"]) == round(PreferenceRecipe().held_out * PreferenceRecipe().prompts)

    def no_training(*args, **kwargs):
        raise AssertionError("trained instead of loading the shipped reward model")

    monkeypatch.setattr(reward_training, "train_reward_model", no_training)
    n = PreferenceRecipe().prompts
    made = dict(alphabet=alphabet, recipe=PreferenceRecipe())
    data = Preferences(
        torch.zeros(n, 1), torch.zeros(n, 4, 1), torch.zeros(n, 4), torch.zeros(0, 3), torch.zeros(n), **made
    )
    model, record = reward_training.pretrained_reward_model(backbone, data)
    assert not torch.equal(model.backbone.blocks[0].attn.qkv.weight, backbone.blocks[0].attn.qkv.weight)
    assert record["step_loss"][-1] < record["step_loss"][0] and model.scale.item() > 0
    unseen = reward_training.unseen_prompts(data, record)  # its own split, not this data's (all False here)
    assert unseen.sum().item() == len(metrics["test_prompts"]) and not data.test.bool().any()
    for other in ({"use_shipped": False}, {"training": reward_training.RewardTraining(steps=10)}):
        with pytest.raises(AssertionError, match="trained instead"):
            reward_training.pretrained_reward_model(backbone, data, **other)
    for data_other in (replace(data, recipe=PreferenceRecipe(prompts=100)), replace(data, recipe=None)):
        with pytest.raises(AssertionError, match="trained instead"):  # other or unknown preferences: another model
            reward_training.pretrained_reward_model(backbone, data_other)


def test_reward_at_kl_reads_a_ppo_run_as_numpy_interpolates_it():
    import numpy as np

    record = {"eval_kl": [0.0, 1.2, 2.0, 3.5], "eval_true_reward": [0.03, 0.1, 0.25, 0.3]}
    for kl in (0.0, 0.4, 1.2, 1.7, 3.49, 3.5):  # both ends of the run included
        expected = np.interp(kl, record["eval_kl"], record["eval_true_reward"])
        assert ppo.reward_at_kl(record, kl) == pytest.approx(expected)
    assert ppo.reward_at_kl(record, 3.6) is None and ppo.reward_at_kl(record, -0.1) is None  # outside the run
    dipped = {"eval_kl": [0.0, 2.0, 1.8, 3.0], "eval_true_reward": [0.0, 0.2, 0.1, 0.4]}  # a noisy KL reading dips
    assert ppo.reward_at_kl(dipped, 1.0) == pytest.approx(0.1)
    assert ppo.reward_at_kl(dipped, 1.9) == pytest.approx(0.19)  # the first bracket, 0.0-2.0
    assert ppo.reward_at_kl(dipped, 2.5) == pytest.approx(0.275)  # past the dip: 1.8-3.0
