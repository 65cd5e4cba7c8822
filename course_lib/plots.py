"""Lessons 00-03, 05-06, 08-10, 12-13: the pictures lessons draw, a grid of images, loss curves, a labelled heat
map, attention maps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def image_grid(
    images: torch.Tensor,
    *,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    cmap: str = "gray_r",
    size: float = 1.2,
) -> Figure:
    """Show images shaped (n, h, w) or (n, c, h, w) with c in {1, 3} in a grid; return the figure."""
    images = images.detach().float().cpu()
    if images.dim() == 4:
        if images.shape[1] not in (1, 3):
            raise ValueError(f"expected (n, 1|3, h, w), got {tuple(images.shape)}")
        images = images.permute(0, 2, 3, 1)  # n c h w -> n h w c
        if images.shape[-1] == 1:
            images = images[..., 0]
    elif images.dim() != 3:
        raise ValueError(f"expected images shaped (n, h, w) or (n, c, h, w), got {tuple(images.shape)}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows * (1.25 if titles else 1)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].numpy(), cmap=cmap if images.dim() == 3 else None)
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def loss_curve(
    curves: dict[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    logy: bool = False,
    smooth: int = 1,
) -> Figure:
    """Plot named curves (e.g. {"train": [...], "val": [...]}); `smooth` averages over a sliding window."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in curves.items():
        y = torch.as_tensor(list(values), dtype=torch.float64)
        if smooth > 1 and len(y) >= smooth:
            y = y.unfold(0, smooth, 1).mean(dim=1)
        ax.plot(range(len(y)), y.numpy(), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def heatmap(
    matrix: torch.Tensor,
    *,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    annotate: bool = False,
) -> Figure:
    """Draw a 2-D tensor (rows x columns) with optional tick labels, e.g. an attention map."""
    matrix = matrix.detach().float().cpu()
    if matrix.dim() != 2:
        raise ValueError(f"heatmap expects a 2-D tensor, got shape {tuple(matrix.shape)}")
    rows, cols = matrix.shape
    for labels, n, axis in ((xlabels, cols, "xlabels"), (ylabels, rows, "ylabels")):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{axis} has {len(labels)} entries but the matrix has {n} along that axis")
    fig, ax = plt.subplots(figsize=(max(3, 0.45 * cols + 1.5), max(2.5, 0.4 * rows + 1)))
    im = ax.imshow(matrix.numpy(), cmap=cmap, aspect="auto")
    if xlabels is not None:
        ax.set_xticks(range(cols), labels=list(xlabels), rotation=60, ha="right", fontsize=8)
    if ylabels is not None:
        ax.set_yticks(range(rows), labels=list(ylabels), fontsize=8)
    if annotate:
        for r in range(rows):
            for c in range(cols):
                ax.text(c, r, f"{matrix[r, c]:.2f}", ha="center", va="center", fontsize=7, color="w")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


@dataclass
class AttentionRecord:
    """One example's attention maps: kind -> (weights (layers, heads, t_q, t_k), query tokens, key tokens)."""

    title: str
    maps: dict[str, tuple[torch.Tensor, list[str], list[str]]]

    def __post_init__(self) -> None:
        for kind, (weights, queries, keys) in self.maps.items():
            if weights.dim() != 4 or weights.shape[2:] != (len(queries), len(keys)):
                raise ValueError(
                    f"{kind}: weights {tuple(weights.shape)} do not fit (layers, heads, "
                    f"{len(queries)} queries, {len(keys)} keys)"
                )


def attention_figure(record: AttentionRecord, kind: str, layer: int | None = None, head: int | None = None) -> Figure:
    """Heat maps of one kind of attention: every layer x head, or just the chosen layer and/or head."""
    weights, queries, keys = record.maps[kind]
    layers = range(weights.shape[0]) if layer is None else [layer]
    heads = range(weights.shape[1]) if head is None else [head]
    cell = 0.22
    fig, axes = plt.subplots(
        len(layers),
        len(heads),
        squeeze=False,
        figsize=(max(2.5, cell * len(keys) + 1.2) * len(heads), max(2.0, cell * len(queries) + 1.0) * len(layers)),
    )
    for r, layer_index in enumerate(layers):
        for c, h in enumerate(heads):
            ax = axes[r][c]
            ax.imshow(weights[layer_index, h].float().cpu().numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
            ax.set_yticks(range(len(queries)), queries, fontsize=7)
            ax.set_title(f"layer {layer_index}, head {h}", fontsize=8)
    fig.suptitle(f"{kind} attention: {record.title}", fontsize=9)
    fig.tight_layout()
    return fig


class LiveCurves:
    """A figure of training meters redrawn in place while a model trains (lesson 09's GAN meters).

    panels: {panel title: [record keys drawn in it]}; `update(history)` takes the list of records so far, each a
    dict with a "step" and those keys, and redraws the figure in the same output (a static image when saved).
    Panels named in `log` get a logarithmic y axis (a Frechet distance falls from hundreds to ten)."""

    def __init__(self, panels: dict[str, list[str]], *, log: tuple[str, ...] = (), width: float = 3.6) -> None:
        from IPython.display import display

        self.panels, self.log = panels, log
        self.fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 2.8), squeeze=False)
        self.axes = list(axes[0])
        self.handle = display(self.fig, display_id=True)
        plt.close(self.fig)

    def update(self, history: list[dict[str, float]]) -> None:
        steps = [record["step"] for record in history]
        for ax, (title, keys) in zip(self.axes, self.panels.items()):
            ax.clear()
            for key in keys:
                ax.plot(steps, [record[key] for record in history], label=key, marker=".")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            if title in self.log:
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        self.fig.tight_layout()
        if self.handle is not None:
            self.handle.update(self.fig)
