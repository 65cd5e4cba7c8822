"""Lessons 11-13, 18: captioned images of one or two coloured shapes, rendered here (no download), deterministic.

A scene is six integers, the columns of `ATTRIBUTES`:
- layout: 0 one object, 1 two side by side (object a on the left), 2 two stacked (object a on top);
- colour_a, shape_a: the object (or the left / top one); size: 0 small, 1 large (one-object scenes only,
  two objects are both of medium size);
- colour_b, shape_b: the right / bottom object, -1 in one-object scenes.
Two objects always differ in colour and in shape, so swapping their colours or shapes changes the scene.

Captions name every attribute: "a large red circle", "a red circle left of a blue square" (or, for the same
scene, "a blue square right of a red circle"). Every object in `HELD_OUT` (colour, shape) is kept out of the
training split entirely; the "unseen" split has at least one in every scene, so lessons can test composition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

VERSION = "2"  # part of every cached model's config: a change to the renderer retrains them
SIDE = 16  # images are (3, SIDE, SIDE), values in [0, 1], black background
COLOURS = ("red", "green", "blue", "yellow")
RGB = {"red": (0.95, 0.2, 0.15), "green": (0.2, 0.8, 0.25), "blue": (0.25, 0.45, 1.0), "yellow": (0.95, 0.85, 0.1)}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
LAYOUTS = ("one", "side by side", "stacked")
ATTRIBUTES = ("layout", "colour_a", "shape_a", "size", "colour_b", "shape_b")
HELD_OUT = (("green", "triangle"), ("blue", "square"))
RADIUS = {"small": 2.6, "large": 4.6, "pair": 3.0}  # in pixels
SPLIT_SEEDS = {"train": 0, "test": 1, "unseen": 2}
JITTER = 1.5  # how far (pixels) a scene may move from its place: one object near the centre, two in their halves
SUPERSAMPLE = 4  # each pixel is the coverage of a 4x4 grid of sub-pixels (anti-aliasing)

VOCAB = ("<pad>", "<eos>", "a", *SIZES, *COLOURS, *SHAPES, "left", "right", "of", "above", "below")
TOKEN = {word: i for i, word in enumerate(VOCAB)}
MAX_TOKENS = 9  # "a red circle left of a blue square" and <eos>


@dataclass(frozen=True)
class Shapes:
    """images (n, 3, SIDE, SIDE) in [0, 1]; attributes (n, 6) int64 (columns ATTRIBUTES); captions, one per image;
    tokens (n, MAX_TOKENS) int64 (words then <eos>, padded with <pad> = 0)."""

    images: torch.Tensor
    attributes: torch.Tensor
    captions: list[str]
    tokens: torch.Tensor

    def __len__(self) -> int:
        return len(self.captions)


def is_held_out(colour: int, shape: int) -> bool:
    return (COLOURS[colour], SHAPES[shape]) in HELD_OUT if colour >= 0 else False


def caption(scene: list[int] | torch.Tensor, b_first: bool = False) -> str:
    """The caption of one scene (six attributes); for two objects, `b_first` names the right / bottom one first
    ("a blue square right of a red circle")."""
    layout, ca, sa, size, cb, sb = (int(v) for v in scene)
    if layout not in (0, 1, 2):
        raise ValueError(f"layout must be 0, 1 or 2, got {layout}")
    a = f"{COLOURS[ca]} {SHAPES[sa]}"
    if layout == 0:
        return f"a {SIZES[size]} {a}"
    b = f"{COLOURS[cb]} {SHAPES[sb]}"
    first, second = ("left of", "right of") if layout == 1 else ("above", "below")
    return f"a {b} {second} a {a}" if b_first else f"a {a} {first} a {b}"


def encode(captions: list[str]) -> torch.Tensor:
    """Captions -> (n, MAX_TOKENS) int64: each word's index in VOCAB, then <eos>, then <pad>."""
    out = torch.zeros(len(captions), MAX_TOKENS, dtype=torch.long)
    for i, text in enumerate(captions):
        words = text.split()
        unknown = [w for w in words if w not in TOKEN]
        if unknown or len(words) >= MAX_TOKENS:
            raise ValueError(f"caption {text!r}: unknown words {unknown} or more than {MAX_TOKENS - 1} words")
        out[i, : len(words) + 1] = torch.tensor([TOKEN[w] for w in words] + [TOKEN["<eos>"]])
    return out


def decode(tokens: torch.Tensor) -> list[str]:
    """(n, t) token indices -> captions (up to <eos>)."""
    out = []
    for row in tokens.tolist():
        words = [VOCAB[i] for i in row]
        out.append(" ".join(words[: words.index("<eos>")] if "<eos>" in words else words))
    return out


