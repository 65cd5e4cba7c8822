"""Lessons 15-16: the spread, over seeds, of every figure the two lessons assert on.

For each seed: the reward model (held-out pairs in the true order), PPO against it (true reward gain in standard
deviations and KL), the weak reward model with PPO at beta 0 (peak and end of the true reward, the reward model's
score at both), and DPO at beta 0.1 (win rate against the starting model, implicit reward accuracy, the fall of the
chosen and the rejected log-probabilities). `--only frontier`: lesson 16's comparison, DPO at beta 0.05 / 0.1 / 0.5
against PPO's run at the same KL (its evaluations interpolated linearly, as the lesson reads them).
The GPT and the preference data come from the cache as the lessons
make them, so run this under `make test-portability`'s variables with its own COURSE_CACHE to see another CPU.
One JSON line per seed, then one with the minimum and maximum of each figure.

python bench/alignment_spread.py [--seeds 0 1 2] [--only rm | ppo | dpo | frontier]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

from course_lib import pick_device, set_threads
from course_lib.alignment import dpo, ppo, reward_training
from course_lib.alignment.policy import evaluate_policy
from course_lib.alignment.preferences import held_out_prompts, preference_data
from course_lib.text.language_model import pretrained_gpt

KERNELS = ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=["rm", "ppo", "dpo", "frontier"], nargs="+", default=["rm", "ppo", "dpo"])
    args = parser.parse_args()
    device = pick_device()
    set_threads()
    gpt, data, _ = pretrained_gpt(device=device, progress=False)
    tokenizer = data.tokenizer
    prefs = preference_data(gpt, data.train, tokenizer)
    prompts = held_out_prompts(data.val, tokenizer)
    base = evaluate_policy(gpt, gpt, None, prompts, tokenizer, samples=4)  # as the lessons measure
    mean, std = base.true_reward.mean().item(), base.true_reward.std().item()
    machine = {
        "device": str(device),
        **{k: os.environ.get(k, "") for k in KERNELS},
        "train_pairs": len(prefs.split(test=False)),
    }
    rows = []
    for seed in args.seeds:
        start, row = time.perf_counter(), {"seed": seed, **machine}
        reward_model, record = reward_training.pretrained_reward_model(
            gpt, prefs, replace(reward_training.RewardTraining(), seed=seed), device, use_shipped=False
        )  # trained on this run's own pairs, seed 0 included
        row["rm_truth"] = record["test_truth"]
        if "ppo" in args.only:
            policy, _ = ppo.ppo_policy(
                gpt,
                reward_model,
                data.train,
                prompts,
                tokenizer,
                replace(ppo.PPOTraining(), seed=seed),
                device=device,
                progress=False,
            )
            after = evaluate_policy(policy.gpt, gpt, None, prompts, tokenizer, samples=4)
            row["ppo_gain"] = (after.true_reward.mean().item() - mean) / std
            row["ppo_kl"] = after.kl.mean().item()
            weak_training = reward_training.RewardTraining(
                prompts=1000, steps=150, average=0.0, train_embeddings=True, seed=seed
            )  # lesson 15's WEAK_REWARD
            weak, weak_record = reward_training.pretrained_reward_model(gpt, prefs, weak_training, device)
            _, greedy = ppo.ppo_policy(
                gpt,
                weak,
                data.train,
                prompts,
                tokenizer,
                ppo.PPOTraining(iterations=100, lr=1e-4, beta=0.0, seed=seed),
                device=device,
                progress=False,
            )
            true_curve, score_curve = greedy["eval_true_reward"], greedy["eval_score"]
            peak = max(range(len(true_curve)), key=true_curve.__getitem__)
            row |= {
                "weak_truth": weak_record["test_truth"],
                "overopt_peak": true_curve[peak],
                "overopt_end": true_curve[-1],
                "overopt_score_rise": score_curve[-1] - score_curve[peak],
            }
        if "dpo" in args.only:
            policy, record = dpo.dpo_policy(gpt, prefs, replace(dpo.DPOTraining(), seed=seed), device=device)
            result = evaluate_policy(policy, gpt, None, prompts, tokenizer, samples=4)
            wins = (result.true_reward > base.true_reward).float() + 0.5 * (
                result.true_reward == base.true_reward
            ).float()
            row |= {
                "dpo_win": wins.mean().item(),
                "dpo_accuracy": record["accuracy"][-1],
                "dpo_fall_chosen": record["chosen"][-1] - record["chosen"][0],
                "dpo_fall_rejected": record["rejected"][-1] - record["rejected"][0],
            }
        if "frontier" in args.only:
            row |= frontier(gpt, reward_model, prefs, data, prompts, seed, device)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    numeric = [k for k, v in rows[0].items() if isinstance(v, float) and k != "seconds"]
    print(
        json.dumps(
            {"spread": {k: [round(min(r[k] for r in rows), 4), round(max(r[k] for r in rows), 4)] for k in numeric}}
        )
    )


def frontier(gpt, reward_model, prefs, data, prompts, seed: int, device) -> dict:
    """Lesson 16's matched-KL reading for one seed: each DPO beta's true reward and KL, and PPO's run there."""
    tokenizer = data.tokenizer
    _, record = ppo.ppo_policy(
        gpt, reward_model, data.train, prompts, tokenizer, replace(ppo.PPOTraining(), seed=seed), device=device
    )
    out = {"ppo_final_kl": record["eval_kl"][-1], "ppo_final_reward": record["eval_true_reward"][-1]}
    for beta in (0.05, 0.1, 0.5):
        policy, _ = dpo.dpo_policy(gpt, prefs, replace(dpo.DPOTraining(beta=beta), seed=seed), device=device)
        result = evaluate_policy(policy, gpt, None, prompts, tokenizer, samples=4)
        kl, reward = result.kl.mean().item(), result.true_reward.mean().item()
        there = ppo.reward_at_kl(record, kl)
        out |= {f"dpo{beta}_kl": kl, f"dpo{beta}_reward": reward, f"ppo_at_dpo{beta}_kl": there}  # None: outside
    return out


if __name__ == "__main__":
    main()
