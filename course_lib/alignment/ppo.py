"""Lessons 15-16, 18: PPO as InstructGPT uses it to fine-tune a language model against a reward model (lesson
16 compares DPO with it, lesson 18 measures what its policy writes).

Each iteration samples continuations of a batch of prompts (the rollout), scores them with the reward
model, and shapes a per-token reward: minus beta times the log-ratio of the sampled token under the
policy and the frozen reference (a one-sample estimate of the per-token KL), plus the score on the
last token. A value head on the policy's hidden states predicts the return; generalised advantage
estimation (Schulman et al., 2016) turns rewards and values into advantages, whitened per batch;
then a few epochs of the clipped surrogate objective (Schulman et al., 2017) update policy and value.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from course_lib.alignment.policy import evaluate_policy, exact_kl, response_logits, token_logprobs
from course_lib.alignment.preferences import (
    PROMPT_CHARS,
    continuation_texts,
    prompt_windows,
    sample_continuations,
    true_reward,
)
from course_lib.artifacts import pretrained
from course_lib.device import seed_offset, training_generator
from course_lib.models.gpt import GPT
from course_lib.models.value_head import PolicyWithValue
from course_lib.tokenizers import CharTokenizer
from course_lib.train import TensorBatches, train


def kl_shaped_rewards(
    score: torch.Tensor, logprob: torch.Tensor, ref_logprob: torch.Tensor, beta: float
) -> torch.Tensor:
    """Per-token rewards (b, t): -beta * (log pi - log pi_ref) per sampled token; the score (b,) added on the last."""
    rewards = -beta * (logprob - ref_logprob)
    rewards[:, -1] += score
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over (b, t) rewards and values (the value after the last token is 0).

    delta_t = r_t + gamma V_{t+1} - V_t;  A_t = delta_t + gamma lam A_{t+1}. -> (advantages, returns = A + V).
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


def whiten(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x shifted and scaled to mean 0 and standard deviation 1 over the whole batch."""
    return (x - x.mean()) / (x.std() + eps)


