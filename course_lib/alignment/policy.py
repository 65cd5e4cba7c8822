"""Lessons 15-16: a policy's view of its continuations: their logits and log-probabilities, the exact KL from the
reference model at every token, and the evaluation every aligned model gets (true reward, reward-model score, KL).

A character vocabulary makes the per-token KL exact: sum over the vocabulary of p log(p / q) at each position.
Summed over a sampled continuation it is an unbiased estimate of the KL between the two models' distributions
over whole continuations, which no one can sum exactly (84^32 continuations of 32 characters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib.alignment.preferences import PROMPT_CHARS, continuation_texts, sample_continuations, true_reward
from course_lib.models.gpt import GPT
from course_lib.tokenizers import CharTokenizer


def response_logits(model: GPT, sequences: torch.Tensor, prompt_len: int = PROMPT_CHARS) -> torch.Tensor:
    """The logits that predict each continuation token: sequences (b, p + t) -> (b, t, vocab)."""
    return model(sequences[:, :-1])[0][:, prompt_len - 1 :]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under logits: (b, t, vocab), (b, t) -> (b, t)."""
    return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(policy || reference) of the next-token distributions at every position: (b, t, vocab) x 2 -> (b, t)."""
    log_p, log_q = logits.log_softmax(-1), ref_logits.log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@dataclass
class Evaluation:
    """A policy on held-out prompts: its continuations' true rewards, reward-model scores and exact KL (n,)."""

    sequences: torch.Tensor
    texts: list[str]
    true_reward: torch.Tensor
    score: torch.Tensor
    kl: torch.Tensor

    def summary(self) -> dict[str, float]:
        return {
            "true_reward": self.true_reward.mean().item(),
            "score": self.score.mean().item(),
            "kl": self.kl.mean().item(),
        }


@torch.no_grad()
def evaluate_policy(
    policy: GPT,
    reference: GPT,
    reward_model: torch.nn.Module | None,
    prompts: torch.Tensor,
    tokenizer: CharTokenizer,
    seed: int = 0,
    samples: int = 1,
) -> Evaluation:
    """`samples` sampled continuations per prompt, scored by the true reward and the reward model (if given), and
    their exact KL from the reference summed over the continuation's tokens. Row i is a continuation of prompt
    i % len(prompts): the first len(prompts) rows are one sample of each prompt, in order."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    device = next(policy.parameters()).device
    prompts = prompts.repeat(samples, 1)
    sequences = sample_continuations(policy, prompts, generator=torch.Generator(device).manual_seed(seed))
    texts = continuation_texts(sequences, tokenizer)
    kl, score = [], []
    for part in sequences.split(256):
        part = part.to(device)
        kl.append(exact_kl(response_logits(policy, part), response_logits(reference, part)).sum(1).cpu())
        score.append(torch.zeros(len(part)) if reward_model is None else reward_model(part).cpu())
    return Evaluation(sequences, texts, true_reward(texts), torch.cat(score), torch.cat(kl))
