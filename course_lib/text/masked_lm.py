"""Lesson 07: self-supervision and transfer, masked-LM pretraining on Shakespeare, then few-label fine-tuning.

`pretrained_bert()` pretrains an encoder on 32-token windows of the whole training corpus (byte-level BPE,
1,024 tokens). Each window begins at a sentence and half are cut after a sentence's end and padded
(`sentence_windows`). That takes too long on a laptop CPU (docs/experiments.md has the times), so the repository
ships the result in float16 (`checkpoints/`, 1.5 MB, made by `python -m course_lib.text.masked_lm ship`);
`load_or_train` finds it there when the cache has none.

The corpus labels its own task: `course_lib.data.plays.questions()` takes the sentences of every play's speeches
that end in "?" or ".", hides the mark, and asks whether the line is a question. Each line gets a <mask>
appended (`cloze_batch`); `finetune()` trains a `Classifier` (pooled output, new head) or a `ClozeClassifier`
(the masked-LM's own logits of "." and "?" at the <mask>), from the pretrained weights or from scratch.
What was tried on the way, with its numbers, is in docs/experiments.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from course_lib.artifacts import SHIPPED, pretrained, ship_artifact
from course_lib.device import device_name, seeded, training_generator
from course_lib.models.bert import IGNORE, BertConfig, BertEncoder, MaskedLM, mask_tokens, mean_pool
from course_lib.text.language_model import random_batch
from course_lib.tokenizers import BPETokenizer
from course_lib.train import Optimisation, optimise

SPECIAL = ("<pad>", "<mask>")


@dataclass(frozen=True)
class BPERecipe:
    vocab_size: int = 1024
    train_chars: int = 1_000_000  # learned from this many characters of the training text


@dataclass(frozen=True, kw_only=True)
class MLMTraining(Optimisation):
    """The pretraining steps; a fraction mask_p of the tokens chosen, a fraction short_p of the windows cut short
    and padded."""

    steps: int = 5000
    batch: int = 256
    lr: float = 2e-3
    warmup: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    mask_p: float = 0.3
    short_p: float = 0.5


TOKENIZER = BPERecipe()


@dataclass(frozen=True)
class MLMRecipe:
    model: BertConfig = field(
        default_factory=lambda: BertConfig(
            vocab_size=TOKENIZER.vocab_size,
            max_len=32,
            layers=3,
            heads=4,
            d_model=128,
            dropout=0.0,  # <pad>, <mask> included
        )
    )
    train: MLMTraining = field(default_factory=MLMTraining)
    windows: str = "sentences"


@dataclass(frozen=True, kw_only=True)
class FinetuneTraining(Optimisation):
    """`finetune`'s AdamW steps, dropout and line length (tokens)."""

    steps: int = 120
    batch: int = 16
    lr: float = 3e-4
    warmup: int = 12  # a tenth of the steps
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    max_len: int = 32


PRETRAIN = MLMRecipe()
FINETUNE = FinetuneTraining()


def pretraining_key() -> dict:
    """What the pretrained encoder's cache and shipped checkpoint are named after (its config hash)."""
    return {"tokenizer": asdict(TOKENIZER), "special": SPECIAL, **asdict(PRETRAIN)}


@lru_cache(maxsize=1)
def bpe_tokenizer() -> BPETokenizer:
    """Byte-level BPE with 1,024 tokens learned from the first million training characters, plus <pad> and <mask>."""
    from course_lib.data import shakespeare_text

    text = shakespeare_text("train")[: TOKENIZER.train_chars]
    return BPETokenizer.train(text, TOKENIZER.vocab_size, special_tokens=SPECIAL)