def _draw(mask_of: str, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Coverage (n, SIDE, SIDE) in [0, 1] of one shape per image, centres and radii (n,) in pixels."""
    fine = (torch.arange(SIDE * SUPERSAMPLE) + 0.5) / SUPERSAMPLE  # sub-pixel centres in pixel units
    y, x = fine[None, :, None], fine[None, None, :]
    dx, dy = x - cx[:, None, None], y - cy[:, None, None]
    r = r[:, None, None]
    if mask_of == "circle":
        inside = dx**2 + dy**2 <= r**2
    elif mask_of == "square":
        inside = (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r)
    elif mask_of == "triangle":  # apex up at cy - r, base at cy + 0.8 r, r to each side
        inside = (dy <= 0.8 * r) & (dx.abs() <= (dy + r) / 1.8)
    else:
        raise ValueError(f"shape must be one of {SHAPES}, got {mask_of!r}")
    return F.avg_pool2d(inside.float()[:, None], SUPERSAMPLE)[:, 0]


def render(attributes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scenes (n, 6) -> images (n, 3, SIDE, SIDE), each object at a random position that keeps the layout true:
    one object within JITTER pixels of the centre; two side by side (stacked) in the left and right (top and
    bottom) halves, at heights (columns) within JITTER + 0.5 pixels of the middle."""
    generator = generator or torch.Generator().manual_seed(0)
    n = len(attributes)
    layout = attributes[:, 0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    size_r = torch.where(attributes[:, 3] == 1, RADIUS["large"], RADIUS["small"])
    r_a = torch.where(layout == 0, size_r, torch.tensor(RADIUS["pair"]))
    # object a: near the centre (one object, within JITTER) or in its half; the other axis shared with b up to +-1 pixel
    free, free_other = SIDE / 2 + uniform(-JITTER, JITTER), SIDE / 2 + uniform(-JITTER, JITTER)
    gap = RADIUS["pair"] + 0.5  # the objects never touch: a in [gap, SIDE/2 - gap + 0.5], b mirrored
    near, far = uniform(gap, SIDE / 2 - gap + 0.5), uniform(SIDE / 2 + gap - 0.5, SIDE - gap)
    shared, jitter_a, jitter_b = SIDE / 2 + uniform(-JITTER, JITTER), uniform(-0.5, 0.5), uniform(-0.5, 0.5)
    ax = torch.where(layout == 0, free, torch.where(layout == 1, near, shared + jitter_a))
    ay = torch.where(layout == 0, free_other, torch.where(layout == 1, shared + jitter_a, near))
    bx = torch.where(layout == 1, far, shared + jitter_b)
    by = torch.where(layout == 1, shared + jitter_b, far)
    images = torch.zeros(n, 3, SIDE, SIDE)
    objects = [(1, 2, ax, ay, r_a), (4, 5, bx, by, torch.full((n,), RADIUS["pair"]))]
    for colour_col, shape_col, cx, cy, r in objects:
        for s, shape in enumerate(SHAPES):
            for c, colour in enumerate(COLOURS):
                rows = ((attributes[:, colour_col] == c) & (attributes[:, shape_col] == s)).nonzero()[:, 0]
                if len(rows) == 0:
                    continue
                cover = _draw(shape, cx[rows], cy[rows], r[rows])  # (k, SIDE, SIDE)
                images[rows] += cover[:, None] * torch.tensor(RGB[colour])[None, :, None, None]
    return images.clamp(0, 1)


def random_scenes(n: int, split: str, generator: torch.Generator) -> torch.Tensor:
    """n scenes (n, 6): layouts equally likely, colours and shapes uniform; "train" and "test" never contain a
    HELD_OUT object, "unseen" always contains one."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    out, have = [], 0
    while have < n:
        k = 4 * (n - have) + 64
        layout = torch.randint(0, 3, (k,), generator=generator)
        ca, cb = torch.randint(0, 4, (k,), generator=generator), torch.randint(0, 4, (k,), generator=generator)
        sa, sb = torch.randint(0, 3, (k,), generator=generator), torch.randint(0, 3, (k,), generator=generator)
        size = torch.randint(0, 2, (k,), generator=generator)
        one = layout == 0
        size = torch.where(one, size, 0)
        cb, sb = torch.where(one, -1, cb), torch.where(one, -1, sb)
        scenes = torch.stack([layout, ca, sa, size, cb, sb], dim=1)
        distinct = one | ((ca != cb) & (sa != sb))
        held = torch.tensor([is_held_out(c, s) or is_held_out(d, t) for c, s, d, t in zip(ca, sa, cb, sb)])
        keep = distinct & (held if split == "unseen" else ~held)
        out.append(scenes[keep])
        have += int(keep.sum())
    return torch.cat(out)[:n]


def make_shapes(n: int, split: str = "train", seed: int | None = None) -> Shapes:
    """n captioned images of one split ("train", "test": seen combinations, "unseen": held-out ones), the same
    on every machine for the same (n, split, seed). Half the two-object captions name the second object first."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    generator = torch.Generator().manual_seed(SPLIT_SEEDS[split] if seed is None else seed)
    attributes = random_scenes(n, split, generator)
    b_first = torch.rand(n, generator=generator) < 0.5
    captions = [caption(scene, bool(flip)) for scene, flip in zip(attributes, b_first)]
    images = torch.cat([render(chunk, generator) for chunk in attributes.split(4096)])
    return Shapes(images, attributes, captions, encode(captions))


def scene_of(text: str) -> torch.Tensor:
    """The six attributes a caption names (the inverse of `caption`): (6,) int64."""
    words = text.split()
    try:
        if len(words) == 4:
            _, size, colour, shape = words
            return torch.tensor([0, COLOURS.index(colour), SHAPES.index(shape), SIZES.index(size), -1, -1])
        c1, s1, relation = words[1], words[2], " ".join(words[3:-3])
        c2, s2 = words[-2], words[-1]
        first = (COLOURS.index(c1), SHAPES.index(s1))
        second = (COLOURS.index(c2), SHAPES.index(s2))
        layout, a, b = {
            "left of": (1, first, second),
            "right of": (1, second, first),
            "above": (2, first, second),
            "below": (2, second, first),
        }[relation]
        return torch.tensor([layout, a[0], a[1], 0, b[0], b[1]])
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"not a caption of this data set: {text!r}") from None
