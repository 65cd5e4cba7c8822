"""Lessons 12-13: the figures the two lessons print about held-out combinations, for one $COURSE_SEED.

Trains (or loads from the cache, never the shipped checkpoints) both CLIPs, the readers, the prior and the decoder
as the lessons' recipes say, then measures what the lessons report: zero-shot accuracy and binding for plain and
hard-negative CLIP on seen and unseen objects (lesson 12), the prior's cosines and the decoder's ablation (lesson
13). Run it once per seed, e.g. `COURSE_SEED=1 python bench/multimodal_spread.py`; under `make
test-portability`'s variables with its own COURSE_CACHE it shows another CPU. Prints one JSON line.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from course_lib import pick_device, seed_everything, set_threads
from course_lib.data import shapes
from course_lib.device import seed_offset
from course_lib.multimodal import clip_training, reader_training, text_to_image

KERNELS = ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def zero_shot(model, data: shapes.Shapes) -> float:
    """Share of one-object images whose (colour, shape) prompt pair wins, as lesson 12's `zero_shot`."""
    prompts, classes = clip_training.object_prompts()
    one = data.attributes[:, 0] == 0
    truth = torch.tensor([classes.index((c, s)) for c, s in data.attributes[one][:, 1:3].tolist()])
    logits = clip_training.zero_shot_logits(
        clip_training.embed_images(model, data.images[one]), clip_training.embed_texts(model, prompts), per_class=2
    )
    return (logits.argmax(1) == truth).float().mean().item()


def main() -> None:
    set_threads()
    seed_everything(0)
    device = pick_device()
    start = time.perf_counter()
    figures: dict[str, float | str | int] = {
        "course_seed": seed_offset(),
        **{k: os.environ.get(k, "") for k in KERNELS},
    }
    splits = {"seen": shapes.make_shapes(1_000, "test"), "unseen": shapes.make_shapes(1_000, "unseen")}
    clips = {}
    for kind in clip_training.RECIPES:
        model, _ = clip_training.pretrained_clip(kind, device=device, use_shipped=False)
        clips[kind] = model
        for split, data in splits.items():
            figures[f"l12 {kind} zero-shot {split}"] = round(zero_shot(model, data), 4)
            for swap in clip_training.SWAPS:
                figures[f"l12 {kind} binding {split} {swap}"] = round(
                    clip_training.binding_accuracy(model, data, swap), 4
                )

    clip = clips[text_to_image.CLIP_KIND]
    readers, _ = reader_training.trained_readers(device=device)
    prior, _ = text_to_image.pretrained_prior(device=device, use_shipped=False)
    decoder, _ = text_to_image.pretrained_decoder(device=device, use_shipped=False)
    shuffle = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    for split, data in {
        "seen": shapes.make_shapes(400, "test", seed=5),
        "unseen": shapes.make_shapes(400, "unseen", seed=6),
    }.items():
        image = clip_training.embed_images(clip, data.images)
        text = clip_training.embed_texts(clip, data.captions)
        prior_out = text_to_image.prior_sample(prior, text)
        figures[f"l13 prior cosine {split}"] = round((prior_out * image).sum(-1).mean().item(), 4)
        figures[f"l13 shuffled cosine {split}"] = round((prior_out[shuffle] * image).sum(-1).mean().item(), 4)
        one = data.attributes[:, 0] == 0
        for condition, z in [("text", text), ("prior", prior_out), ("true image", image)]:
            pictures = text_to_image.decode(decoder, z, guidance=3.0)
            right = reader_training.all_right(reader_training.read(readers, pictures), data.attributes)
            figures[f"l13 {split} {condition} one"] = round(right[one].float().mean().item(), 4)
            figures[f"l13 {split} {condition} two"] = round(right[~one].float().mean().item(), 4)
    emit("multimodal_spread", seconds=round(time.perf_counter() - start, 1), **figures)


if __name__ == "__main__":
    main()
