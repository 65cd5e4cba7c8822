"""Time-to-quality for lesson 05's GPT: how fast does it reach nanoGPT's published CPU loss?

    python bench/gpt.py                                  # the course corpus
    python bench/gpt.py ../shared/data/tinyshakespeare.txt --baseline

Prints one JSON line per run: tokens per second, model FLOP utilisation against this machine's
fp32 matmul peak (measured in the same run), training seconds to reach validation loss 1.886 (the
anchor: nanoGPT's CPU recipe reaches it after 2,000 iterations), the final loss, the loss a
schedule sized to 120 seconds reaches, and a "sprint" whose schedule is sized to 55 seconds.
Seconds count training steps only, not evaluations.
`--baseline` also runs nanoGPT's recipe itself on the same machine for a direct comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import emit, matmul_peak_gflops

from course_lib.device import set_threads
from course_lib.text import language_model as lm

ANCHOR = 1.886


def run(name: str, recipe: lm.GPTRecipe, data: lm.CharData, peak: float, eval_every: int) -> dict:
    model = lm.build_gpt(data.tokenizer.vocab_size, recipe.model)
    train = recipe.train
    start = time.perf_counter()
    record = lm.train_gpt(model, data, train, eval_every=eval_every, eval_batches=100, progress=False)
    wall = time.perf_counter() - start
    tokens = train.steps * train.batch * model.config.block_size
    seconds = record["seconds"][-1]
    reached = [s for s, v in zip(record["seconds"], record["val_loss"]) if v <= ANCHOR]
    figures = {
        "run": name,
        "data": data.source,
        "params": model.num_params(),
        "steps": train.steps,
        "batch": train.batch,
        "block": model.config.block_size,
        "lr": train.lr,
        "tokens_per_s": round(tokens / seconds),
        "train_s": round(seconds, 1),
        "wall_s": round(wall, 1),
        "matmul_peak_gflops": round(peak, 1),
        "mfu": round(model.flops_per_token() * tokens / seconds / (peak * 1e9), 3),
        "seconds_to_1.886": round(reached[0], 1) if reached else None,
        "final_val_loss": round(record["val_loss"][-1], 4),
    }
    emit("gpt", **figures)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", nargs="?", help="a text file (split 90/10); default: the course's Shakespeare split")
    parser.add_argument("--seconds", type=float, default=120.0, help="the budget of the equal-time run")
    parser.add_argument(
        "--sprint",
        type=float,
        default=55.0,
        help="the budget of a run sized to reach the anchor fast (half nanoGPT's time is the goal)",
    )
    parser.add_argument("--baseline", action="store_true", help="also run nanoGPT's CPU recipe")
    parser.add_argument("--quick", action="store_true", help="a 60-iteration smoke run of each (for tests)")
    args = parser.parse_args(argv)
    set_threads()
    data = lm.file_chars(args.text) if args.text else lm.shakespeare_chars()
    peak = matmul_peak_gflops()

    ours = lm.RECIPE
    if args.quick:
        ours = replace(ours, train=replace(ours.train, steps=60, warmup=10))
    first = run("course recipe", ours, data, peak, eval_every=20 if args.quick else 100)
    # the equal-time run: a schedule sized so that training fills `--seconds` at the measured speed
    tokens_per_step = ours.train.batch * ours.model.block_size
    steps = 40 if args.quick else max(20, int(args.seconds * first["tokens_per_s"] / tokens_per_step))
    timed = replace(ours, train=replace(ours.train, steps=steps))
    second = run(f"course recipe sized to {args.seconds:g} s", timed, data, peak, eval_every=max(1, steps // 10))
    # the sprint: the same recipe with a schedule short enough that its decay ends near the anchor
    steps = 40 if args.quick else max(20, int(args.sprint * first["tokens_per_s"] / tokens_per_step))
    sprint = replace(ours, train=replace(ours.train, steps=steps))
    third = run(f"course recipe sized to {args.sprint:g} s", sprint, data, peak, eval_every=max(1, steps // 10))
    reached = [r["seconds_to_1.886"] for r in (first, second, third) if r["seconds_to_1.886"] is not None]
    emit(
        "gpt_summary",
        anchor=ANCHOR,
        seconds_to_anchor=min(reached) if reached else None,
        loss_at_budget=second["final_val_loss"],
        budget_s=second["train_s"],
        sprint_loss=third["final_val_loss"],
        sprint_s=third["train_s"],
    )
    if args.baseline:
        base = lm.NANOGPT_CPU
        if args.quick:
            base = replace(base, train=replace(base.train, steps=60, warmup=10))
        run("nanoGPT CPU recipe", base, data, peak, eval_every=20 if args.quick else 100)


if __name__ == "__main__":
    main()
