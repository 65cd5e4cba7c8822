"""Language modelling on Shakespeare (lessons 05, 06, 14-16 and bench/gpt.py): data, batches, loss, training.

`RECIPE` is the lesson's character-level GPT, chosen to train fast on 2 CPU cores: a shallow model
(3 layers of 128) that keeps the matmuls busy with 24 x 64 tokens a step, a high peak learning rate
(5e-3) reached after a short warm-up, then cosine decay to a tenth of it. `pretrained_gpt()`
returns it from the cache, or trains it once (about 2 minutes).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib.artifacts import load_or_train, read_metadata
from course_lib.nn.gpt import GPT, GPTConfig
from course_lib.tokenizers import CharTokenizer
from course_lib.train import warmup_cosine

RECIPE: dict = {
    "model": {"layers": 3, "heads": 4, "d_model": 128, "block_size": 64, "dropout": 0.0},
    "train": {"iters": 1600, "batch": 24, "lr": 5e-3, "warmup": 100, "floor": 0.1, "weight_decay": 0.1,
              "beta2": 0.99, "grad_clip": 1.0, "seed": 0},
}
# nanoGPT's CPU recipe ("baby GPT" of its README), the published anchor: val loss 1.886 on tiny Shakespeare
NANOGPT_CPU: dict = {
    "model": {"layers": 4, "heads": 4, "d_model": 128, "block_size": 64, "dropout": 0.0},
    "train": {"iters": 2000, "batch": 12, "lr": 1e-3, "warmup": 100, "floor": 0.1, "weight_decay": 0.1,
              "beta2": 0.99, "grad_clip": 1.0, "seed": 0},
}


@dataclass
class CharData:
    """A character tokenizer and the train / validation text as int64 ids."""

    tokenizer: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor
    source: str


def shakespeare_chars() -> CharData:
    """The course corpus: 42 works, the last 10% of each work held out for validation."""
    from course_lib.data import shakespeare_text
    train_text, val_text = shakespeare_text("train"), shakespeare_text("val")
    tokenizer = CharTokenizer(train_text + val_text)
    return CharData(tokenizer, tokenizer.encode_tensor(train_text), tokenizer.encode_tensor(val_text), "course")


def file_chars(path: str | Path, val_fraction: float = 0.1) -> CharData:
    """Any text file, split as nanoGPT splits tiny Shakespeare: the first 90% trains, the last 10% validates."""
    text = Path(path).read_text(encoding="utf-8")
    split = int(len(text) * (1 - val_fraction))
    tokenizer = CharTokenizer(text)
    return CharData(tokenizer, tokenizer.encode_tensor(text[:split]), tokenizer.encode_tensor(text[split:]), str(path))


def random_batch(ids: torch.Tensor, batch: int, block: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows: inputs x (batch, block) and targets y, the same windows shifted by one token."""
    if len(ids) <= block + 1:
        raise ValueError(f"text of {len(ids)} tokens is too short for windows of {block} + 1")
    start = torch.randint(len(ids) - block - 1, (batch,), generator=generator)
    window = start[:, None] + torch.arange(block + 1)                 # (batch, block + 1)
    tokens = ids[window]
    return tokens[:, :-1], tokens[:, 1:]


@torch.no_grad()
def estimate_loss(model: GPT, ids: torch.Tensor, *, batches: int = 100, batch: int = 24, seed: int = 1234) -> float:
    """Mean next-token cross-entropy (nats) on the same `batches` random windows every time it is called."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(batches):
        x, y = random_batch(ids, batch, model.config.block_size, generator)
        total += model(x.to(device), y.to(device))[1].item()
    model.train(was_training)
    return total / batches


def configure_optimizer(model: nn.Module, lr: float, weight_decay: float, beta2: float) -> torch.optim.AdamW:
    """AdamW that decays matrices and embeddings only, not biases and LayerNorm gains (as GPT-2 and nanoGPT do)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, beta2))


def train_gpt(model: GPT, data: CharData, *, iters: int, batch: int, lr: float, warmup: int, floor: float,
              weight_decay: float, beta2: float, grad_clip: float, seed: int, eval_every: int = 200,
              eval_batches: int = 50, on_eval: Callable[[int, float], None] | None = None,
              sample: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None = None,
              progress: bool = True) -> dict:
    """Train with AdamW, warm-up then cosine decay to `floor * lr`, gradient clipping.

    Batches are random windows of `data.train`, or whatever `sample(generator)` returns (lesson 06's
    control codes lead each window with a code token).

    Returns {"step", "train_loss", "val_loss", "seconds" (training time so far, evaluation excluded),
    "step_loss"}. `on_eval(step, val_loss)` runs at each evaluation (e.g. to print a sample).
    """
    device = next(model.parameters()).device
    optimizer = configure_optimizer(model, lr, weight_decay, beta2)
    generator = torch.Generator().manual_seed(seed)
    record: dict = {"step": [], "train_loss": [], "val_loss": [], "seconds": [], "step_loss": []}
    trained = 0.0
    model.train()
    bar = tqdm(range(iters), disable=not progress, leave=False, desc="training", mininterval=0.5)
    for step in bar:
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, warmup=warmup, total=iters, peak=lr, floor=floor * lr)
        x, y = random_batch(data.train, batch, model.config.block_size, generator) if sample is None else sample(generator)
        _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        record["step_loss"].append(loss.item())
        trained += time.perf_counter() - start
        if (step + 1) % eval_every == 0 or step + 1 == iters:
            val = estimate_loss(model, data.val, batches=eval_batches, batch=batch)
            recent = record["step_loss"][-eval_every:]
            for key, value in (("step", step + 1), ("train_loss", sum(recent) / len(recent)),
                               ("val_loss", val), ("seconds", trained)):
                record[key].append(value)
            bar.set_postfix(val=f"{val:.3f}")
            if on_eval is not None:
                model.eval()
                on_eval(step + 1, val)
                model.train()
    model.eval()
    return record


def build_gpt(vocab_size: int, model: dict | None = None) -> GPT:
    """A seeded GPT with the recipe's sizes (or `model`'s)."""
    torch.manual_seed(RECIPE["train"]["seed"])
    return GPT(GPTConfig(vocab_size=vocab_size, **(model or RECIPE["model"])))


def pretrained_gpt(data: CharData | None = None, *, device: torch.device | str = "cpu", progress: bool = True,
                   on_eval: Callable[[GPT, int, float], None] | None = None) -> tuple[GPT, CharData, dict]:
    """Lesson 05's character-level GPT on the course corpus: from the cache, or trained now. -> (model, data, record).

    `on_eval(model, step, val_loss)` runs at each evaluation while training (not when loaded from the cache).
    """
    data = data or shakespeare_chars()
    config = {"data": data.source, "vocab": data.tokenizer.chars, **RECIPE}

    def train(model: nn.Module) -> dict:
        model.to(device)
        hook = None if on_eval is None else (lambda step, val: on_eval(model, step, val))  # type: ignore[misc]
        record = train_gpt(model, data, **RECIPE["train"], progress=progress, on_eval=hook)  # type: ignore[arg-type]
        model.cpu()
        return record

    model = load_or_train("shakespeare-gpt", lambda: build_gpt(data.tokenizer.vocab_size), train, config)
    record = (read_metadata("shakespeare-gpt", config) or {}).get("metrics", {})
    return model.to(device).eval(), data, record