def clipped_policy_loss(
    logprob: torch.Tensor, old_logprob: torch.Tensor, advantages: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """PPO's clipped surrogate, negated to minimise: -mean(min(ratio A, clip(ratio, 1 - eps, 1 + eps) A)),
    ratio = pi_new(token) / pi_old(token)."""
    ratio = (logprob - old_logprob).exp()
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


@dataclass(frozen=True)
class PPOTraining:
    iterations: int = 40
    batch: int = 64  # prompts per rollout
    minibatch: int = 32
    epochs: int = 4  # passes over each rollout
    lr: float = 1.5e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    beta: float = 0.3  # KL coefficient
    clip: float = 0.2
    value_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    eval_every: int = 8
    eval_prompts: int = 256
    seed: int = 0


@dataclass
class Rollout:
    """One batch of sampled continuations and everything PPO computes from them before updating."""

    sequences: torch.Tensor  # (b, p + t)
    logprob: torch.Tensor  # (b, t) log pi_old(token)
    advantages: torch.Tensor  # (b, t), whitened
    returns: torch.Tensor  # (b, t)
    score: torch.Tensor  # (b,) reward-model scores
    kl: torch.Tensor  # (b,) exact KL from the reference, summed over the continuation
    prompt_len: int = PROMPT_CHARS


@torch.no_grad()
def collect_rollout(
    policy: PolicyWithValue,
    reference: GPT,
    reward_model: nn.Module,
    prompts: torch.Tensor,
    config: PPOTraining,
    generator: torch.Generator,
) -> Rollout:
    """Sample continuations of one batch of prompts, then `score_rollout` them."""
    policy.eval()
    device = next(policy.parameters()).device
    sequences = sample_continuations(policy.gpt, prompts, generator=generator).to(device)
    return score_rollout(policy, reference, reward_model, sequences, config)


@torch.no_grad()
def score_rollout(
    policy: PolicyWithValue,
    reference: GPT,
    reward_model: nn.Module,
    sequences: torch.Tensor,
    config: PPOTraining,
    prompt_len: int = PROMPT_CHARS,
) -> Rollout:
    """Everything PPO computes from sampled sequences before updating: old and reference log-probabilities, the
    score, the KL-shaped rewards, GAE, whitened advantages, and the exact KL for the record."""
    logits, values = policy(sequences, prompt_len)
    ref_logits = response_logits(reference, sequences, prompt_len)
    tokens = sequences[:, prompt_len:]
    logprob, ref_logprob = token_logprobs(logits, tokens), token_logprobs(ref_logits, tokens)
    score = reward_model(sequences)
    rewards = kl_shaped_rewards(score, logprob, ref_logprob, config.beta)
    advantages, returns = gae(rewards, values, config.gamma, config.lam)
    kl = exact_kl(logits, ref_logits).sum(1)
    return Rollout(sequences, logprob, whiten(advantages), returns, score, kl, prompt_len)


def ppo_loss(policy: PolicyWithValue, rollout: Rollout, index: torch.Tensor, config: PPOTraining) -> torch.Tensor:
    """The clipped policy loss plus value_coef times the value head's squared error, on rows `index` of a rollout."""
    logits, values = policy(rollout.sequences[index], rollout.prompt_len)
    logprob = token_logprobs(logits, rollout.sequences[index, rollout.prompt_len :])
    policy_loss = clipped_policy_loss(logprob, rollout.logprob[index], rollout.advantages[index], config.clip)
    value_loss = 0.5 * (values - rollout.returns[index]).pow(2).mean()
    return policy_loss + config.value_coef * value_loss


def train_ppo(
    policy: PolicyWithValue,
    reference: GPT,
    reward_model: nn.Module,
    train_ids: torch.Tensor,
    eval_prompts: torch.Tensor,
    tokenizer: CharTokenizer,
    config: PPOTraining = PPOTraining(),
    progress: bool = True,
) -> dict[str, list[float]]:
    """PPO for `config.iterations` rollouts on prompts from `train_ids`; every `eval_every` iterations (at 0 and
    after the last too) the policy is evaluated on `eval_prompts`. -> the history (per iteration and per
    evaluation), to cache."""
    c = config
    device = next(policy.parameters()).device
    optimizer = torch.optim.AdamW(policy.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    first = c.seed + seed_offset()  # the training prompts and samples move with $COURSE_SEED, as the weights do
    prompts = prompt_windows(train_ids, tokenizer, c.iterations * c.batch, first).view(c.iterations, c.batch, -1)
    generator = training_generator(c.seed, device)
    history: dict[str, list[float]] = {key: [] for key in ("score", "true_reward", "kl", "seconds")}
    evals: dict[str, list[float]] = {key: [] for key in ("iteration", "true_reward", "score", "kl")}
    spent = 0.0

    def evaluate(iteration: int) -> None:
        summary = evaluate_policy(policy.gpt, reference, reward_model, eval_prompts, tokenizer).summary()
        for key, value in {"iteration": iteration, **summary}.items():
            evals[key].append(value)

    evaluate(0)
    from tqdm.auto import tqdm

    for iteration in tqdm(range(c.iterations), disable=not progress, desc="PPO", leave=False):
        start = time.perf_counter()
        rollout = collect_rollout(policy, reference, reward_model, prompts[iteration], c, generator)
        index = TensorBatches(torch.arange(c.batch), batch_size=c.minibatch, seed=c.seed + iteration)
        train(
            policy,
            index,
            lambda m, b, rollout=rollout: ppo_loss(m, rollout, b[0], c),
            optimizer,
            steps=c.epochs * len(index),
            grad_clip=c.grad_clip,
            progress=False,
        )
        spent += time.perf_counter() - start
        texts = continuation_texts(rollout.sequences.cpu(), tokenizer)
        for key, value in (
            ("score", rollout.score.mean().item()),
            ("true_reward", true_reward(texts).mean().item()),
            ("kl", rollout.kl.mean().item()),
            ("seconds", spent),
        ):
            history[key].append(value)
        if (iteration + 1) % c.eval_every == 0 or iteration + 1 == c.iterations:
            evaluate(iteration + 1)
    return {**history, **{f"eval_{key}": value for key, value in evals.items()}}


def ppo_policy(
    reference: GPT,
    reward_model: nn.Module,
    train_ids: torch.Tensor,
    eval_prompts: torch.Tensor,
    tokenizer: CharTokenizer,
    config: PPOTraining = PPOTraining(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[PolicyWithValue, dict]:
    """Lesson 15's PPO policy: from the cache, or trained now; the reward model's `key` (set by
    `pretrained_reward_model`) is part of the cache key. -> (policy with its value head, `train_ppo`'s history)."""
    name = f"cheerful-ppo-beta{config.beta}"
    config_dict = {"reward": reward_model.key, "eval": eval_prompts.tolist()[:4], **asdict(config)}

    def build() -> PolicyWithValue:
        return PolicyWithValue(reference)

    def fit(policy: PolicyWithValue) -> dict:
        return train_ppo(
            policy, reference.to(device), reward_model.to(device), train_ids, eval_prompts, tokenizer, config, progress
        )

    return pretrained(name, build, fit, config_dict, device=device)


def reward_at_kl(record: dict, kl: float) -> float | None:
    """The true reward of a PPO run (`train_ppo`'s history) at `kl`, read off its evaluations: linearly
    interpolated between the first two consecutive evaluations whose KLs bracket `kl`, None when none do (outside
    the run). Each evaluation's KL is measured on samples, so it can stall or dip; the first bracket is taken.
    Lesson 16 sets DPO against it."""
    kls, rewards = record["eval_kl"], record["eval_true_reward"]
    for (k0, r0), (k1, r1) in zip(zip(kls, rewards), zip(kls[1:], rewards[1:])):
        if min(k0, k1) <= kl <= max(k0, k1):
            return r0 if k1 == k0 else r0 + (kl - k0) / (k1 - k0) * (r1 - r0)
    return None