def encode_batch(texts: list[str], tokenizer: BPETokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> ids (n, max_len), cut or padded with <pad>, and the padding mask (n, max_len), True at real tokens."""
    pad = tokenizer.special["<pad>"]
    ids = torch.full((len(texts), max_len), pad, dtype=torch.long)
    for i, text in enumerate(texts):
        tokens = tokenizer.encode(text)[:max_len]
        ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids, ids != pad


def cut_short(
    windows: torch.Tensor, p: float, *, pad_id: int, generator: torch.Generator, min_len: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a fraction p of the windows (b, t) to a random length in [min_len, t) and pad the rest with pad_id.
    -> (windows, pad_mask (b, t), True at real tokens)."""
    b, t = windows.shape
    short = torch.rand(b, generator=generator) < p
    lengths = torch.where(short, torch.randint(min_len, t, (b,), generator=generator), t)
    pad_mask = torch.arange(t) < lengths[:, None]
    return windows.masked_fill(~pad_mask, pad_id), pad_mask


def sentence_starts(ids: torch.Tensor, end_ids: list[int], space_ids: list[int]) -> torch.Tensor:
    """Positions in `ids` (n,) of the tokens that begin a sentence: the first non-space token after an end mark."""
    is_end, is_space = torch.isin(ids, torch.tensor(end_ids)), torch.isin(ids, torch.tensor(space_ids))
    after_end = torch.zeros_like(is_end)
    after_end[1:] = is_end[:-1]  # ".I"
    after_end[2:] |= is_end[:-2] & is_space[1:-1]  # ". I", ".\nI"
    return (after_end & ~is_space & ~is_end).nonzero().flatten()


def sentence_windows(
    ids: torch.Tensor,
    starts: torch.Tensor,
    batch: int,
    block: int,
    *,
    short_p: float,
    end_ids: list[int],
    pad_id: int,
    generator: torch.Generator,
    min_len: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` windows of `block` tokens, each beginning at a sentence start. A fraction short_p is cut right after
    a random sentence end inside it (at a random length of min_len or more if it has none) and padded with pad_id,
    so the encoder also sees single sentences, as the fine-tuning lines are. -> (windows, pad_mask (b, t))."""
    starts = starts[starts <= len(ids) - block]
    if len(starts) == 0:
        raise ValueError(f"no sentence starts at least {block} tokens before the end of the text")
    begin = starts[torch.randint(len(starts), (batch,), generator=generator)]
    windows = ids[begin[:, None] + torch.arange(block)]  # (b, t)
    short = torch.rand(batch, generator=generator) < short_p
    is_end = torch.isin(windows, torch.tensor(end_ids))
    is_end[:, : min_len - 1] = False
    end = (torch.rand(windows.shape, generator=generator) * is_end).argmax(1)  # a random end mark of each window
    any_length = torch.randint(min_len, block, (batch,), generator=generator)
    lengths = torch.where(short, torch.where(is_end.any(1), end + 1, any_length), block)
    pad_mask = torch.arange(block) < lengths[:, None]
    return windows.masked_fill(~pad_mask, pad_id), pad_mask


def mlm_batches(
    ids: torch.Tensor,
    training: MLMTraining,
    *,
    block: int,
    mask_id: int,
    starts: torch.Tensor | None = None,
    end_ids: list[int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """An endless stream of masked windows of `ids`: (inputs, labels (IGNORE where no loss), pad_mask or None).

    Given sentence `starts` and the `end_ids` marks, windows begin at a sentence and are cut after one
    (`sentence_windows`); otherwise anywhere (`cut_short`). <pad> is the id before `mask_id`, and random
    replacements are drawn from the ids below it."""
    if starts is not None and not end_ids:
        raise ValueError("sentence `starts` need the `end_ids` of the marks that end a sentence, e.g. '.', '?', '!'")
    t, regular = training, mask_id - 1
    generator = training_generator(t.seed)
    while True:
        if starts is not None:
            window, pad_mask = sentence_windows(
                ids, starts, t.batch, block, short_p=t.short_p, end_ids=end_ids, pad_id=regular, generator=generator
            )
        else:
            window, _ = random_batch(ids, t.batch, block, generator)
            window, pad_mask = (
                cut_short(window, t.short_p, pad_id=regular, generator=generator) if t.short_p else (window, None)
            )
        inputs, labels = mask_tokens(
            window, mask_id=mask_id, vocab_size=regular, generator=generator, p=t.mask_p, maskable=pad_mask
        )
        yield inputs, labels, pad_mask


def masked_lm_loss(model: MaskedLM, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
    """Cross-entropy at the chosen positions only (the logits are computed there alone)."""
    inputs, labels, pad_mask = batch
    chosen = labels != IGNORE
    return nn.functional.cross_entropy(model(inputs, pad_mask, at=chosen), labels[chosen])


def pretrain_mlm(
    model: MaskedLM,
    ids: torch.Tensor,
    training: MLMTraining,
    *,
    starts: torch.Tensor | None = None,
    end_ids: list[int] | None = None,
    progress: bool = True,
) -> dict:
    """Masked-LM training on windows of `ids` (`mlm_batches`): AdamW, warm-up then cosine decay, clipping.
    Cutting some windows short, as BERT did with 10% of its sequences, means short padded inputs are not new
    at fine-tuning. -> {"step_loss", "seconds"}."""
    t = training
    mask_id = model.encoder.config.vocab_size - 1  # <mask> is the last id, <pad> the one before
    batches = mlm_batches(ids, t, block=model.encoder.config.max_len, mask_id=mask_id, starts=starts, end_ids=end_ids)
    history = optimise(
        model, batches, masked_lm_loss, t, device=next(model.parameters()).device, progress=progress, desc="pretraining"
    )
    return {"step_loss": history.step_loss, "seconds": history.seconds}


END_MARKS = (".", "?", "!")


def pretrained_bert(
    *, device: torch.device | str = "cpu", use_shipped: bool = True, retrain: bool = False, progress: bool = True
) -> tuple[MaskedLM, BPETokenizer, dict]:
    """The lesson's masked-LM, pretrained on the whole training corpus. Loaded from the cache, else from the
    checkpoint the repository ships (`python -m course_lib.text.masked_lm ship` made it; skipped if not
    `use_shipped`), else trained now (a minute or two on a GPU, most of an hour on 2 CPU cores; the times are
    in docs/experiments.md). `retrain=True` always trains."""
    from course_lib.data import shakespeare_text

    tokenizer = bpe_tokenizer()
    config = PRETRAIN.model
    if tokenizer.vocab_size != config.vocab_size or tokenizer.special["<mask>"] != config.vocab_size - 1:
        raise RuntimeError(f"the recipe expects {config.vocab_size} tokens with <mask> last, got {tokenizer.special}")

    def build() -> MaskedLM:
        with seeded(PRETRAIN.train.seed):
            return MaskedLM(config)

    def train_it(model: MaskedLM) -> dict:
        ids = tokenizer.encode_tensor(shakespeare_text("train"))
        end_ids = [tokenizer.encode(mark)[0] for mark in END_MARKS]
        space_ids = [i for i in range(tokenizer.vocab_size - len(SPECIAL)) if not tokenizer.decode([i]).strip()]
        return pretrain_mlm(
            model,
            ids,
            PRETRAIN.train,
            starts=sentence_starts(ids, end_ids, space_ids),
            end_ids=end_ids,
            progress=progress,
        )

    model, record = pretrained(
        "shakespeare-bert",
        build,
        train_it,
        pretraining_key(),
        device=device,
        retrain=retrain,
        shipped=SHIPPED if use_shipped else None,
    )
    return model, tokenizer, record


def fresh_encoder(vocab_size: int, seed: int = 0, dropout: float | None = None) -> BertEncoder:
    """An untrained encoder of the pretrained one's size (the from-scratch baseline); `dropout` replaces its rate."""
    config = replace(PRETRAIN.model, vocab_size=vocab_size)
    with seeded(seed):
        return BertEncoder(config if dropout is None else replace(config, dropout=dropout))


def finetune(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    recipe: FinetuneTraining = FINETUNE,
    *,
    seed: int | None = None,
) -> nn.Module:
    """Train a classifier ((ids, pad_mask) -> logits: a `Classifier` or a `ClozeClassifier`, every weight
    trainable) on labelled examples for `recipe.steps` steps of AdamW, warm-up then cosine decay; the batches and
    dropout draw from generators seeded with `seed` (default: `recipe.seed`; the global one is restored after).
    -> the model, in eval mode."""
    r = recipe
    seed = r.seed if seed is None else seed

    def picks() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        generator = training_generator(seed)
        while True:
            pick = torch.randint(len(labels), (min(r.batch, len(labels)),), generator=generator)
            width = int(mask[pick].sum(1).max())  # padding is on the right: drop all-pad columns
            yield ids[pick, :width], mask[pick, :width], labels[pick]

    def loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0], batch[1]), batch[2])

    with seeded(seed):
        optimise(model, picks(), loss, r, device=next(model.parameters()).device, progress=False)
    return model.eval()


def cloze_batch(texts: list[str], tokenizer: BPETokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts with a <mask> appended (where the hidden mark stood) -> ids (n, max_len), cut to leave room for
    the <mask>, padded; and the padding mask, True at real tokens."""
    mask_id = tokenizer.special["<mask>"]
    ids, pad_mask = encode_batch(texts, tokenizer, max_len - 1)
    ids = torch.cat([ids, torch.full((len(texts), 1), tokenizer.special["<pad>"])], dim=1)
    lengths = pad_mask.sum(1)
    ids[torch.arange(len(texts)), lengths] = mask_id
    return ids, ids != tokenizer.special["<pad>"]


@torch.no_grad()
def by_length(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, batch: int = 256
) -> torch.Tensor:
    """fn(ids, mask) over batches of rows of similar length, each batch cut to its longest row (padding is on the
    right, and masked, so the cut changes nothing but the time); the results are returned in the rows' order."""
    order = mask.sum(1).argsort()
    out = []
    for i in range(0, len(ids), batch):
        rows = order[i : i + batch]
        width = int(mask[rows].sum(1).max())
        out.append(fn(ids[rows, :width], mask[rows, :width]).cpu())
    return torch.cat(out)[order.argsort()]


def predict(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Predicted class of each example (n,)."""
    device = next(model.parameters()).device
    model.eval()
    return by_length(lambda i, m: model(i.to(device), m.to(device)).argmax(-1), ids, mask, batch)


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` random examples of each class (all of a class if it has fewer)."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique().tolist():
        members = (labels == c).nonzero().flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


def embed(encoder: BertEncoder, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Sentence embeddings: the mean-pooled encoder output of each text, unit length. -> (n, d_model)."""
    device = next(encoder.parameters()).device
    encoder.eval()

    def pooled(i: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        i, m = i.to(device), m.to(device)
        return mean_pool(encoder(i, m), m)

    return nn.functional.normalize(by_length(pooled, ids, mask, batch), dim=-1)


def ship(device: str = "cpu") -> Path:
    """Pretrain the lesson's masked-LM afresh and write it, in float16, to the folder of shipped checkpoints.
    -> the weights' path."""
    model, _, record = pretrained_bert(device=device, retrain=True)
    made_on = device_name(device)
    metrics = {"seconds": round(record["seconds"], 1), "step_loss": [round(x, 4) for x in record["step_loss"]]}
    return ship_artifact("shakespeare-bert", pretraining_key(), model, metrics, made_on, half=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Pretrain the lesson 07 masked-LM and ship it with the repository.")
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    print(ship(parser.parse_args().device))
