"""Lessons 05-06, 15-16, 18: GPT, a decoder-only Transformer trained to predict the next token; lesson 06 decodes
from it, lessons 15-16 align it with preferences.

Pre-LN blocks (x + attn(LN(x)), x + mlp(LN(x))), learned positions as in GPT-1, the output layer
tied to the token embedding, GPT-2's initialisation (N(0, 0.02), residual projections scaled by
1/sqrt(2 * layers)). Attention uses PyTorch's fused kernel, which lesson 05 checks against the
lesson 02 `scaled_dot_product_attention` with a causal mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.nn.attention import causal_mask, merge_heads, split_heads
from course_lib.nn.kv_cache import KVCache, LayerCache


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int | None  # None only in a recipe, before the tokenizer is known (language_model.build_gpt)
    block_size: int = 128  # longest context the model can read
    layers: int = 4
    heads: int = 4
    d_model: int = 128
    dropout: float = 0.0


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position i reads positions 0..i; q, k, v from one fused projection."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.d_model % config.heads:
            raise ValueError(f"d_model={config.d_model} must be divisible by heads={config.heads}")
        self.heads, self.dropout = config.heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        """x (b, s, d_model) -> (b, s, d_model); with a cache, x holds only the new tokens."""
        q, k, v = (split_heads(part, self.heads) for part in self.qkv(x).chunk(3, dim=-1))  # (b, h, s, d)
        past = 0
        if cache is not None:
            past = len(cache)
            k, v = cache.append(k, v)  # (b, h, past + s, d)
        dropout = self.dropout if self.training else 0.0
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        elif q.shape[2] == 1:  # one new token reads every cached key: no mask needed
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # new token i sits at position past + i and reads keys 0..past + i
            mask = causal_mask(q.shape[2], k.shape[2], device=x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.proj(merge_heads(out))


class Block(nn.Module):
    """Pre-LN Transformer block: x + attention(LN(x)), then x + MLP(LN(x)) with a 4x GELU MLP."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln1, self.attn = nn.LayerNorm(d), CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    """Token + position embeddings, `layers` blocks, a final LayerNorm, logits through the tied embedding."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if config.vocab_size is None or config.vocab_size < 1:  # a recipe leaves it None, for the tokenizer to set
            raise ValueError(f"vocab_size must be >= 1, got {config.vocab_size}: set it from the tokenizer")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying: one matrix reads and writes tokens
        self.apply(self._init)
        for name, p in self.named_parameters():  # residual branches add up over layers: scale them down
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.layers))

    def new_cache(self) -> KVCache:
        """An empty key-value cache for `forward(..., cache=)`."""
        return KVCache(self.config.layers)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, embeddings: bool = False) -> int:
        """Parameter count; by default without the position embedding (the convention of scaling laws)."""
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.pos_emb.weight.numel()

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (b, t) token ids -> logits (b, t, vocab), and the mean cross-entropy against `targets` (b, t) if given.

        With a `KVCache`, idx holds only the tokens after the cached ones, and their keys and values join the cache.
        """
        logits = self.head(self.features(idx, cache))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def features(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (b, t) -> the final hidden states (b, t, d_model), after the last LayerNorm: what the head reads
        (a reward model or a value head reads them too)."""
        past, t = (0 if cache is None else len(cache)), idx.shape[1]
        if past + t > self.config.block_size:
            where = f"{past} cached + {t} new tokens" if past else f"sequence of {t} tokens"
            raise ValueError(f"{where} is longer than block_size={self.config.block_size}")
        positions = torch.arange(past, past + t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache.layers[i])
        return self.ln_f(x)

    def flops_per_token(self, t: int | None = None) -> float:
        """Training FLOPs per token (forward + backward = 3x forward): 6 N plus the attention products."""
        t = t or self.config.block_size
        c = self.config
        return 6 * self.num_params() + 12 * c.layers * c.d_model * t  # as nanoGPT and PaLM count attention
