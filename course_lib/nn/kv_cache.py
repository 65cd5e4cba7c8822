"""Lesson 06: a key-value cache, so generation feeds only the newest token and reuses every earlier key and value."""

from __future__ import annotations

import torch


class LayerCache:
    """One layer's keys and values for the tokens seen so far, each (b, heads, t, d_head)."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' k, v (b, h, s, d) along time; return all keys and values so far (b, h, t + s, d)."""
        if self.keys is not None:
            k, v = torch.cat([self.keys, k], dim=2), torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v


class KVCache:
    """A `LayerCache` per block: generation feeds only the new token and reuses every earlier key and value."""

    def __init__(self, layers: int) -> None:
        self.layers = [LayerCache() for _ in range(layers)]

    def __len__(self) -> int:
        return len(self.layers[0])
