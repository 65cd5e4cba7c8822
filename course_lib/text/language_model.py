"""Lessons 05-06, 15-16, 18: language modelling on Shakespeare: data, batches, loss, training. Lesson 06 decodes from
its GPT, lessons 15-16 align it, and bench/gpt.py times its recipe.

`RECIPE` is the lesson's character-level GPT, chosen to train fast on 2 CPU cores: a shallow model
(3 layers of 128) that keeps the matmuls busy with 24 x 64 tokens a step, a high peak learning rate
(5e-3) reached after a short warm-up, then cosine decay to a tenth of it. `pretrained_gpt()`
returns it from the cache, or trains it once (about 2 minutes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from course_lib.artifacts import pretrained
from course_lib.device import seeded, training_generator
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.tokenizers import CharTokenizer
from course_lib.train import Optimisation, optimise


@dataclass(frozen=True, kw_only=True)
class LMTraining(Optimisation):
    """A GPT's training: matrices decayed, vectors not, as GPT-2 and nanoGPT do."""

    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    decay_vectors: bool = False
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float | None = 1.0


@dataclass(frozen=True)
class GPTRecipe:
    model: GPTConfig  # its vocab_size is None: the tokenizer sets it when the model is built (`build_gpt`)
    train: LMTraining


RECIPE = GPTRecipe(
    GPTConfig(vocab_size=None, layers=3, heads=4, d_model=128, block_size=64),
    LMTraining(steps=1600, batch=24, lr=5e-3, warmup=100),
)
# nanoGPT's CPU recipe ("baby GPT" of its README), the published anchor: val loss 1.886 on tiny Shakespeare
NANOGPT_CPU = GPTRecipe(
    GPTConfig(vocab_size=None, layers=4, heads=4, d_model=128, block_size=64),
    LMTraining(steps=2000, batch=12, lr=1e-3, warmup=100),
)


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


def random_batch(
    ids: torch.Tensor, batch: int, block: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` random windows: inputs x (batch, block) and targets y, the same windows shifted by one token."""
    if len(ids) <= block + 1:
        raise ValueError(f"text of {len(ids)} tokens is too short for windows of {block} + 1")
    start = torch.randint(len(ids) - block - 1, (batch,), generator=generator)
    window = start[:, None] + torch.arange(block + 1)  # (batch, block + 1)
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


def random_windows(ids: torch.Tensor, batch: int, block: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless stream of `random_batch`es drawn from one seeded generator ($COURSE_SEED added)."""
    generator = training_generator(seed)
    while True:
        yield random_batch(ids, batch, block, generator)


def train_gpt(
    model: GPT,
    data: CharData,
    training: LMTraining,
    *,
    eval_every: int = 200,
    eval_batches: int = 50,
    on_eval: Callable[[GPT, int, float], None] | None = None,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
    progress: bool = True,
) -> dict:
    """Train on random windows of `data.train` (or on `batches`: lesson 06 leads each window with a control
    code), validating every `eval_every` steps on `eval_batches` fixed windows of `data.val`.

    Returns {"step", "train_loss", "val_loss", "seconds" (training time so far, evaluation excluded),
    "step_loss"}. `on_eval(model, step, val_loss)` runs at each evaluation (e.g. to print a sample).
    """
    t = training
    device = next(model.parameters()).device
    history = optimise(
        model,
        batches or random_windows(data.train, t.batch, model.config.block_size, t.seed),
        lambda m, batch: m(*batch)[1],
        t,
        evaluate=lambda m: {"val_loss": estimate_loss(m, data.val, batches=eval_batches, batch=t.batch)},
        eval_every=eval_every,
        on_eval=None if on_eval is None else (lambda m, record: on_eval(m, int(record["step"]), record["val_loss"])),
        device=device,
        progress=progress,
    )
    record = {key: history.column(key) for key in ("step", "train_loss", "val_loss", "seconds")}
    return {**record, "step_loss": history.step_loss}


def build_gpt(vocab_size: int, sizes: GPTConfig = RECIPE.model, seed: int = RECIPE.train.seed) -> GPT:
    """A GPT of `vocab_size` tokens with the recipe's sizes (or those of `sizes`), initialised from `seed`."""
    if sizes.vocab_size not in (None, vocab_size):
        raise ValueError(f"sizes says {sizes.vocab_size} tokens, the tokenizer {vocab_size}: leave it None in a recipe")
    with seeded(seed):
        return GPT(replace(sizes, vocab_size=vocab_size))


def pretrained_gpt(
    data: CharData | None = None,
    *,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_eval: Callable[[GPT, int, float], None] | None = None,
) -> tuple[GPT, CharData, dict]:
    """Lesson 05's character-level GPT on the course corpus: from the cache, or trained now. -> (model, data, record).

    `on_eval(model, step, val_loss)` runs at each evaluation while training (not when loaded from the cache).
    """
    data = data or shakespeare_chars()
    config = {"data": data.source, "vocab": data.tokenizer.chars, **asdict(RECIPE)}
    model, record = pretrained(
        "shakespeare-gpt",
        lambda: build_gpt(data.tokenizer.vocab_size),
        lambda model: train_gpt(model, data, RECIPE.train, progress=progress, on_eval=on_eval),
        config,
        device=device,
    )
    return model, data, record
