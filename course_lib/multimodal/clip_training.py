"""Lessons 12-13, 18: training CLIP on the captioned shapes and measuring it: zero-shot classification from prompts,
retrieval (recall@k), and the binding test (the true caption against the same words with attributes swapped).

Hard negatives, in the spirit of NegCLIP (Yuksekgonul et al. 2023, which adds one word-swapped caption per image
and nearest-neighbour negative images): each image also meets three wrong versions of its own caption (a
two-object caption with its colours swapped, its shapes swapped, its relation reversed; a one-object caption
with its size, its colour or its shape changed), extra columns of the image -> text softmax that every image of
the batch sees, so word order has to matter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from course_lib.artifacts import SHIPPED, pretrained
from course_lib.data.shapes import COLOURS, SHAPES, SIZES, Shapes, encode, is_held_out, make_shapes, scene_of
from course_lib.data.shapes import VERSION as DATA_VERSION
from course_lib.device import seeded
from course_lib.models.clip import CLIP, CLIPConfig
from course_lib.train import Optimisation, TensorBatches, optimise

SWAPS = ("colours", "shapes", "relation")
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def hard_negative(text: str, kind: str) -> str:
    """The same caption in a wrong arrangement: the two objects' "colours" or "shapes" exchanged, or the
    "relation" reversed (one word: left <-> right, above <-> below)."""
    words = text.split()
    if len(words) < 7 or kind not in SWAPS:
        raise ValueError(f"kind must be one of {SWAPS} for a two-object caption, got {kind!r} for {text!r}")
    if kind == "relation":
        return " ".join(OPPOSITE.get(w, w) for w in words)
    pool = COLOURS if kind == "colours" else SHAPES
    where = [i for i, w in enumerate(words) if w in pool]
    words[where[0]], words[where[1]] = words[where[1]], words[where[0]]
    return " ".join(words)


def one_object_negatives(text: str) -> list[str]:
    """A one-object caption's three hard negatives: its size flipped, the next colour, the next shape (skipping
    held-out objects, so that no one-object negative names one; swapping a two-object caption's words can)."""
    _, size, colour, shape = text.split()
    c, s = COLOURS.index(colour), SHAPES.index(shape)
    other_colour = next(k for k in range(1, 4) if not is_held_out((c + k) % 4, s))
    other_shape = next(k for k in range(1, 3) if not is_held_out(c, (s + k) % 3))
    return [
        f"a {SIZES[1 - SIZES.index(size)]} {colour} {shape}",
        f"a {size} {COLOURS[(c + other_colour) % 4]} {shape}",
        f"a {size} {colour} {SHAPES[(s + other_shape) % 3]}",
    ]


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE loss: cross-entropy over each row (image -> its caption among the texts) and each
    column (text -> its image), averaged. logits (b, b' >= b): the first b texts are the images' own captions,
    any further ones are extra negatives that only the image -> text direction sees. (A caption repeated in a
    batch gives identical columns: such rows can at best split their probability, so the loss's floor rises by
    ln 2 for them, but nothing is pushed the wrong way.)"""
    b = logits.shape[0]
    if logits.shape[1] < b:
        raise ValueError(f"logits must be (b, b' >= b), got {tuple(logits.shape)}")
    right = torch.arange(b, device=logits.device)
    return (F.cross_entropy(logits, right) + F.cross_entropy(logits[:, :b].T, right)) / 2


@dataclass(frozen=True, kw_only=True)
class CLIPTraining(Optimisation):
    steps: int = 3500
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 100
    min_lr_ratio: float = 0.02  # cosine decay to lr / 50
    weight_decay: float = 0.1
    grad_clip: float | None = 1.0
    examples: int = 20_000
    hard_negatives: bool = False
    twin_free: bool = True  # no two captions of a batch hold the same words in another order (see train_clip)


@dataclass(frozen=True)
class CLIPRecipe:
    model: CLIPConfig = field(default_factory=CLIPConfig)
    train: CLIPTraining = field(default_factory=CLIPTraining)
    data: str = DATA_VERSION


RECIPES = {
    "plain": CLIPRecipe(),
    "hard-negatives": CLIPRecipe(train=CLIPTraining(hard_negatives=True)),
}


def negative_tokens(captions: list[str]) -> torch.Tensor:
    """(n, 3, t): each caption's three hard negatives, one per swap (`one_object_negatives` for one object)."""
    wrong = [one_object_negatives(c) if len(c.split()) == 4 else [hard_negative(c, k) for k in SWAPS] for c in captions]
    return encode([w for ws in wrong for w in ws]).view(len(captions), 3, -1)


def bag_of_words(caption: str) -> str:
    """What a bag-of-words reader sees: the caption's words sorted, a relation and its opposite counted as one."""
    return " ".join(sorted({"right": "left", "below": "above"}.get(w, w) for w in caption.split()))


def without_twins(bags: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(b,) bool: keep the first caption of each bag of words and its exact copies; drop the others (the same
    words in another order: a swapped scene, or the same scene phrased the other way round)."""
    keep = torch.ones(len(bags), dtype=torch.bool)
    first: dict[int, int] = {}
    for i, bag in enumerate(bags.tolist()):
        j = first.setdefault(bag, i)
        keep[i] = bool((tokens[i] == tokens[j]).all())
    return keep


def train_clip(model: CLIP, data: Shapes, t: CLIPTraining, *, progress: bool = False) -> dict:
    """Train on (image, caption) pairs with the symmetric loss (plus three hard negatives per image if asked),
    on batches without word-order twins if `t.twin_free`. -> {"step_loss", "scale", "kept", "seconds"}."""
    device = next(model.parameters()).device
    negatives = negative_tokens(data.captions) if t.hard_negatives else data.tokens
    index = {bag: i for i, bag in enumerate(sorted({bag_of_words(c) for c in data.captions}))}
    bags = torch.tensor([index[bag_of_words(c)] for c in data.captions])
    batches = TensorBatches(data.images, data.tokens, negatives, bags, batch_size=t.batch, seed=t.seed, drop_last=True)
    scales, kept = [], []

    def loss(m: CLIP, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        images, tokens, wrong, bag = batch
        if t.twin_free:
            keep = without_twins(bag.cpu(), tokens.cpu()).to(tokens.device)
            images, tokens, wrong = images[keep], tokens[keep], wrong[keep]
        kept.append(len(tokens))
        texts = torch.cat([tokens, wrong.flatten(0, 1)]) if t.hard_negatives else tokens
        scales.append(m.scale().item())
        return contrastive_loss(m(images, texts))

    with seeded(t.seed):
        history = optimise(model, batches, loss, t, device=device, progress=progress, desc="CLIP")
    return {"step_loss": history.step_loss, "scale": scales, "kept": kept, "seconds": history.seconds}


SHIPPED_KINDS = ("hard-negatives",)  # lesson 13's decoder was trained on its embeddings: the repository ships both


def clip_key(kind: str) -> dict:
    """The cache key of a kind of CLIP: its recipe, and for a shipped kind the shipped release, so that a model an
    earlier version of the course trained into a learner's cache is not taken for the shipped one."""
    return {**asdict(RECIPES[kind]), **({"release": 1} if kind in SHIPPED_KINDS else {})}


def pretrained_clip(
    kind: str = "plain",
    *,
    device: torch.device | str = "cpu",
    progress: bool = False,
    use_shipped: bool = True,
    retrain: bool = False,
) -> tuple[CLIP, dict]:
    """The lesson's CLIP ("plain" or "hard-negatives"): from the cache, else (hard negatives, if `use_shipped`)
    the checkpoint the repository ships, else trained now (plain CLIP in about 2 minutes on 2 cores; hard
    negatives take longer). `retrain=True` always trains."""
    if kind not in RECIPES:
        raise ValueError(f"kind must be one of {sorted(RECIPES)}, got {kind!r}")
    recipe = RECIPES[kind]

    def build() -> CLIP:
        with seeded(recipe.train.seed):
            return CLIP(recipe.model)

    def fit(model: CLIP) -> dict:
        return train_clip(model, make_shapes(recipe.train.examples, "train"), recipe.train, progress=progress)

    shipped = SHIPPED if use_shipped and kind in SHIPPED_KINDS else None
    return pretrained(
        f"shapes-clip-{kind}", build, fit, clip_key(kind), device=device, retrain=retrain, shipped=shipped
    )


# --- measuring ---------------------------------------------------------------------------------------------


@torch.no_grad()
def embed_texts(model: CLIP, captions: list[str], batch: int = 1024) -> torch.Tensor:
    device = next(model.parameters()).device
    tokens = encode(captions)
    return torch.cat([model.encode_text(chunk.to(device)).cpu() for chunk in tokens.split(batch)])


@torch.no_grad()
def embed_images(model: CLIP, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(chunk.to(device)).cpu() for chunk in images.split(batch)])


def describes(captions: list[str], scenes: torch.Tensor) -> torch.Tensor:
    """(len(captions), len(scenes)) bool: caption i names exactly the attributes of scene j."""
    named = torch.stack([scene_of(c) for c in captions])
    return (named[:, None] == scenes[None]).all(-1)


def binding_accuracy(model: CLIP, data: Shapes, kind: str) -> float:
    """Share of two-object images whose similarity to their caption beats the same caption with `kind` swapped,
    a tie counting half (50% is chance, and what a bag of words gets: it scores both captions alike)."""
    pairs = [i for i, c in enumerate(data.captions) if len(c.split()) > 4]
    if not pairs:
        raise ValueError("the binding test needs two-object scenes")
    images = embed_images(model, data.images[pairs])
    true = embed_texts(model, [data.captions[i] for i in pairs])
    swapped = embed_texts(model, [hard_negative(data.captions[i], kind) for i in pairs])
    right, wrong = (images * true).sum(-1), (images * swapped).sum(-1)
    return ((right > wrong).float() + 0.5 * (right == wrong).float()).mean().item()


def object_prompts() -> tuple[list[str], list[tuple[int, int]]]:
    """For zero-shot classification of one-object images: the 12 (colour, shape) classes and, per class, one
    prompt per size ("a small red circle", "a large red circle")."""
    classes = [(c, s) for c in range(len(COLOURS)) for s in range(len(SHAPES))]
    prompts = [f"a {size} {COLOURS[c]} {SHAPES[s]}" for c, s in classes for size in SIZES]
    return prompts, classes


def zero_shot_logits(images: torch.Tensor, prompts: torch.Tensor, per_class: int, scale: float = 1.0) -> torch.Tensor:
    """images (n, e) and prompts (classes * per_class, e), all unit length, a class's prompts adjacent ->
    (n, classes): scale * cosine to each class's mean prompt embedding, renormalised (prompt ensembling)."""
    if len(prompts) % per_class:
        raise ValueError(f"{len(prompts)} prompts do not split into groups of {per_class}")
    classes = F.normalize(prompts.view(-1, per_class, prompts.shape[-1]).mean(1), dim=-1)
    return scale * images @ classes.T


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """similarity (queries, candidates), relevant (queries, candidates) bool -> the share of queries with at
    least one relevant candidate among their k most similar."""
    if similarity.shape != relevant.shape:
        raise ValueError(f"shapes differ: {tuple(similarity.shape)} vs {tuple(relevant.shape)}")
    top = similarity.topk(k, dim=1).indices
    return relevant.gather(1, top).any(1).float().mean().item()
