"""Lessons 15-16: the reward model, lesson 05's GPT with a scalar head read at the end of each word of the
continuation, summed (trained in course_lib.alignment.reward_training).

InstructGPT (Ouyang et al., 2022) reads the score off the last token's final hidden state. This model reads only
the continuation and sums a score read off the last character of each word: by then the causal backbone has read
the whole word and what came before it, and the sum has one term a word, as a model over word tokens would.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from course_lib.models.gpt import GPT


def word_ends(tokens: torch.Tensor, word_char: torch.Tensor) -> torch.Tensor:
    """True at the last character of each word, a run of letters and apostrophes: tokens (b, t) -> (b, t) bool.

    `word_char` (vocab,) says which token ids are letters or apostrophes; a word cut off by the end counts too.
    """
    inside = word_char[tokens]
    next_inside = torch.cat([inside[:, 1:], torch.zeros_like(inside[:, :1])], dim=1)
    return inside & ~next_inside


class RewardModel(nn.Module):
    """A GPT backbone and a linear head read at the end of each word of the continuation, summed:
    sequences (b, p + t) -> scores (b,). `alphabet` is the character of each token id; the first `prompt_len`
    tokens of a sequence are the prompt, which the model does not read."""

    def __init__(self, backbone: GPT, alphabet: Sequence[str], prompt_len: int) -> None:
        super().__init__()
        self.prompt_len = prompt_len
        if len(alphabet) != backbone.config.vocab_size:
            raise ValueError(f"alphabet has {len(alphabet)} characters, the GPT {backbone.config.vocab_size} tokens")
        self.register_buffer("word_char", torch.tensor([c.isalpha() or c == "'" for c in alphabet]), persistent=False)
        self.backbone = copy.deepcopy(backbone)
        self.head = nn.Linear(backbone.config.d_model, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("offset", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        tokens = sequences[:, self.prompt_len :]  # (b, t) the continuation
        per_token = self.head(self.backbone.features(tokens)).squeeze(-1)  # (b, t)
        return ((per_token * word_ends(tokens, self.word_char)).sum(dim=1) - self.offset) / self.scale
