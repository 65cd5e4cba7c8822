"""Lesson 07 exercises: BERT's masking recipe, the masked-LM loss, a pooled classification head, cosine search, and
the whole encoder written from a pretrained state dict."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models import bert
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "07_bert"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def mask_tokens(
    ids: torch.Tensor, mask_id: int, vocab_size: int, generator: torch.Generator, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw, in this order and each of ids' shape: chosen = rand < p; action = rand; random = randint(vocab_size).
    Chosen positions with action < 0.8 become mask_id, with 0.8 <= action < 0.9 the random token, else stay.
    -> (inputs, labels): labels hold the original id where chosen and -100 elsewhere."""
    return bert.mask_tokens(ids, mask_id=mask_id, vocab_size=vocab_size, generator=generator, p=p)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100: logits (b, t, V), labels (b, t) -> scalar."""
    chosen = labels != bert.IGNORE
    return F.cross_entropy(logits[chosen], labels[chosen])


def pooled_logits(
    hidden: torch.Tensor, pad_mask: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Mean of hidden (b, t, d) over the positions where pad_mask (b, t) is True, then @ weight (d, c) + bias (c,)."""
    return bert.mean_pool(hidden, pad_mask) @ weight + bias


def nearest(queries: torch.Tensor, keys: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of each query (q, d) with each key (n, d); the k most similar keys per query, best first:
    -> (similarities (q, k), key indices (q, k))."""
    sims = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T
    values, indices = sims.topk(k, dim=-1)
    return values, indices


def bert_encoder(
    params: dict[str, torch.Tensor], heads: int, ids: torch.Tensor, pad_mask: torch.Tensor
) -> torch.Tensor:
    """The course's BertEncoder forward from its state dict: ids (b, t), pad_mask (b, t) True at real tokens ->
    hidden states (b, t, d). The reference loads the dict into the library's encoder (dropout off) and runs it."""
    layers = len({name.split(".")[1] for name in params if name.startswith("layers.")})
    vocab, d_model = params["tok_emb.weight"].shape
    config = bert.BertConfig(
        vocab, max_len=params["pos_emb.weight"].shape[0], layers=layers, heads=heads, d_model=d_model, dropout=0.0
    )
    encoder = bert.BertEncoder(config)
    encoder.load_state_dict(params)
    return encoder.eval()(ids, pad_mask)


# --- cases ----------------------------------------------------------------------------------------


def _mask_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "batch 4 of 32 tokens, p 0.15",
            (torch.randint(0, 50, (4, 32), generator=g),),
            {"mask_id": 50, "vocab_size": 50, "p": 0.15, "mask_seed": draw_seed(g)},
        ),
        Case(
            "p 0.5 (every kind of replacement shows)",
            (torch.randint(0, 20, (8, 16), generator=g),),
            {"mask_id": 21, "vocab_size": 20, "p": 0.5, "mask_seed": draw_seed(g)},
        ),
        Case(
            "p 1: every position chosen",
            (torch.randint(0, 9, (2, 10), generator=g),),
            {"mask_id": 9, "vocab_size": 9, "p": 1.0, "mask_seed": draw_seed(g)},
        ),
    ]


def _run_mask(fn, case: Case):
    (ids,) = case.args
    kw = case.kwargs
    return fn(ids, kw["mask_id"], kw["vocab_size"], torch.Generator().manual_seed(kw["mask_seed"]), kw["p"])


def _loss_cases(g: torch.Generator) -> list[Case]:
    labels = torch.randint(0, 12, (3, 9), generator=g)
    labels[torch.rand(3, 9, generator=g) < 0.7] = -100
    labels[0, 0] = 5
    one = torch.full((2, 4), -100)
    one[1, 2] = 3
    return [
        Case("about 30% of positions labelled", (torch.randn(3, 9, 12, generator=g) * 2, labels)),
        Case(
            "a single labelled position (catches averaging over all positions)",
            (torch.randn(2, 4, 6, generator=g), one),
        ),
    ]


def _pool_cases(g: torch.Generator) -> list[Case]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    lengths = torch.tensor([5, 2, 1])
    mask = torch.arange(5)[None] < lengths[:, None]
    hidden = randn(3, 5, 8)
    hidden[~mask] = 100.0  # padding that must not leak into the mean
    return [
        Case("padded batch (catches padding in the mean)", (hidden, mask, randn(8, 4), randn(4))),
        Case("no padding", (randn(2, 3, 6), torch.ones(2, 3, dtype=torch.bool), randn(6, 2), randn(2))),
    ]


def _nearest_cases(g: torch.Generator) -> list[Case]:
    keys = torch.randn(30, 16, generator=g)
    keys[3] *= 50  # a long key that wins a dot product but not a cosine
    return [
        Case(
            "5 queries, 30 keys, k 3 (catches a dot product without normalising)",
            (torch.randn(5, 16, generator=g), keys, 3),
        ),
        Case("k 1", (torch.randn(2, 4, generator=g), torch.randn(7, 4, generator=g), 1)),
    ]


def _run_nearest(fn, case: Case):
    similarities, indices = fn(*case.args)  # a (values, indices) pair, e.g. what topk returns
    return similarities, indices


def _encoder_cases(g: torch.Generator) -> list[Case]:
    def batch(b: int, t: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randint(0, 12, (b, t), generator=g), torch.arange(t)[None] < torch.tensor(lengths)[:, None]

    return [
        Case("1 layer, 2 heads, no padding", (2, *batch(2, 5, [5, 5])), {"init_seed": draw_seed(g), "layers": 1}),
        Case(
            "2 layers, 4 heads, padded rows (catches padding read as keys, or a causal mask)",
            (4, *batch(3, 7, [7, 4, 2])),
            {"init_seed": draw_seed(g), "layers": 2},
        ),
    ]


@torch.no_grad()
def _run_encoder(fn, case: Case):
    """A seeded small encoder with random LayerNorms and larger weights than BERT's init, so every mistake shows."""
    heads, ids, pad_mask = case.args
    torch.manual_seed(case.kwargs["init_seed"])
    config = bert.BertConfig(12, max_len=8, layers=case.kwargs["layers"], heads=heads, d_model=16, dropout=0.0)
    encoder = bert.BertEncoder(config)
    for name, p in encoder.named_parameters():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "ln_f.weight":
            p.uniform_(0.5, 1.5)
        elif p.dim() == 1:
            p.normal_(0.0, 0.1)
        else:
            p.normal_(0.0, 0.3)
    params = {name: tensor.clone() for name, tensor in encoder.state_dict().items()}
    hidden = fn(params, heads, ids, pad_mask)
    return hidden.masked_fill(~pad_mask[..., None], 0.0)  # what padded positions hold does not matter


EXERCISES = [
    Exercise(mask_tokens, NOTEBOOK, 2.0, _mask_cases, call=_run_mask, setup=SETUP),
    Exercise(mlm_loss, NOTEBOOK, 1.0, _loss_cases, setup=SETUP, forbidden=("ignore_index",)),
    Exercise(pooled_logits, NOTEBOOK, 1.0, _pool_cases, setup=SETUP),
    Exercise(nearest, NOTEBOOK, 1.0, _nearest_cases, call=_run_nearest, setup=SETUP, forbidden=("cosine_similarity",)),
    Exercise(
        bert_encoder,
        NOTEBOOK,
        3.0,
        _encoder_cases,
        call=_run_encoder,
        setup=SETUP,
        forbidden=(
            "TransformerEncoderLayer",
            "TransformerEncoder",
            "MultiheadAttention",
            "scaled_dot_product_attention",
        ),
        atol=1e-4,
    ),
]
