"""Lesson 16 exercises: the DPO loss, a continuation's log-probability, the implicit reward accuracy, and one DPO
step, checked on small tensors and GPTs and, in the solutions notebook, on the lesson's DPO policy."""

from __future__ import annotations

import torch

from course_lib.alignment import dpo
from course_lib.models.gpt import GPT, GPTConfig
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "16_dpo"
SETUP = """\
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta):
    return dpo.dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta)


def sequence_logprob(model: GPT, sequences: torch.Tensor, prompt_len: int) -> torch.Tensor:
    return dpo.sequence_logprob(model, sequences, prompt_len)


def implicit_reward_accuracy(chosen, rejected, ref_chosen, ref_rejected, beta) -> float:
    margin = dpo.implicit_reward(chosen, ref_chosen, beta) - dpo.implicit_reward(rejected, ref_rejected, beta)
    return ((margin > 0).float() + 0.5 * (margin == 0).float()).mean().item()


def dpo_step(policy, reference, optimizer, chosen, rejected, prompt_len, beta) -> float:
    with torch.no_grad():
        ref_c, ref_r = (
            sequence_logprob(reference, chosen, prompt_len),
            sequence_logprob(reference, rejected, prompt_len),
        )
    loss = dpo.dpo_loss(
        sequence_logprob(policy, chosen, prompt_len), sequence_logprob(policy, rejected, prompt_len), ref_c, ref_r, beta
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# --- cases ----------------------------------------------------------------------------------------


def _logprobs(g: torch.Generator, b: int) -> tuple[torch.Tensor, ...]:
    return tuple(-40 - 10 * torch.rand(b, generator=g) for _ in range(4))


def _loss_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("6 pairs, beta 0.1 (catches beta outside the sigmoid)", (*_logprobs(g, 6), 0.1)),
        Case("5 pairs, beta 0.5 (catches the reference subtracted the wrong way)", (*_logprobs(g, 5), 0.5)),
        Case(
            "policy = reference: the loss is ln 2",
            (torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-3.0]), torch.tensor([-5.0]), 0.1),
        ),
        Case(
            "a pair ordered wrongly by 2,000 nats, beta 0.1 (catches -log(sigmoid(x)), which overflows to inf)",
            (
                torch.tensor([-2050.0, -40.0]),
                torch.tensor([-50.0, -45.0]),
                torch.full((2,), -50.0),
                torch.full((2,), -50.0),
                0.1,
            ),
        ),
    ]


def _small_gpt(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=9, block_size=16, layers=1, heads=2, d_model=16))


def _logprob_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("b 4, prompt 5 + 6 tokens (catches an off-by-one in the positions)", (), {"seed": draw_seed(g), "p": 5}),
        Case("prompt of one token", (), {"seed": draw_seed(g), "p": 1}),
    ]


def _run_logprob(fn, case: Case):
    seed = case.kwargs["seed"]
    sequences = torch.randint(0, 9, (4, 11), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return fn(_small_gpt(seed), sequences, case.kwargs["p"])


def _accuracy_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("20 pairs, beta 0.1", (*_logprobs(g, 20), 0.1)),
        Case(
            "policy = reference: every margin is 0, accuracy 0.5 (ties count half)",
            (torch.full((4,), -3.0), torch.full((4,), -5.0), torch.full((4,), -3.0), torch.full((4,), -5.0), 0.1),
        ),
        Case(
            "chosen gained less than rejected lost is still right",
            (torch.tensor([-10.0]), torch.tensor([-30.0]), torch.tensor([-9.0]), torch.tensor([-20.0]), 1.0),
        ),
    ]


def _step_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("a small GPT, 5 pairs, prompt 4 + 8 tokens, beta 0.1", (), {"seed": draw_seed(g), "beta": 0.1}),
        Case("beta 0.5", (), {"seed": draw_seed(g), "beta": 0.5}),
    ]


def _run_step(fn, case: Case):
    """Two steps of `fn` with SGD, the policy starting as a copy of the reference."""
    seed = case.kwargs["seed"]
    reference = _small_gpt(seed)
    policy = _small_gpt(seed)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(seed)
    chosen, rejected = torch.randint(0, 9, (5, 12), generator=g), torch.randint(0, 9, (5, 12), generator=g)
    losses = [fn(policy, reference, optimizer, chosen, rejected, 4, case.kwargs["beta"]) for _ in range(2)]
    if not all(isinstance(loss, float) for loss in losses):
        return losses
    return (
        torch.tensor(losses),
        policy.tok_emb.weight.detach().clone(),
        policy.blocks[0].attn.qkv.weight.detach().clone(),
    )


EXERCISES = [
    Exercise(dpo_loss, NOTEBOOK, 2.0, _loss_cases, setup=SETUP),
    Exercise(sequence_logprob, NOTEBOOK, 1.0, _logprob_cases, call=_run_logprob, setup=SETUP, atol=1e-4),
    Exercise(implicit_reward_accuracy, NOTEBOOK, 1.0, _accuracy_cases, setup=SETUP),
    Exercise(dpo_step, NOTEBOOK, 3.0, _step_cases, call=_run_step, setup=SETUP, atol=1e-4),
]
