"""Lesson 18: memorisation: canaries (random secrets in a fixed sentence, Carlini et al. 2019) planted in the
training text a chosen number of times and their exposure, extraction by greedy completion of a prefix, the
per-passage losses a membership test (Yeom et al. 2018) thresholds, and exact-line deduplication as the defence
against repeated copies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from course_lib.artifacts import pretrained
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.text.decoding import generate
from course_lib.text.language_model import CharData, LMTraining, build_gpt, train_gpt
from course_lib.tokenizers import CharTokenizer

CANARY_PREFIX = "My secret number is "  # then `digits` random digits and a full stop


@dataclass(frozen=True)
class Canary:
    secret: str  # the digits
    repeats: int  # how many times the sentence is planted in the training text

    @property
    def sentence(self) -> str:
        return f"{CANARY_PREFIX}{self.secret}."


@dataclass(frozen=True)
class CanaryRecipe:
    repeats: tuple[int, ...] = (0, 1, 4, 16, 64)  # 0: secrets drawn the same way but never planted
    per_count: int = 3  # secrets planted each number of times
    digits: int = 5
    train_chars: int = 150_000  # the start of the course's training text
    model: GPTConfig = GPTConfig(vocab_size=None, layers=2, heads=4, d_model=64, block_size=64)
    train: LMTraining = LMTraining(steps=800, batch=32, lr=3e-3, warmup=50)
    seed: int = 0


RECIPE = CanaryRecipe()


def draw_canaries(recipe: CanaryRecipe = RECIPE) -> list[Canary]:
    """`per_count` distinct secrets of `digits` random digits for each entry of `recipe.repeats`, from the
    recipe's seed, in the order of `repeats`."""
    g = torch.Generator().manual_seed(recipe.seed)
    secrets: list[str] = []
    while len(secrets) < len(recipe.repeats) * recipe.per_count:
        secret = "".join(str(d) for d in torch.randint(10, (recipe.digits,), generator=g).tolist())
        if secret not in secrets:
            secrets.append(secret)
    return [Canary(secret, recipe.repeats[i // recipe.per_count]) for i, secret in enumerate(secrets)]


def plant(text: str, canaries: list[Canary], seed: int) -> str:
    """`text` with each canary's sentence inserted as its own line `repeats` times, at random line breaks."""
    lines = text.split("\n")
    inserts = [c.sentence for c in canaries for _ in range(c.repeats)]
    g = torch.Generator().manual_seed(seed)
    where = torch.randint(len(lines) + 1, (len(inserts),), generator=g).tolist()
    for position, sentence in sorted(zip(where, inserts), key=lambda pair: -pair[0]):
        lines.insert(position, sentence)
    return "\n".join(lines)


def deduplicate_lines(text: str, min_chars: int = 20) -> str:
    """Keep the first copy of every line of at least `min_chars` characters and drop its later exact copies; shorter
    lines (a play's speaker headings, "Exeunt.") all stay."""
    seen: set[str] = set()
    kept = []
    for line in text.split("\n"):
        if len(line) >= min_chars and line in seen:
            continue
        seen.add(line)
        kept.append(line)
    return "\n".join(kept)


def canary_data(
    tokenizer: CharTokenizer, train_text: str, val_ids: torch.Tensor, *, dedup: bool, recipe: CanaryRecipe = RECIPE
) -> CharData:
    """The canary model's text: the start of the training text with the canaries planted (then deduplicated
    when `dedup`), in the course tokenizer's ids; validation is the course's."""
    text = plant(train_text[: recipe.train_chars], draw_canaries(recipe), recipe.seed)
    if dedup:
        text = deduplicate_lines(text)
    return CharData(tokenizer, tokenizer.encode_tensor(text), val_ids, "canaries-dedup" if dedup else "canaries")


def canary_model(
    data: CharData, *, recipe: CanaryRecipe = RECIPE, device: torch.device | str = "cpu", progress: bool = False
) -> tuple[GPT, dict]:
    """A small GPT trained on `data` (from `canary_data`): from the cache, or trained now."""
    config = {"data": data.source, "vocab": data.tokenizer.chars, **asdict(recipe)}
    return pretrained(
        f"{data.source}-gpt",
        lambda: build_gpt(data.tokenizer.vocab_size, recipe.model, recipe.seed),
        lambda model: train_gpt(model, data, recipe.train, progress=progress, eval_every=recipe.train.steps),
        config,
        device=device,
    )


@torch.no_grad()
def all_secrets_logprob(model: GPT, prefix: torch.Tensor, digit_ids: torch.Tensor, length: int) -> torch.Tensor:
    """log p(secret | prefix) for every string of `length` digits, in numeric order: (10 ** length,).

    Built digit by digit: the 10 ** k strings of k digits are extended by each next digit with one forward pass.
    """
    logp = torch.zeros(1, device=prefix.device)
    strings = prefix[None, :]  # (n, t): the prefix followed by the digits so far
    for _ in range(length):
        logits = model(strings[:, -model.config.block_size :])[0][:, -1]  # (n, vocab)
        next_logp = logits.log_softmax(-1)[:, digit_ids]  # (n, 10)
        logp = (logp[:, None] + next_logp).reshape(-1)
        strings = torch.cat([strings.repeat_interleave(10, 0), digit_ids.repeat(len(strings))[:, None]], dim=1)
    return logp


def exposure(logp_all: torch.Tensor, secret: str) -> float:
    """log2(candidates) - log2(rank of the secret), rank 1 = most likely; ties rank the secret last."""
    index = int(secret)
    rank = int((logp_all >= logp_all[index]).sum())
    return math.log2(len(logp_all)) - math.log2(rank)


def greedy_completion(model: GPT, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """prompt (b, t) -> the `new_tokens` most likely next tokens, one at a time (lesson 06's `generate` at
    temperature 0, with its KV cache, so t + new_tokens must fit in block_size): (b, new_tokens)."""
    return generate(model, prompt, new_tokens, temperature=0)[:, prompt.shape[1] :]


@torch.no_grad()
def line_losses(model: GPT, lines: torch.Tensor) -> torch.Tensor:
    """lines (b, t) -> (b,): mean next-token cross-entropy (nats) over each row's tokens 2..t."""
    logits = model(lines[:, : model.config.block_size])[0][:, :-1]
    targets = lines[:, 1 : model.config.block_size]
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(1)
