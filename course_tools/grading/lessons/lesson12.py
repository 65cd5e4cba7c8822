"""Lesson 12 exercises: CLIP's symmetric contrastive loss when a scene is described twice in a batch,
zero-shot logits from prompt embeddings, recall@k, a hard-negative caption, and one training step with hard
negatives, checked on small CLIPs and, in the solutions notebook, on the lesson's trained one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.data.shapes import caption, decode, make_shapes
from course_lib.models.clip import CLIP, CLIPConfig
from course_lib.multimodal import clip_training
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "12_clip"
SETUP = """\
import math
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def multi_positive_clip_loss(
    images: torch.Tensor, texts: torch.Tensor, matches: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    """Unit embeddings (b, e), (b, e), matches (b, b) bool (caption j describes image i; the diagonal is True)
    and s -> the symmetric cross-entropy of exp(s) * images @ texts^T against targets spread evenly over each
    image's matching captions (rows) and each caption's matching images (columns)."""
    logits = log_scale.exp() * images @ texts.T
    weights = matches.float()
    rows = F.cross_entropy(logits, weights / weights.sum(1, keepdim=True))
    columns = F.cross_entropy(logits.T, (weights / weights.sum(0, keepdim=True)).T)
    return (rows + columns) / 2


def zero_shot_logits(images, prompts, per_class, scale):
    return clip_training.zero_shot_logits(images, prompts, per_class, scale)


def recall_at_k(similarity, relevant, k):
    return clip_training.recall_at_k(similarity, relevant, k)


def swap_words(caption: str, kind: str) -> str:
    return clip_training.hard_negative(caption, kind)


def clip_step(model: CLIP, optimizer, images, tokens, negatives) -> float:
    """One step: logits of the images against [their captions; the hard negatives], the symmetric loss,
    backward, optimizer step; -> the loss."""
    texts = tokens if negatives is None else torch.cat([tokens, negatives.flatten(0, 1)])
    loss = clip_training.contrastive_loss(model(images, texts))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# --- cases ----------------------------------------------------------------------------------------


def _unit(g: torch.Generator, *shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def _loss_cases(g: torch.Generator) -> list[Case]:
    data = make_shapes(20, "train", seed=draw_seed(g) % 100_000)
    pairs = [i for i, c in enumerate(data.captions) if len(c.split()) >= 7][:4]  # two-object scenes
    captions = data.captions + [
        caption(data.attributes[i], b_first=data.captions[i] == caption(data.attributes[i])) for i in pairs
    ]
    scenes = torch.cat([data.attributes, data.attributes[pairs]])
    matches = clip_training.describes(captions, scenes).T  # (image, caption): caption j describes image i
    extra = (torch.rand(5, 5, generator=g) < 0.3) | torch.eye(5, dtype=torch.bool)
    return [
        Case(
            "b 6, no repeated caption: CLIP's loss (catches one direction only)",
            (_unit(g, 6, 8), _unit(g, 6, 8), torch.eye(6, dtype=torch.bool), torch.tensor(2.66)),
        ),
        Case(
            "generated captions, some scenes also phrased the other way round (catches paraphrases as negatives)",
            (_unit(g, len(captions), 8), _unit(g, len(captions), 8), matches, torch.tensor(2.0)),
        ),
        Case(
            "matches not symmetric (catches rows and columns normalised alike)",
            (_unit(g, 5, 6), _unit(g, 5, 6), extra, torch.tensor(1.5)),
        ),
        Case(
            "b 4, s = 0.5 (catches the temperature applied inverted)",
            (
                _unit(g, 4, 5),
                _unit(g, 4, 5),
                (torch.rand(4, 4, generator=g) < 0.4) | torch.eye(4, dtype=torch.bool),
                torch.tensor(0.5),
            ),
        ),
    ]


def _zero_shot_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("5 images, 3 classes x 2 prompts (catches no renormalisation)", (_unit(g, 5, 8), _unit(g, 6, 8), 2, 10.0)),
        Case("one prompt per class is plain cosine similarity", (_unit(g, 3, 4), _unit(g, 4, 4), 1, 1.0)),
        Case("4 prompts per class, scale 100", (_unit(g, 2, 6), _unit(g, 8, 6), 4, 100.0)),
    ]


def _recall_cases(g: torch.Generator) -> list[Case]:
    def case(q: int, c: int, k: int, name: str) -> Case:
        return Case(name, (torch.randn(q, c, generator=g), torch.rand(q, c, generator=g) < 0.15, k))

    return [
        case(20, 30, 1, "recall@1, 20 queries, 30 candidates"),
        case(20, 30, 5, "recall@5 (catches the k least similar)"),
        Case(
            "a query with no relevant candidate counts as a miss",
            (torch.eye(3), torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1]]).bool(), 2),
        ),
    ]


def _swap_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("colours", ("a red circle left of a blue square", "colours")),
        Case("shapes", ("a yellow triangle above a green circle", "shapes")),
        Case("relation, left of -> right of", ("a blue circle left of a red triangle", "relation")),
        Case("relation, below -> above", ("a green square below a yellow circle", "relation")),
        Case("shapes, the second object named first", ("a red square right of a yellow triangle", "shapes")),
        *[
            Case(f"{kind}, a generated {split} caption", (_two_object_caption(g, split), kind))
            for kind, split in (("colours", "unseen"), ("shapes", "test"), ("relation", "unseen"))
        ],
    ]


def _two_object_caption(g: torch.Generator, split: str) -> str:
    """A two-object caption as the data generator writes them (seeded by the cases' generator)."""
    while True:
        captions = [c for c in make_shapes(8, split, seed=draw_seed(g) % 100_000).captions if len(c.split()) >= 7]
        if captions:
            return captions[0]


def _step_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("with 3 hard negatives per image, batch 6", (), {"seed": draw_seed(g), "hard": True}),
        Case("without hard negatives (negatives None), batch 6", (), {"seed": draw_seed(g), "hard": False}),
    ]


def _run_step(fn, case: Case):
    """A small CLIP from the case's seed, two steps of `fn` with SGD on six real captions (the second step
    catches gradients left over from the first)."""
    torch.manual_seed(case.kwargs["seed"])
    model = CLIP(CLIPConfig(d_model=16, heads=2, layers=1, d_ff=32, embed=8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    data = make_shapes(6, "train", seed=case.kwargs["seed"] % 1000 + 100)
    tokens = data.tokens
    negatives = clip_training.negative_tokens(decode(tokens)) if case.kwargs["hard"] else None
    losses = [fn(model, optimizer, data.images, tokens, negatives) for _ in range(2)]
    if not all(type(loss) is float for loss in losses):
        raise TypeError(f"clip_step must return the loss as a Python float; got {losses!r:.80}")
    return (
        torch.tensor(losses),
        model.logit_scale.detach().clone(),
        model.text_projection.weight.detach().clone(),
        model.image_tower.head.weight.detach().clone(),
    )


EXERCISES = [
    Exercise(multi_positive_clip_loss, NOTEBOOK, 2.0, _loss_cases, setup=SETUP),
    Exercise(zero_shot_logits, NOTEBOOK, 1.0, _zero_shot_cases, setup=SETUP, atol=1e-4),
    Exercise(recall_at_k, NOTEBOOK, 1.0, _recall_cases, setup=SETUP),
    Exercise(swap_words, NOTEBOOK, 1.0, _swap_cases, setup=SETUP),
    Exercise(clip_step, NOTEBOOK, 3.0, _step_cases, call=_run_step, setup=SETUP, atol=1e-4),
]
