"""Lessons 15-16, 18: the simulated annotator and its preference data ("make Shakespeare cheerful").

The true reward of a continuation is VADER's compound sentiment score (Hutto and Gilbert, 2014), a
real lexicon-and-rules tool, in [-1, 1]. Because it is known, the lessons can check what real RLHF
cannot: whether a policy improved on the true objective or only on a learned reward model.
The annotator compares two continuations of one prompt as Bradley-Terry says a noisy person would,
P(a preferred to b) = sigmoid((r_a - r_b) / noise), and declines to judge exact ties.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import torch

from course_lib.artifacts import config_hash, load_or_make_tensors
from course_lib.models.gpt import GPT
from course_lib.tokenizers import CharTokenizer

PROMPT_CHARS = 24  # every prompt has this many characters and ends just before a space or a newline
NEW_TOKENS = 32  # every continuation has this many characters


@cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def true_reward(texts: list[str]) -> torch.Tensor:
    """VADER's compound sentiment of each text: (n,) floats in [-1, 1], 0 for text with no sentiment words."""
    if isinstance(texts, str):
        raise TypeError("true_reward takes a list of texts, got one string")
    return torch.tensor([_vader().polarity_scores(text)["compound"] for text in texts])


def prompt_windows(ids: torch.Tensor, tokenizer: CharTokenizer, n: int, seed: int) -> torch.Tensor:
    """`n` windows of PROMPT_CHARS tokens from `ids`, each ending just before whitespace: (n, PROMPT_CHARS)."""
    space = torch.tensor([tokenizer.encode(c)[0] for c in " \n"])
    ends = torch.nonzero(torch.isin(ids, space)).squeeze(1)
    ends = ends[ends >= PROMPT_CHARS]
    generator = torch.Generator().manual_seed(seed)
    chosen = ends[torch.randint(len(ends), (n,), generator=generator)]
    return ids[chosen[:, None] - PROMPT_CHARS + torch.arange(PROMPT_CHARS)]


def held_out_prompts(ids: torch.Tensor, tokenizer: CharTokenizer, n: int = 256) -> torch.Tensor:
    """The prompts every policy is evaluated on: `n` windows of the validation text (seed 123)."""
    return prompt_windows(ids, tokenizer, n, seed=123)


@torch.no_grad()
def sample_continuations(
    model: GPT, prompts: torch.Tensor, *, generator: torch.Generator, new_tokens: int = NEW_TOKENS, batch: int = 512
) -> torch.Tensor:
    """One sampled continuation (temperature 1) per prompt row: prompts (n, p) -> full sequences (n, p + new_tokens)."""
    from course_lib.text.decoding import generate

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [generate(model, part.to(device), new_tokens, generator=generator).cpu() for part in prompts.split(batch)]
    model.train(was_training)
    return torch.cat(out)


def continuation_texts(sequences: torch.Tensor, tokenizer: CharTokenizer, prompt_len: int = PROMPT_CHARS) -> list[str]:
    """The generated part of each sequence, as text."""
    return [tokenizer.decode(row[prompt_len:].tolist()) for row in sequences]


