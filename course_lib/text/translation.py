"""Lessons 01-03: the translation task, English number words into French, and how it is measured.

`number_task()` builds the data once (vocabularies and padded id tensors); `train_translator`
trains any encoder-decoder with the interface `model(src, tgt_in) -> logits` and
`model.greedy_decode(src, bos_id, eos_id, max_len)`; `evaluate_translator` scores greedy
translations of held-out numbers by exact match, token accuracy and input length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.artifacts import pretrained
from course_lib.data.number_words import Pair, translation_pairs
from course_lib.device import seeded
from course_lib.models.seq2seq import Seq2SeqGRU, Seq2SeqGRUConfig
from course_lib.models.transformer import Seq2SeqTransformer, Seq2SeqTransformerConfig
from course_lib.nn.attention import record_attention
from course_lib.plots import AttentionRecord
from course_lib.tokenizers import WordVocab, word_tokens
from course_lib.train import History, TensorBatches, adamw, fit


@dataclass(frozen=True)
class TaskRecipe:
    max_number: int = 999_999_999
    sample: int = 12_000
    seed: int = 0


@dataclass(frozen=True)
class TranslatorTraining:
    """AdamW with a one-cycle schedule (warm-up for `warmup` of the steps, then cosine decay), clipping at 1."""

    epochs: int
    lr: float
    batch: int = 64
    seed: int = 0


@dataclass(frozen=True)
class TranslatorRecipe:
    model: Seq2SeqGRUConfig | Seq2SeqTransformerConfig
    train: TranslatorTraining = field(default_factory=lambda: TranslatorTraining(epochs=2, lr=3e-3))


TASK = TaskRecipe()
# The lesson models, small enough to train in about a minute on 2 CPU cores, and close in size.
RECIPES: dict[str, TranslatorRecipe] = {
    "gru-fixed": TranslatorRecipe(Seq2SeqGRUConfig(hidden=64, attention=False)),
    "gru-attention": TranslatorRecipe(Seq2SeqGRUConfig(hidden=64, attention=True)),
    "transformer": TranslatorRecipe(
        Seq2SeqTransformerConfig(d_model=64, d_ff=128, dropout=0.0), TranslatorTraining(epochs=10, lr=2e-3)
    ),
}


@dataclass
class NumberTask:
    """Pairs, vocabularies and padded tensors: src (n, s) without BOS/EOS, tgt (n, t) as <bos> ... <eos>."""

    train: list[Pair]
    test: list[Pair]
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    train_src: torch.Tensor
    train_tgt: torch.Tensor
    test_src: torch.Tensor
    test_tgt: torch.Tensor
    params: dict  # the arguments of number_task that made it, part of a trained model's cache key

    @property
    def max_target_len(self) -> int:
        """Longest target in the training set, EOS included: the cap for greedy decoding."""
        return int((self.train_tgt != self.tgt_vocab.pad_id).sum(dim=1).max()) + 4


def number_task(max_number: int = TASK.max_number, sample: int = TASK.sample, seed: int = TASK.seed) -> NumberTask:
    """The translation task of lessons 01-03: 10,733 training and 1,267 held-out numbers by default."""
    pairs = translation_pairs(max_number, sample=sample, seed=seed)
    train, test = pairs["train"], pairs["test"]
    src_vocab = WordVocab(p.english for p in train)
    tgt_vocab = WordVocab(p.french for p in train)
    return NumberTask(
        train,
        test,
        src_vocab,
        tgt_vocab,
        train_src=src_vocab.batch([p.english for p in train]),
        train_tgt=tgt_vocab.batch([p.french for p in train], bos=True, eos=True),
        test_src=src_vocab.batch([p.english for p in test]),
        test_tgt=tgt_vocab.batch([p.french for p in test], bos=True, eos=True),
        params={"max_number": max_number, "sample": sample, "seed": seed},
    )


def trim_padding(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Drop the columns that are padding in every row: (b, t) -> (b, longest real length)."""
    return ids[:, : int((ids != pad_id).sum(dim=1).max())]


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Mean cross-entropy over real target tokens: logits (b, t, V), targets (b, t); padding counts for nothing."""
    if logits.shape[:2] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not fit targets {tuple(targets.shape)}")
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id)


def teacher_forcing_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], pad_id: int = 0) -> torch.Tensor:
    """Feed <bos> y1 .. y(n-1), predict y1 .. yn <eos>: the model always sees the true previous word."""
    src, tgt = (trim_padding(t, pad_id) for t in batch)
    return sequence_loss(model(src, tgt[:, :-1]), tgt[:, 1:], pad_id)


def train_translator(
    model: nn.Module,
    task: NumberTask,
    training: TranslatorTraining,
    *,
    warmup: float = 0.1,
    grad_clip: float = 1.0,
    evaluate_on: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> History:
    """AdamW with a one-cycle schedule (warm-up, then cosine decay) and gradient clipping, one record per epoch.

    With `evaluate_on=n`, the exact match on the first n held-out numbers is recorded after every epoch.
    """
    t = training
    batches = TensorBatches(task.train_src, task.train_tgt, batch_size=t.batch, seed=t.seed)
    optimizer = adamw(model, lr=t.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=t.lr, total_steps=t.epochs * len(batches), pct_start=warmup
    )
    evaluate = None
    if evaluate_on:

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"exact_match": evaluate_translator(m, task, limit=evaluate_on)["exact_match"]}

    return fit(
        model,
        batches,
        lambda m, b: teacher_forcing_loss(m, b, task.src_vocab.pad_id),
        optimizer,
        epochs=t.epochs,
        scheduler=scheduler,
        grad_clip=grad_clip,
        evaluate=evaluate,
        progress=progress,
        device=device,
    )


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def translate(model: nn.Module, task: NumberTask, english: list[str]) -> list[str]:
    """Greedy translations of English number words (the model is put in eval mode)."""
    model.eval()
    src = task.src_vocab.batch(english).to(_device_of(model))
    out = model.greedy_decode(src, task.tgt_vocab.bos_id, task.tgt_vocab.eos_id, task.max_target_len)
    ids = out[0] if isinstance(out, tuple) else out  # the GRU also returns its alignments
    return [task.tgt_vocab.decode(row) for row in ids]


def _token_matches(predicted: torch.Tensor, reference: torch.Tensor, eos_id: int, pad_id: int) -> tuple[int, int]:
    """How many reference tokens (EOS included) the prediction has at the same position, and how many there are."""
    ref = reference[(reference != pad_id)].tolist()
    pred = predicted.tolist()
    return sum(1 for i, r in enumerate(ref) if i < len(pred) and pred[i] == r), len(ref)


@torch.no_grad()
def evaluate_translator(model: nn.Module, task: NumberTask, *, limit: int | None = None, batch_size: int = 512) -> dict:
    """Greedy-decode held-out numbers; exact match, token accuracy, corpus BLEU, and exact match by English length.

    Returns {"exact_match": float, "token_accuracy": float, "bleu": float (sacrebleu, 0-100),
    "by_length": {words: (accuracy, count)}, "predictions": [str]}.
    """
    import sacrebleu  # imported here: only evaluation needs it

    was_training = model.training
    model.eval()
    pairs = task.test[:limit]
    vocab = task.tgt_vocab
    exact, matched, total, by_length, predictions = 0, 0, 0, {}, []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        out = model.greedy_decode(
            task.src_vocab.batch([p.english for p in chunk]).to(_device_of(model)),
            vocab.bos_id,
            vocab.eos_id,
            task.max_target_len,
        )
        ids = out[0] if isinstance(out, tuple) else out
        for row, pair in zip(ids.cpu(), chunk):
            text = vocab.decode(row)
            predictions.append(text)
            ok = text == pair.french
            exact += ok
            m, n = _token_matches(row, torch.tensor(vocab.encode(pair.french, eos=True)), vocab.eos_id, vocab.pad_id)
            matched, total = matched + m, total + n
            length = len(word_tokens(pair.english))
            hits, count = by_length.get(length, (0, 0))
            by_length[length] = (hits + ok, count + 1)
    model.train(was_training)
    return {
        "exact_match": exact / len(pairs),
        "token_accuracy": matched / total,
        "bleu": sacrebleu.corpus_bleu(predictions, [[p.french for p in pairs]]).score,
        "by_length": {k: (hits / count, count) for k, (hits, count) in sorted(by_length.items())},
        "predictions": predictions,
    }


def build_translator(
    kind: str,
    task: NumberTask,
    config: Seq2SeqGRUConfig | Seq2SeqTransformerConfig | None = None,
    *,
    positions: bool = True,
) -> nn.Module:
    """A fresh, seeded model of one of the lesson recipes ("gru-fixed", "gru-attention", "transformer"), or of
    another `config` of the same kind; `positions=False` leaves a Transformer without positional encodings."""
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]
    config = config or recipe.model
    if not isinstance(config, type(recipe.model)):
        raise TypeError(f"{kind} takes {type(recipe.model).__name__}, got {type(config).__name__}")
    with seeded(recipe.train.seed):
        if isinstance(config, Seq2SeqTransformerConfig):
            return Seq2SeqTransformer(
                len(task.src_vocab), len(task.tgt_vocab), max_len=64, positions=positions, **asdict(config)
            )
        if not positions:
            raise ValueError("positions=False is for the Transformer; a GRU reads its input in order")
        return Seq2SeqGRU(len(task.src_vocab), len(task.tgt_vocab), **asdict(config))


def pretrained_translator(
    kind: str, task: NumberTask, *, device: torch.device | str = "cpu", progress: bool = True
) -> tuple[nn.Module, dict]:
    """The lesson recipe's trained model, from the cache or trained now (about a minute), and its training record.

    The record holds the loss of every step and each epoch's training wall time, measured when it was trained.
    """
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]

    def train(model: nn.Module) -> dict:
        history = train_translator(model, task, recipe.train, progress=progress, device=device)
        ends = history.column("seconds")
        return {
            "step_loss": history.step_loss,
            "epoch_seconds": [b - a for a, b in zip([0.0, *ends], ends)],
            "device": str(device),
        }

    config = {"kind": kind, "task": task.params, **asdict(recipe)}
    return pretrained(f"numbers-{kind}", lambda: build_translator(kind, task), train, config, device=device)


@torch.no_grad()
def transformer_attention(model: Seq2SeqTransformer, task: NumberTask, english: str) -> AttentionRecord:
    """Translate one sentence, then replay the decoder on its own output and record every attention map.

    Decoder rows are labelled with the word each position *writes*; their keys are the words it has read.
    """
    model.eval()
    device = _device_of(model)
    src = task.src_vocab.batch([english]).to(device)
    out = model.greedy_decode(src, task.tgt_vocab.bos_id, task.tgt_vocab.eos_id, task.max_target_len)[0].tolist()
    eos = task.tgt_vocab.eos_id
    written = out[: out.index(eos) + 1] if eos in out else out
    tgt_in = torch.tensor([[task.tgt_vocab.bos_id] + written[:-1]], device=device)
    with record_attention(model) as maps:
        model(src, tgt_in)
    itos_src, itos_tgt = task.src_vocab.itos, task.tgt_vocab.itos
    source = [itos_src[i] for i in src[0].tolist()]
    writes = [itos_tgt[i] for i in written]
    reads = [itos_tgt[i] for i in tgt_in[0].tolist()]

    def stack(part: str, attn: str) -> torch.Tensor:
        return torch.stack([maps[f"{part}.{i}.{attn}"][0] for i in range(len(model.encoder))]).cpu()

    return AttentionRecord(
        english,
        {
            "cross": (stack("decoder", "cross_attn"), writes, source),
            "decoder self": (stack("decoder", "self_attn"), writes, reads),
            "encoder self": (stack("encoder", "self_attn"), source, source),
        },
    )
