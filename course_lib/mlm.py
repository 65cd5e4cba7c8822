"""Self-supervision and transfer (lesson 07): masked-LM pretraining on Shakespeare, then few-label fine-tuning.

`pretrained_bert()` pretrains an encoder on 32-token windows of the whole training corpus (byte-level BPE,
1,024 tokens). Each window begins at a sentence and half are cut after a sentence's end and padded
(`sentence_windows`). 5,000 steps of 256 windows take 86 s on an H100 and 40 to 50 minutes on 2 CPU cores
(0.47-0.57 s a step), so the repository ships the result in float16 (`checkpoints/`, 1.5 MB, made by
`python -m course_lib.mlm ship`); `load_or_train` finds it there when the cache has none.

The corpus labels its own task: `questions()` takes the sentences of every play's speeches that end in "?"
or ".", hides the mark, and asks whether the line is a question. Each line gets a <mask> appended
(`cloze_batch`); `finetune()` trains a `Classifier` (pooled output, new head) or a `ClozeClassifier` (the
masked-LM's own logits of "." and "?" at the <mask>), from the pretrained weights or from scratch.

Measured (748 balanced test lines; accuracy at 4 / 16 / 64 / 256 labels per class, 120 steps, batch 16,
lr 3e-4; mean of 5 label draws on an H100 with the shipped weights):
- zero labels (the cloze head as pretrained): 81.3%, ROC AUC 0.894.
- cloze head, pretrained 73.6 / 79.6 / 82.9 / 84.5, from scratch 56.0 / 58.8 / 65.6 / 70.3.
- pooled head, pretrained 60.3 / 71.6 / 80.5 / 85.3, from scratch 56.2 / 58.4 / 64.5 / 70.9.
- a bag of words with logistic regression (3 draws): 54.0 / 61.6 / 67.7 / 73.5.
What it took, so nobody repeats it (2 cores unless said; losses in nats, unigram entropy 5.74):
- 64-token random windows, batch 32, 15% masked sat on the unigram plateau (5.6 after 1,000 steps).
  32-token windows, batch 64, 30% masked (Wettig et al. 2022) left it within 500 steps: 3.33 after 2,500
  steps (212 s); with half the windows cut at random and padded, 3.72. Neither transferred: fine-tuned
  within noise of scratch at every label count, zero-shot "?" vs "." AUC 0.51-0.58, and the MLM filled a
  sentence's end with "," ("What dost thou say<mask>" -> ","). Sentence-aligned windows at that budget:
  loss 3.65, AUC 0.58, still no transfer.
- The same sentence-aligned recipe with 8x the tokens (batch 256, 5,000 steps, on an H100): loss 2.46, and
  everything above. The transfer needed a good enough masked-LM, not a different head.
- Earlier tasks on plateau-bound MLMs (which play, 4 plays; comedy vs tragedy) did not transfer either.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib.artifacts import load_or_train, read_metadata
from course_lib.control import PLAYS, is_heading
from course_lib.nn.bert import (
    IGNORE,
    BertConfig,
    BertEncoder,
    MaskedLM,
    mask_tokens,
    mean_pool,
)
from course_lib.tokenizers import BPETokenizer
from course_lib.train import warmup_cosine

SPECIAL = ("<pad>", "<mask>")
TOKENIZER = {"vocab_size": 1024, "train_chars": 1_000_000}
PRETRAIN: dict = {
    "model": {"max_len": 32, "layers": 3, "heads": 4, "d_model": 128, "dropout": 0.0},
    "train": {"iters": 5000, "batch": 256, "lr": 2e-3, "warmup": 50, "weight_decay": 0.01, "mask_p": 0.3,
              "short_p": 0.5, "seed": 0},
    "windows": "sentences",
}
FINETUNE: dict = {"steps": 120, "batch": 16, "lr": 3e-4, "weight_decay": 0.01, "dropout": 0.1, "max_len": 32}


@lru_cache(maxsize=1)
def bpe_tokenizer() -> BPETokenizer:
    """Byte-level BPE with 1,024 tokens learned from the first million training characters, plus <pad> and <mask>."""
    from course_lib.data import shakespeare_text
    text = shakespeare_text("train")[:TOKENIZER["train_chars"]]
    return BPETokenizer.train(text, TOKENIZER["vocab_size"], special_tokens=SPECIAL)


@dataclass
class Speech:
    text: str
    label: int         # index into the plays
    speaker: str


def speeches(split: str, plays: tuple[str, ...] = PLAYS, min_chars: int = 40) -> list[Speech]:
    """Every speech of at least `min_chars` characters in the plays' "train" or "val" part, stage directions removed."""
    from course_lib.data import work_text
    out = []
    for label, play in enumerate(plays):
        for block in re.split(r"\n\s*\n", work_text(play, split)):
            heading, _, body = block.partition("\n")
            if not is_heading(heading):
                continue
            body = " ".join(re.sub(r"\[.*?\]", "", body).split())
            if len(body) >= min_chars:
                out.append(Speech(body, label, heading.rstrip(".")))
    return out


