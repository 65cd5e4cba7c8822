"""Lesson 06: controllable generation, control codes that tell lesson 05's GPT which play to write.

As in CTRL (Keskar et al., 2019), each training window starts with a code token for its source, so
the model learns p(text | code). Codes are new tokens appended to the character vocabulary;
`controlled_gpt()` fine-tunes the pretrained GPT on four plays (about 45 seconds on 2 CPU cores)
and caches the result. The measure of control is independent of the model: which play's cast the
speaker names in the generated text belong to (`course_lib.data.plays.cast_shares`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from course_lib.artifacts import pretrained
from course_lib.data.plays import speech_starts
from course_lib.device import seeded, training_generator
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.text import language_model as lm
from course_lib.tokenizers import CharTokenizer

PLAYS: tuple[str, ...] = ("Hamlet", "Macbeth", "Romeo and Juliet", "Othello")
FINETUNE = lm.LMTraining(steps=600, batch=24, lr=2e-3, warmup=20)


def with_control_codes(model: GPT, codes: int) -> GPT:
    """A copy of `model` with `codes` new tokens after its vocabulary (ids vocab_size .. vocab_size + codes - 1)."""
    config = GPTConfig(**{**asdict(model.config), "vocab_size": model.config.vocab_size + codes})
    state = model.state_dict()
    old = state["tok_emb.weight"]
    with seeded(0):
        grown = GPT(config)
        new_rows = old.mean(dim=0, keepdim=True) + 0.02 * torch.randn(codes, old.shape[1])  # near an average token
    state = {**state, "tok_emb.weight": torch.cat([old, new_rows]), "head.weight": torch.cat([old, new_rows])}
    grown.load_state_dict(state)
    return grown


def control_batch(
    texts: list[torch.Tensor],
    starts: list[torch.Tensor],
    first_code: int,
    batch: int,
    block: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of randomly chosen texts, each beginning at a speech and led by its text's code:
    x = [code, w_0 .. w_{block-2}], y = w_0 .. w_{block-1}, so the code alone must predict who speaks first."""
    source = torch.randint(len(texts), (batch,), generator=generator).tolist()
    xs, ys = [], []
    for s in source:
        usable = starts[s][starts[s] < len(texts[s]) - block]
        start = usable[torch.randint(len(usable), (1,), generator=generator)].item()
        window = texts[s][start : start + block]
        xs.append(torch.cat([torch.tensor([first_code + s]), window[:-1]]))
        ys.append(window)
    return torch.stack(xs), torch.stack(ys)


@dataclass
class Controlled:
    """The fine-tuned model, its character data, the plays in code order, and each play's code token id."""

    model: GPT
    data: lm.CharData
    plays: tuple[str, ...]
    codes: dict[str, int]
    record: dict


def control_windows(
    texts: list[torch.Tensor], starts: list[torch.Tensor], first_code: int, batch: int, block: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless stream of `control_batch`es drawn from one seeded generator ($COURSE_SEED added)."""
    generator = training_generator(seed)
    while True:
        yield control_batch(texts, starts, first_code, batch, block, generator)


def controlled_gpt(plays: tuple[str, ...] = PLAYS, *, device: torch.device | str = "cpu") -> Controlled:
    """Lesson 05's GPT fine-tuned with a control code per play (training halves only): from the cache or trained now."""
    from course_lib.data import work_text

    base, data, _ = lm.pretrained_gpt(device="cpu", progress=False)
    first_code = data.tokenizer.vocab_size
    raw = [work_text(title, "train") for title in plays]
    texts, starts = [data.tokenizer.encode_tensor(text) for text in raw], [speech_starts(text) for text in raw]
    config = {
        "base": asdict(lm.RECIPE),
        "vocab": data.tokenizer.chars,
        "plays": list(plays),
        "finetune": asdict(FINETUNE),
    }

    def train(model: GPT) -> dict:
        windows = control_windows(texts, starts, first_code, FINETUNE.batch, model.config.block_size, FINETUNE.seed)
        return lm.train_gpt(model, data, FINETUNE, eval_every=FINETUNE.steps, batches=windows, progress=False)

    model, record = pretrained(
        "shakespeare-gpt-control", lambda: with_control_codes(base, len(plays)), train, config, device=device
    )
    codes = {title: first_code + i for i, title in enumerate(plays)}
    return Controlled(model, data, tuple(plays), codes, record)


@torch.no_grad()
def code_loss(
    model: GPT,
    text: str,
    code: int | None,
    tokenizer: CharTokenizer,
    *,
    chars: int = 32,
    windows: int = 256,
    seed: int = 0,
) -> float:
    """Mean loss on the first `chars` characters of speeches of `text` (fixed random ones), read after `code`,
    or (None) after a line break, the base model's way of starting a speech."""
    generator = torch.Generator().manual_seed(seed)
    ids, starts = tokenizer.encode_tensor(text), speech_starts(text)
    starts = starts[starts < len(ids) - chars]
    picks = starts[torch.randint(len(starts), (windows,), generator=generator)]
    y = ids[picks[:, None] + torch.arange(chars)]  # (windows, chars)
    first = torch.full((windows, 1), tokenizer.encode("\n")[0] if code is None else code)
    x = torch.cat([first, y[:, :-1]], dim=1)
    device = next(model.parameters()).device
    logits, _ = model(x.to(device))
    return F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten()).item()
