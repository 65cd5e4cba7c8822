"""Lessons 15-16: the PPO loop and the DPO loop, timed on lesson 05's GPT with the lessons' data and recipes.

PPO (`alignment.ppo.PPOTraining`, beta 0.3): rollout tokens per second (sampling alone, and the whole iteration
with its updates), and the wall seconds of training until the held-out true reward first stands 1.5 standard
deviations of the starting model's rewards above it at a KL of at most 5 nats (evaluated every 4 iterations,
evaluation time excluded). DPO (beta 0.1): pairs per second, model FLOP utilisation of a step, and where its
policy ends (true reward gain in standard deviations, KL, implicit reward accuracy). Both train from scratch
here (the lessons' cached models are not used); the preferences and the reward model come from the cache.

python bench/alignment.py
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, matmul_peak_gflops

from course_lib import seed_everything
from course_lib.alignment import dpo, ppo, reward_training
from course_lib.alignment.policy import evaluate_policy
from course_lib.alignment.preferences import (
    NEW_TOKENS,
    held_out_prompts,
    preference_data,
    prompt_windows,
    sample_continuations,
)
from course_lib.models.value_head import PolicyWithValue
from course_lib.text.language_model import pretrained_gpt


def main() -> None:
    gpt, data, _ = pretrained_gpt(progress=False)
    tokenizer = data.tokenizer
    prefs = preference_data(gpt, data.train, tokenizer)
    reward_model, _ = reward_training.pretrained_reward_model(gpt, prefs)
    prompts = held_out_prompts(data.val, tokenizer)
    base = evaluate_policy(gpt, gpt, None, prompts, tokenizer)
    mean, std = base.true_reward.mean().item(), base.true_reward.std().item()
    peak = matmul_peak_gflops()

    config = replace(ppo.PPOTraining(), eval_every=4)
    batch = prompt_windows(data.train, tokenizer, config.batch, seed=9)
    sample_continuations(gpt, batch, generator=torch.Generator().manual_seed(0))  # warm-up
    start = time.perf_counter()
    sample_continuations(gpt, batch, generator=torch.Generator().manual_seed(0))
    sampling = time.perf_counter() - start
    seed_everything(0)
    policy = PolicyWithValue(gpt)
    history = ppo.train_ppo(policy, gpt, reward_model, data.train, prompts, tokenizer, config, progress=False)
    to_target = None
    for it, reward, kl in zip(history["eval_iteration"], history["eval_true_reward"], history["eval_kl"]):
        if it > 0 and (reward - mean) / std >= 1.5 and kl <= 5.0:
            to_target = history["seconds"][int(it) - 1]
            break
    tokens = config.batch * NEW_TOKENS
    emit(
        "ppo",
        iterations=config.iterations,
        train_seconds=round(history["seconds"][-1], 1),
        sampling_tokens_per_s=round(tokens / sampling),
        rollout_tokens_per_s_with_updates=round(config.iterations * tokens / history["seconds"][-1]),
        seconds_to_target=None if to_target is None else round(to_target, 1),
        final_true_reward_gain_std=round((history["eval_true_reward"][-1] - mean) / std, 2),
        final_kl=round(history["eval_kl"][-1], 2),
        matmul_peak_gflops=round(peak, 1),
    )

    training = dpo.DPOTraining(beta=0.1)
    seed_everything(0)
    dpo_policy = copy.deepcopy(gpt)
    chosen, rejected = prefs.sequences(prefs.split(test=False)[: training.batch])
    with FlopCounterMode(display=False) as counter:
        loss = dpo.dpo_loss(
            dpo.sequence_logprob(dpo_policy, chosen),
            dpo.sequence_logprob(dpo_policy, rejected),
            dpo.sequence_logprob(gpt, chosen).detach(),
            dpo.sequence_logprob(gpt, rejected).detach(),
            training.beta,
        )
        loss.backward()
    dpo_policy.zero_grad()
    record = dpo.train_dpo(dpo_policy, gpt, prefs, training, progress=False)
    result = evaluate_policy(dpo_policy, gpt, None, prompts, tokenizer)
    emit(
        "dpo",
        steps=training.steps,
        train_seconds=round(record["seconds"], 1),
        pairs_per_s=round(training.steps * training.batch / record["seconds"]),
        model_flop_utilisation=round(counter.get_total_flops() * training.steps / record["seconds"] / 1e9 / peak, 3),
        true_reward_gain_std=round((result.true_reward.mean().item() - mean) / std, 2),
        kl=round(result.kl.mean().item(), 2),
        implicit_reward_accuracy=round(record["accuracy"][-1], 3),
    )


if __name__ == "__main__":
    main()