POEMS = ("A Lover's Complaint", "The Passionate Pilgrim", "The Phoenix and the Turtle", "The Rape of Lucrece", "Sonnets")
CAST_LIST = re.compile(r"[A-Z]{2,}\b")                      # "BERTRAM, Count of Rousillon": a cast list, not a line
SENTENCE = re.compile(r"(.+?)([?!.])(?=\s+[A-Z'\"]|$)")     # up to a mark followed by a capital, or the end


@dataclass
class Line:
    text: str          # a sentence, its final mark removed
    label: int         # 1: it ends in "?", 0: it ends in "."
    play: str


def plays() -> tuple[str, ...]:
    """The titles of the 37 plays among the corpus's works (the poems have no speeches)."""
    from course_lib.data import load_shakespeare
    return tuple(title for title in load_shakespeare() if title not in POEMS)


def questions(split: str, min_words: int = 4, max_words: int = 30) -> list[Line]:
    """Every sentence of `min_words`-`max_words` words in the plays' speeches that ends in "?" or ".", without that
    mark. The corpus labels the task itself: does the line ask a question? Exclamations are left out."""
    titles, out = plays(), []
    for speech in speeches(split, titles):
        for match in SENTENCE.finditer(speech.text):
            body, mark = match.group(1).strip(" -'\""), match.group(2)
            keep = (mark != "!" and min_words <= len(body.split()) <= max_words
                    and not CAST_LIST.match(body) and not re.search(r"[?!]", body))   # one mark, at the end
            if keep:
                out.append(Line(body, int(mark == "?"), titles[speech.label]))
    return out


