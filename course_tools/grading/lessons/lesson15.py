"""Lesson 15 exercises: the Bradley-Terry loss, the exact per-token KL, the KL-shaped reward, generalised advantage
estimation, PPO's clipped objective, and one whole PPO update, checked on small tensors and GPTs and, in the
solutions notebook, on the lesson's trained policy and reward model."""

from __future__ import annotations

import torch

from course_lib.alignment import ppo, reward_training
from course_lib.alignment.policy import exact_kl as library_exact_kl
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.value_head import PolicyWithValue
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "15_rlhf"
SETUP = """\
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return reward_training.bradley_terry_loss(chosen, rejected)


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    return library_exact_kl(logits, ref_logits)


def kl_shaped_rewards(score, logprob, ref_logprob, beta):
    return ppo.kl_shaped_rewards(score, logprob, ref_logprob, beta)


def gae(rewards, values, gamma, lam):
    return ppo.gae(rewards, values, gamma, lam)


def clipped_policy_loss(logprob, old_logprob, advantages, clip):
    return ppo.clipped_policy_loss(logprob, old_logprob, advantages, clip)


def ppo_update(policy, optimizer, reference, reward_model, sequences, prompt_len, beta, clip, value_coef, epochs):
    """Everything PPO computes from one batch of sampled sequences, once; then `epochs` optimizer steps on all of
    it, each against the stored old log-probabilities, advantages and returns; -> the loss of each step."""
    config = ppo.PPOTraining(beta=beta, clip=clip, value_coef=value_coef)  # gamma 1, lambda 0.95
    rollout = ppo.score_rollout(policy, reference, reward_model, sequences, config, prompt_len)
    losses = []
    for _ in range(epochs):
        loss = ppo.ppo_loss(policy, rollout, torch.arange(len(sequences)), config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# --- cases ----------------------------------------------------------------------------------------


def _bt_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("8 pairs of scores", (torch.randn(8, generator=g), torch.randn(8, generator=g))),
        Case("equal scores: the loss is ln 2", (torch.zeros(3), torch.zeros(3))),
        Case(
            "a confidently wrong pair, margin -120 (catches log(sigmoid(.)) underflowing to -inf)",
            (torch.tensor([-60.0, 2.0]), torch.tensor([60.0, 1.0])),
        ),
    ]


def _kl_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "(2, 5, 7) logits (catches KL(ref || policy), the other direction)",
            (3 * torch.randn(2, 5, 7, generator=g), 3 * torch.randn(2, 5, 7, generator=g)),
        ),
        Case(
            "logits shifted by a constant give KL 0 (catches unnormalised logits)",
            (torch.ones(1, 2, 4) * torch.tensor([0.0, 1, 2, 3]), torch.ones(1, 2, 4) * torch.tensor([5.0, 6, 7, 8])),
        ),
        Case(
            "(3, 4, 65) logits, like the lesson's vocabulary",
            (torch.randn(3, 4, 65, generator=g), torch.randn(3, 4, 65, generator=g)),
        ),
    ]


def _shaped_cases(g: torch.Generator) -> list[Case]:
    def case(b: int, t: int, beta: float, name: str) -> Case:
        lp, ref = -torch.rand(b, t, generator=g) * 3, -torch.rand(b, t, generator=g) * 3
        return Case(name, (torch.randn(b, generator=g), lp, ref, beta))

    return [
        case(4, 6, 0.3, "b 4, t 6, beta 0.3 (catches the KL sign flipped)"),
        case(2, 1, 0.1, "one token: score and penalty on the same token"),
        case(3, 5, 0.0, "beta 0: only the score, on the last token (catches it on every token)"),
    ]


def _gae_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "b 3, t 6, gamma 1, lambda 0.95",
            (torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g), 1.0, 0.95),
        ),
        Case(
            "gamma 0.9, lambda 0.5 (catches lambda or gamma ignored)",
            (torch.randn(2, 5, generator=g), torch.randn(2, 5, generator=g), 0.9, 0.5),
        ),
        Case(
            "lambda 0: one-step TD errors (catches no bootstrap from V(s_t+1))",
            (torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g), 1.0, 0.0),
        ),
    ]


def _clip_cases(g: torch.Generator) -> list[Case]:
    def case(b: int, t: int, spread: float, clip: float, name: str) -> Case:
        old = -torch.rand(b, t, generator=g) * 3
        new = old + spread * torch.randn(b, t, generator=g)
        return Case(name, (new, old, torch.randn(b, t, generator=g), clip))

    return [
        case(4, 8, 0.5, 0.2, "ratios far from 1, both signs of advantage (catches max for min, ratio inverted)"),
        case(2, 3, 0.05, 0.2, "ratios within the clip range: plain ratio x advantage"),
        case(3, 4, 1.0, 0.1, "clip 0.1"),
    ]


def _update_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("a small GPT, b 6, prompt 5 + 7 tokens, beta 0.2", (), {"seed": draw_seed(g), "beta": 0.2}),
        Case("beta 0.05, clip 0.1", (), {"seed": draw_seed(g), "beta": 0.05, "clip": 0.1}),
    ]


class _TinyReward(torch.nn.Module):
    """A reward model for the checks: a fixed linear score of the token counts after the prompt."""

    def __init__(self, vocab: int, prompt_len: int, seed: int) -> None:
        super().__init__()
        self.weights = torch.randn(vocab, generator=torch.Generator().manual_seed(seed))
        self.prompt_len = prompt_len

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.weights[sequences[:, self.prompt_len :]].sum(1)


def _run_update(fn, case: Case):
    """`fn` with SGD on a small policy: three epochs on one batch (the second and third see ratios away from 1, so
    the clip acts), then one epoch on the same batch scored afresh."""
    seed, beta, clip = case.kwargs["seed"], case.kwargs["beta"], case.kwargs.get("clip", 0.2)
    torch.manual_seed(seed)
    reference = GPT(GPTConfig(vocab_size=11, block_size=16, layers=1, heads=2, d_model=16))
    policy = PolicyWithValue(reference)
    with torch.no_grad():
        policy.value_head.weight.normal_(0, 0.5)
    # lr large enough that the clip acts from the second epoch on, small enough that four steps stay stable
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
    sequences = torch.randint(0, 11, (6, 12), generator=torch.Generator().manual_seed(seed))
    reward_model = _TinyReward(11, 5, seed)
    losses = [
        fn(policy, optimizer, reference, reward_model, sequences, 5, beta, clip, 0.5, epochs) for epochs in (3, 1)
    ]
    if not all(
        type(out) is list and len(out) == n and all(type(v) is float for v in out) for out, n in zip(losses, (3, 1))
    ):
        raise TypeError(f"ppo_update must return a list of `epochs` floats, one loss per epoch; got {losses[0]!r:.80}")
    return (
        torch.tensor(losses[0] + losses[1]),
        policy.value_head.weight.detach().clone(),
        policy.gpt.tok_emb.weight.detach().clone(),
        policy.gpt.blocks[0].mlp[0].weight.detach().clone(),
    )


EXERCISES = [
    Exercise(bradley_terry_loss, NOTEBOOK, 1.0, _bt_cases, setup=SETUP),
    Exercise(exact_kl, NOTEBOOK, 1.0, _kl_cases, setup=SETUP),
    Exercise(kl_shaped_rewards, NOTEBOOK, 1.0, _shaped_cases, setup=SETUP),
    Exercise(gae, NOTEBOOK, 2.0, _gae_cases, setup=SETUP),
    Exercise(clipped_policy_loss, NOTEBOOK, 2.0, _clip_cases, setup=SETUP),
    Exercise(
        ppo_update,
        NOTEBOOK,
        3.0,
        _update_cases,
        call=_run_update,
        setup=SETUP,
        atol=1e-4,
        trap=("score_rollout", "ppo_loss", "train_ppo"),  # the library's PPO is this exercise under other names
    ),
]
