"""Lesson 11: the spread, over seeds, of the ViT-against-CNN comparison (the same 1,000-step budget on 10%, 25% and
100% of the training digits, plain and with random shifts of one pixel).

The data subsets are the lesson's (seed 0 of `data_fraction`); a seed moves each model's initial weights, its
batch order and its shifts. One JSON line per seed with every test accuracy and the CNN's lead, then one line with
each lead's minimum and maximum over the seeds.

python bench/vit_vs_cnn.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time

from course_lib import pick_device, set_threads
from course_lib.data import load_digits
from course_lib.vision import vit_training

FRACTIONS = (0.1, 0.25, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    device = pick_device()
    set_threads()
    digits = load_digits()
    rows = []
    for seed in args.seeds:
        start, row = time.perf_counter(), {"bench": "vit_vs_cnn", "seed": seed, "device": str(device)}
        for fraction in FRACTIONS:
            images, labels = vit_training.data_fraction(digits, fraction)
            for shift in (0, 1):
                accuracy = {}
                for kind in ("cnn", "vit"):
                    model = vit_training.build(kind, seed=seed).to(device)
                    budget = vit_training.ClassifierTraining(steps=1000, shift=shift, seed=seed)
                    accuracy[kind] = vit_training.train_classifier(model, images, labels, digits, budget)[
                        "test_accuracy"
                    ]
                    row[f"{kind} {fraction:.0%}{' shifts' if shift else ''}"] = round(100 * accuracy[kind], 1)
                row[f"CNN lead {fraction:.0%}{' shifts' if shift else ''}"] = round(
                    100 * (accuracy["cnn"] - accuracy["vit"]), 1
                )
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    leads = [key for key in rows[0] if key.startswith("CNN lead")]
    print(
        json.dumps(
            {
                "bench": "vit_vs_cnn",
                "seeds": args.seeds,
                **{key: [min(r[key] for r in rows), max(r[key] for r in rows)] for key in leads},
            }
        )
    )


if __name__ == "__main__":
    main()