def encode_batch(texts: list[str], tokenizer: BPETokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> ids (n, max_len), cut or padded with <pad>, and the padding mask (n, max_len), True at real tokens."""
    pad = tokenizer.special["<pad>"]
    ids = torch.full((len(texts), max_len), pad, dtype=torch.long)
    for i, text in enumerate(texts):
        tokens = tokenizer.encode(text)[:max_len]
        ids[i, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids, ids != pad


def cut_short(windows: torch.Tensor, p: float, *, pad_id: int, generator: torch.Generator,
              min_len: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
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
    after_end[1:] = is_end[:-1]                                     # ".I"
    after_end[2:] |= is_end[:-2] & is_space[1:-1]                   # ". I", ".\nI"
    return (after_end & ~is_space & ~is_end).nonzero().flatten()


def sentence_windows(ids: torch.Tensor, starts: torch.Tensor, batch: int, block: int, *, short_p: float,
                     end_ids: list[int], pad_id: int, generator: torch.Generator,
                     min_len: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` windows of `block` tokens, each beginning at a sentence start. A fraction short_p is cut right after
    a random sentence end inside it (at a random length of min_len or more if it has none) and padded with pad_id,
    so the encoder also sees single sentences, as the fine-tuning lines are. -> (windows, pad_mask (b, t))."""
    starts = starts[starts <= len(ids) - block]
    if len(starts) == 0:
        raise ValueError(f"no sentence starts at least {block} tokens before the end of the text")
    begin = starts[torch.randint(len(starts), (batch,), generator=generator)]
    windows = ids[begin[:, None] + torch.arange(block)]               # (b, t)
    short = torch.rand(batch, generator=generator) < short_p
    is_end = torch.isin(windows, torch.tensor(end_ids))
    is_end[:, :min_len - 1] = False
    end = (torch.rand(windows.shape, generator=generator) * is_end).argmax(1)   # a random end mark of each window
    any_length = torch.randint(min_len, block, (batch,), generator=generator)
    lengths = torch.where(short, torch.where(is_end.any(1), end + 1, any_length), block)
    pad_mask = torch.arange(block) < lengths[:, None]
    return windows.masked_fill(~pad_mask, pad_id), pad_mask


def pretrain_mlm(model: MaskedLM, ids: torch.Tensor, *, iters: int, batch: int, lr: float, warmup: int,
                 weight_decay: float, seed: int, mask_p: float = 0.15, short_p: float = 0.0,
                 starts: torch.Tensor | None = None, end_ids: list[int] | None = None,
                 progress: bool = True) -> dict:
    """Masked-LM training on random windows of `ids`, a fraction `mask_p` of positions chosen: AdamW, warm-up then
    cosine decay. A fraction `short_p` of the windows is cut short and padded, as BERT did with 10% of its
    sequences, so that short, padded inputs are not new at fine-tuning. Given sentence `starts` and the `end_ids`
    marks, windows begin at a sentence and are cut after one (`sentence_windows`); otherwise anywhere
    (`cut_short`). -> {"step_loss", "seconds"}."""
    from course_lib.lm import random_batch
    if starts is not None and not end_ids:
        raise ValueError("sentence `starts` need the `end_ids` of the marks that end a sentence, e.g. '.', '?', '!'")
    device = next(model.parameters()).device
    mask_id = model.encoder.config.vocab_size - 1                 # <mask> is the last id, <pad> the one before
    regular = mask_id - 1                                          # random replacements: ids 0 .. regular - 1
    block = model.encoder.config.max_len
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    losses, start = [], time.perf_counter()
    model.train()
    for step in tqdm(range(iters), leave=False, desc="pretraining", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, warmup=warmup, total=iters, peak=lr, floor=lr / 10)
        if starts is not None:
            window, pad_mask = sentence_windows(ids, starts, batch, block, short_p=short_p, end_ids=end_ids,
                                                pad_id=regular, generator=generator)
        else:
            window, _ = random_batch(ids, batch, block, generator)
            window, pad_mask = (cut_short(window, short_p, pad_id=regular, generator=generator) if short_p
                                else (window, None))
        inputs, labels = mask_tokens(window, mask_id=mask_id, vocab_size=regular, generator=generator,
                                     p=mask_p, maskable=pad_mask)
        labels = labels.to(device)
        chosen = labels != IGNORE                                  # logits only where the loss looks
        pad_mask = None if pad_mask is None else pad_mask.to(device)
        loss = nn.functional.cross_entropy(model(inputs.to(device), pad_mask, at=chosen), labels[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return {"step_loss": losses, "seconds": time.perf_counter() - start}


END_MARKS = (".", "?", "!")
SHIPPED = Path(__file__).parent / "checkpoints"


def pretrained_bert(*, device: torch.device | str = "cpu", use_shipped: bool = True, retrain: bool = False,
                    progress: bool = True) -> tuple[MaskedLM, BPETokenizer, dict]:
    """The lesson's masked-LM, pretrained on the whole training corpus. Loaded from the cache, else from the
    checkpoint the repository ships (`python -m course_lib.mlm ship` made it; skipped if not `use_shipped`),
    else trained now: 86 s on an H100, 40 to 50 minutes on 2 CPU cores. `retrain=True` always trains."""
    from course_lib.data import shakespeare_text
    tokenizer = bpe_tokenizer()
    config = BertConfig(vocab_size=tokenizer.vocab_size, **PRETRAIN["model"])
    if tokenizer.special["<mask>"] != config.vocab_size - 1:
        raise RuntimeError("the tokenizer must put <mask> last")
    key = {"tokenizer": TOKENIZER, "special": SPECIAL, **PRETRAIN}

    def build() -> MaskedLM:
        torch.manual_seed(PRETRAIN["train"]["seed"])
        return MaskedLM(config)

    def train(model: nn.Module) -> dict:
        ids = tokenizer.encode_tensor(shakespeare_text("train"))
        end_ids = [tokenizer.encode(mark)[0] for mark in END_MARKS]
        space_ids = [i for i in range(tokenizer.vocab_size - len(SPECIAL)) if not tokenizer.decode([i]).strip()]
        model.to(device)
        record = pretrain_mlm(model, ids, **PRETRAIN["train"], starts=sentence_starts(ids, end_ids, space_ids),  # type: ignore[arg-type]
                              end_ids=end_ids, progress=progress)
        model.cpu()
        return record

    shipped = SHIPPED if use_shipped else None
    model = load_or_train("shakespeare-bert", build, train, key, retrain=retrain, shipped=shipped)
    record = (read_metadata("shakespeare-bert", key, shipped=shipped) or {}).get("metrics", {})
    return model.to(device).eval(), tokenizer, record


def fresh_encoder(vocab_size: int, seed: int = 0, dropout: float | None = None) -> BertEncoder:
    """An untrained encoder of the pretrained one's size (the from-scratch baseline); `dropout` replaces its rate."""
    torch.manual_seed(seed)
    model = PRETRAIN["model"] if dropout is None else {**PRETRAIN["model"], "dropout": dropout}
    return BertEncoder(BertConfig(vocab_size=vocab_size, **model))


def finetune(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, *,
             steps: int, batch: int, lr: float, weight_decay: float, seed: int = 0, **_: object) -> nn.Module:
    """Train a classifier ((ids, pad_mask) -> logits: a `Classifier` or a `ClozeClassifier`, every weight
    trainable) on labelled examples for `steps` steps of AdamW, warm-up then cosine decay. -> the model, in eval mode."""
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, warmup=steps // 10, total=steps, peak=lr, floor=lr / 10)
        pick = torch.randint(len(labels), (min(batch, len(labels)),), generator=generator)
        width = int(mask[pick].sum(1).max())                       # padding is on the right: drop all-pad columns
        logits = model(ids[pick, :width].to(device), mask[pick, :width].to(device))
        loss = nn.functional.cross_entropy(logits, labels[pick].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
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
def by_length(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """fn(ids, mask) over batches of rows of similar length, each batch cut to its longest row (padding is on the
    right, and masked, so the cut changes nothing but the time); the results are returned in the rows' order."""
    order = mask.sum(1).argsort()
    out = []
    for i in range(0, len(ids), batch):
        rows = order[i:i + batch]
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
    """Pretrain the lesson's masked-LM afresh and write it, in float16 (half the bytes), to the folder of shipped
    checkpoints, named and checksummed as `load_or_train` expects. -> the weights' path."""
    import json

    from course_lib.artifacts import artifact_paths
    from course_lib.paths import atomic_path, atomic_write_bytes, sha256_file
    model, _, record = pretrained_bert(device=device, retrain=True)
    key = {"tokenizer": TOKENIZER, "special": SPECIAL, **PRETRAIN}
    cached, _ = artifact_paths("shakespeare-bert", key)
    weights, meta_path = SHIPPED / cached.name, SHIPPED / cached.with_suffix(".json").name
    SHIPPED.mkdir(exist_ok=True)
    with atomic_path(weights) as tmp:
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, tmp)
    made_on = torch.cuda.get_device_name() if str(device).startswith("cuda") else "cpu"
    meta = {"name": "shakespeare-bert", "config": key, "sha256": sha256_file(weights), "torch": torch.__version__,
            "made_on": made_on, "metrics": {"seconds": round(record["seconds"], 1),
                                            "step_loss": [round(x, 4) for x in record["step_loss"]]}}
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
    return weights


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="Pretrain the lesson 07 masked-LM and ship it with the repository.")
    parser.add_argument("command", choices=["ship"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    print(ship(parser.parse_args().device))
