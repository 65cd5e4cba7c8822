"""Lesson 15: the PPO policy, a copy of lesson 05's GPT with a value head on its hidden states (trained in
course_lib.alignment.ppo)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_lib.models.gpt import GPT


class PolicyWithValue(nn.Module):
    """A copy of the GPT (the policy) and a value head on its hidden states, sharing the backbone."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = copy.deepcopy(gpt)
        self.value_head = nn.Linear(gpt.config.d_model, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, sequences: torch.Tensor, prompt_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """sequences (b, p + t), p = prompt_len -> the logits predicting each continuation token (b, t, vocab)
        and the value of the state each is predicted from (b, t)."""
        hidden = self.gpt.features(sequences[:, :-1])[:, prompt_len - 1 :]
        return self.gpt.head(hidden), self.value_head(hidden).squeeze(-1)
