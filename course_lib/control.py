"""Controllable generation (lesson 06): control codes that tell lesson 05's GPT which play to write.

As in CTRL (Keskar et al., 2019), each training window starts with a code token for its source, so
the model learns p(text | code). Codes are new tokens appended to the character vocabulary;
`controlled_gpt()` fine-tunes the pretrained GPT on four plays (about 45 seconds on 2 CPU cores)
and caches the result. The measure of control is independent of the model: which play's cast the
speaker names in the generated text belong to.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import lm
from course_lib.artifacts import load_or_train, read_metadata
from course_lib.nn.gpt import GPT, GPTConfig

PLAYS: tuple[str, ...] = ("Hamlet", "Macbeth", "Romeo and Juliet", "Othello")
FINETUNE: dict = {"iters": 600, "batch": 24, "lr": 2e-3, "warmup": 20, "floor": 0.1, "weight_decay": 0.1,
                  "beta2": 0.99, "grad_clip": 1.0, "seed": 0}
HEADING = r"([A-Z][A-Za-z' ]{0,24})\."                  # "Ham." or "LADY MACBETH."
# a heading is a line of its own after a blank line (or at the start), with the speech on the next line
SPEAKER_LINE = re.compile(r"(?:\A|(?<=\n\n))" + HEADING + r"\n(?=\S)")
NOT_SPEAKERS = re.compile(r"^(ACT|SCENE|Scene|Act|PERSONS|Persons)\b|^(Exit|Exeunt|Enter)")


def is_heading(line: str) -> bool:
    """Whether a line is a speaker heading ("Ham.") rather than an act or scene title."""
    match = re.fullmatch(HEADING, line.strip())
    return match is not None and not NOT_SPEAKERS.match(match.group(1))


def speaker_names(text: str) -> list[str]:
    """The speakers of the speeches in a play's text, in order ("Ham", "LADY MACBETH"); act and scene titles excluded."""
    return [name for name in SPEAKER_LINE.findall(text) if not NOT_SPEAKERS.match(name)]


def casts(texts: dict[str, str], min_lines: int = 3) -> dict[str, set[str]]:
    """For each play, the speaker headings that occur at least `min_lines` times in it and in no other play."""
    counts = {title: Counter(speaker_names(text)) for title, text in texts.items()}
    cast = {title: {n for n, c in count.items() if c >= min_lines} for title, count in counts.items()}
    return {title: {n for n in names if not any(n in cast[o] for o in cast if o != title)} for title, names in cast.items()}


def cast_shares(text: str, cast: dict[str, set[str]]) -> dict[str, float]:
    """Of the speaker headings in `text`, the fraction that belong to each play's cast (the rest: to none)."""
    names = speaker_names(text)
    return {title: sum(n in members for n in names) / max(len(names), 1) for title, members in cast.items()}


def with_control_codes(model: GPT, codes: int) -> GPT:
    """A copy of `model` whose vocabulary has `codes` new tokens at the end (ids vocab_size .. vocab_size + codes - 1)."""
    config = GPTConfig(**{**model.config.as_dict(), "vocab_size": model.config.vocab_size + codes})
    torch.manual_seed(0)
    grown = GPT(config)
    state = model.state_dict()
    old = state["tok_emb.weight"]
    new_rows = old.mean(dim=0, keepdim=True) + 0.02 * torch.randn(codes, old.shape[1])   # start near an average token
    state = {**state, "tok_emb.weight": torch.cat([old, new_rows]), "head.weight": torch.cat([old, new_rows])}
    grown.load_state_dict(state)
    return grown


def speech_starts(text: str) -> torch.Tensor:
    """Character offsets where a speaker heading begins (each example of the fine-tuning starts at one)."""
    return torch.tensor([m.start() for m in SPEAKER_LINE.finditer(text) if not NOT_SPEAKERS.match(m.group(1))])


def control_batch(texts: list[torch.Tensor], starts: list[torch.Tensor], first_code: int, batch: int, block: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of randomly chosen texts, each beginning at a speech and led by its text's code:
    x = [code, w_0 .. w_{block-2}], y = w_0 .. w_{block-1}, so the code alone must predict who speaks first."""
    source = torch.randint(len(texts), (batch,), generator=generator).tolist()
    xs, ys = [], []
    for s in source:
        usable = starts[s][starts[s] < len(texts[s]) - block]
        start = usable[torch.randint(len(usable), (1,), generator=generator)].item()
        window = texts[s][start:start + block]
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


def controlled_gpt(plays: tuple[str, ...] = PLAYS, *, device: torch.device | str = "cpu") -> Controlled:
    """Lesson 05's GPT fine-tuned with one control code per play (training halves only): from the cache or trained now."""
    from course_lib.data import work_text
    base, data, _ = lm.pretrained_gpt(device="cpu", progress=False)
    first_code = data.tokenizer.vocab_size
    raw = [work_text(title, "train") for title in plays]
    texts, starts = [data.tokenizer.encode_tensor(text) for text in raw], [speech_starts(text) for text in raw]
    config = {"base": lm.RECIPE, "vocab": data.tokenizer.chars, "plays": list(plays), "finetune": FINETUNE}

    def train(model: nn.Module) -> dict:
        model.to(device)
        block = model.config.block_size  # type: ignore[union-attr]
        record = lm.train_gpt(model, data, **FINETUNE, eval_every=FINETUNE["iters"], progress=False,  # type: ignore[arg-type]
                              sample=lambda g: control_batch(texts, starts, first_code, FINETUNE["batch"], block, g))
        model.cpu()
        return record

    model = load_or_train("shakespeare-gpt-control", lambda: with_control_codes(base, len(plays)), train, config)
    record = (read_metadata("shakespeare-gpt-control", config) or {}).get("metrics", {})
    codes = {title: first_code + i for i, title in enumerate(plays)}
    return Controlled(model.to(device).eval(), data, tuple(plays), codes, record)


@torch.no_grad()
def code_loss(model: GPT, text: str, code: int | None, tokenizer, *, chars: int = 32, windows: int = 256,
              seed: int = 0) -> float:
    """Mean loss on the first `chars` characters of speeches of `text` (fixed random ones), read after `code`,
    or (None) after a line break, the base model's way of starting a speech."""
    generator = torch.Generator().manual_seed(seed)
    ids, starts = tokenizer.encode_tensor(text), speech_starts(text)
    starts = starts[starts < len(ids) - chars]
    picks = starts[torch.randint(len(starts), (windows,), generator=generator)]
    y = ids[picks[:, None] + torch.arange(chars)]                           # (windows, chars)
    first = torch.full((windows, 1), tokenizer.encode("\n")[0] if code is None else code)
    x = torch.cat([first, y[:, :-1]], dim=1)
    device = next(model.parameters()).device
    logits, _ = model(x.to(device))
    return F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten()).item()
