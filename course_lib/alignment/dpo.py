"""Lessons 16, 18: direct preference optimisation (Rafailov et al., 2023), the RLHF objective without a reward
model; lesson 18 measures what its policy writes.

The KL-regularised objective max E[r] - beta KL(pi || pi_ref) is maximised by pi* = pi_ref exp(r / beta) / Z,
so r = beta log(pi* / pi_ref) + beta log Z. Put into the Bradley-Terry likelihood, Z cancels:
loss = -log sigmoid(beta [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))]).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from course_lib.alignment.policy import response_logits, token_logprobs
from course_lib.alignment.preferences import PROMPT_CHARS, Preferences
from course_lib.artifacts import pretrained
from course_lib.models.gpt import GPT
from course_lib.train import Optimisation, TensorBatches, optimise


def sequence_logprob(model: GPT, sequences: torch.Tensor, prompt_len: int = PROMPT_CHARS) -> torch.Tensor:
    """log pi(continuation | prompt), summed over the continuation's tokens: (b, p + t) -> (b,)."""
    return token_logprobs(response_logits(model, sequences, prompt_len), sequences[:, prompt_len:]).sum(1)


def implicit_reward(logprob: torch.Tensor, ref_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward of a continuation: beta * log(pi / pi_ref), up to a per-prompt constant."""
    return beta * (logprob - ref_logprob)


def dpo_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float
) -> torch.Tensor:
    """Mean -log sigmoid(implicit reward margin) over pairs of summed log-probabilities (each (b,))."""
    margin = implicit_reward(chosen, ref_chosen, beta) - implicit_reward(rejected, ref_rejected, beta)
    return -F.logsigmoid(margin).mean()


@dataclass(frozen=True, kw_only=True)
class DPOTraining(Optimisation):
    steps: int = 150
    batch: int = 64  # pairs
    lr: float = 1e-4
    warmup: int = 10
    min_lr_ratio: float = 1.0  # constant after the warm-up
    grad_clip: float | None = 1.0
    beta: float = 0.1
    log_every: int = 20
    eval_pairs: int = 512


def train_dpo(
    policy: GPT, reference: GPT, data: Preferences, training: DPOTraining = DPOTraining(), progress: bool = True
) -> dict[str, list[float]]:
    """DPO on the training pairs. -> the loss of every step, and every `log_every` steps (on `eval_pairs` held-out
    pairs) the mean log-probability of the chosen and of the rejected responses and the implicit reward accuracy."""
    t = training
    device = next(policy.parameters()).device
    test = data.split(test=True)[: t.eval_pairs]
    test_chosen, test_rejected = (part.to(device) for part in data.sequences(test))
    with torch.no_grad():
        ref_test = sequence_logprob(reference, test_chosen), sequence_logprob(reference, test_rejected)

    def loss_fn(m: GPT, batch: tuple[torch.Tensor]) -> torch.Tensor:
        both = torch.cat(data.sequences(batch[0].cpu())).to(device)  # chosen rows, then rejected rows
        with torch.no_grad():
            ref_chosen, ref_rejected = sequence_logprob(reference, both).chunk(2)
        chosen, rejected = sequence_logprob(m, both).chunk(2)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, t.beta)

    def evaluate(m: GPT) -> dict[str, float]:
        chosen, rejected = sequence_logprob(m, test_chosen), sequence_logprob(m, test_rejected)
        margin = implicit_reward(chosen, ref_test[0], t.beta) - implicit_reward(rejected, ref_test[1], t.beta)
        right = (margin > 0).float() + 0.5 * (margin == 0).float()  # a tie (as at the start) counts half
        return {"chosen": chosen.mean().item(), "rejected": rejected.mean().item(), "accuracy": right.mean().item()}

    start = {"step": 0, **evaluate(policy)}
    history = optimise(
        policy,
        TensorBatches(data.split(test=False), batch_size=t.batch, seed=t.seed, drop_last=True),
        loss_fn,
        t,
        evaluate=evaluate,
        eval_every=t.log_every,
        progress=progress,
        desc=f"DPO beta={t.beta}",
    )
    log = {key: [start[key]] + history.column(key) for key in ("step", "chosen", "rejected", "accuracy")}
    return {**log, "step_loss": history.step_loss, "seconds": history.seconds}


def dpo_policy(
    reference: GPT, data: Preferences, training: DPOTraining = DPOTraining(), device: torch.device | str = "cpu"
) -> tuple[GPT, dict]:
    """Lesson 16's DPO policy for one beta: from the cache, or trained now (about a minute on 2 cores).
    -> (policy, record)."""
    return pretrained(
        f"cheerful-dpo-{training.beta}",
        lambda: copy.deepcopy(reference),
        lambda m: train_dpo(m, reference, data, training),
        {"data": data.key, **asdict(training)},
        device=device,
    )