def annotate(reward_a: torch.Tensor, reward_b: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """The simulated annotator's choices: True where a is preferred, drawn with P = sigmoid((r_a - r_b) / noise)."""
    if noise <= 0:
        raise ValueError(f"noise must be > 0 (a Bradley-Terry temperature), got {noise}")
    p_a = torch.sigmoid((reward_a - reward_b) / noise)
    return torch.rand(p_a.shape, generator=generator) < p_a


@dataclass(frozen=True)
class PreferenceRecipe:
    """Prompts from the training text, `per_prompt` continuations of each, every untied pair of them judged."""

    prompts: int = 10000
    per_prompt: int = 4
    noise: float = 0.1
    held_out: float = 0.1  # share of prompts (with all their pairs) kept for evaluation
    seed: int = 0


@dataclass
class Preferences:
    """prompts (n, p), responses (n, k, p + t) full sequences, reward (n, k) true rewards, pairs (m, 3) rows of
    (prompt, chosen response, rejected response), test (n,) True for held-out prompts."""

    prompts: torch.Tensor
    responses: torch.Tensor
    reward: torch.Tensor
    pairs: torch.Tensor
    test: torch.Tensor
    key: str = ""  # the cache key it was made under: models trained on it put it in their own config
    alphabet: tuple[str, ...] = ()  # the character of each token id
    recipe: PreferenceRecipe | None = None  # what made it (None: built by hand)

    def split(self, test: bool) -> torch.Tensor:
        """The pairs whose prompt is (test=True) or is not held out."""
        return self.pairs[self.test[self.pairs[:, 0]] == test]

    def sequences(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) full sequences of `pairs`: two (m, p + t) tensors."""
        return self.responses[pairs[:, 0], pairs[:, 1]], self.responses[pairs[:, 0], pairs[:, 2]]

    def agrees_with_truth(self, pairs: torch.Tensor) -> torch.Tensor:
        """True where the chosen response has the higher true reward (the label without the annotator's noise)."""
        return self.reward[pairs[:, 0], pairs[:, 1]] > self.reward[pairs[:, 0], pairs[:, 2]]


def make_preferences(model: GPT, ids: torch.Tensor, tokenizer: CharTokenizer, recipe: PreferenceRecipe) -> Preferences:
    """Sample, score and judge: the preference data set of `recipe`, drawn from `model` on prompts from `ids`."""
    r = recipe
    generator = torch.Generator().manual_seed(r.seed)
    prompts = prompt_windows(ids, tokenizer, r.prompts, r.seed)
    device = next(model.parameters()).device  # sampling on a GPU needs a generator there
    sampler = generator if device.type == "cpu" else torch.Generator(device).manual_seed(r.seed)
    sequences = sample_continuations(model, prompts.repeat_interleave(r.per_prompt, 0), generator=sampler)
    reward = true_reward(continuation_texts(sequences, tokenizer)).view(r.prompts, r.per_prompt)
    a, b = torch.triu_indices(r.per_prompt, r.per_prompt, offset=1)  # every pair of responses to a prompt
    prompt = torch.arange(r.prompts).repeat_interleave(len(a))
    a, b = a.repeat(r.prompts), b.repeat(r.prompts)
    untied = reward[prompt, a] != reward[prompt, b]
    prompt, a, b = prompt[untied], a[untied], b[untied]
    a_wins = annotate(reward[prompt, a], reward[prompt, b], r.noise, generator)
    pairs = torch.stack([prompt, torch.where(a_wins, a, b), torch.where(a_wins, b, a)], dim=1)
    test = torch.zeros(r.prompts, dtype=torch.bool)
    test[torch.randperm(r.prompts, generator=generator)[: round(r.held_out * r.prompts)]] = True
    responses = sequences.view(r.prompts, r.per_prompt, -1)
    return Preferences(prompts, responses, reward, pairs, test, alphabet=tuple(tokenizer.chars), recipe=recipe)


def preference_data(
    model: GPT, ids: torch.Tensor, tokenizer: CharTokenizer, recipe: PreferenceRecipe = PreferenceRecipe()
) -> Preferences:
    """`make_preferences` from the cache, or made now (about a minute on 2 cores) and cached; the model's checkpoint
    hash is part of the key, so a different base model makes new data."""
    fingerprint = sum(p.double().sum().item() for p in model.parameters())
    config = {**asdict(recipe), "model": f"{fingerprint:.6f}", "text": len(ids), "vocab": tokenizer.chars}

    def make() -> dict[str, torch.Tensor]:
        made = make_preferences(model, ids, tokenizer, recipe)
        return {name: value for name, value in vars(made).items() if isinstance(value, torch.Tensor)}

    tensors = load_or_make_tensors("cheerful-preferences", make, config)
    return Preferences(**tensors, key=config_hash(config), alphabet=tuple(tokenizer.chars), recipe=recipe)
