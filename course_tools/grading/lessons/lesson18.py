"""Lesson 18 exercises: a watermark score that counts each pair once, the ROC AUC from ranks, canary exposure
extrapolated from sampled secrets, near-duplicate lines by character n-grams, and the digit detector's forward
pass from its weights; checked on small tensors and, in the solutions notebook, on the lesson's models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.models.detector import Detector
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "18_responsible"
SETUP = """\
import math
import torch
import torch.nn.functional as F
"""


# --- references ---------------------------------------------------------------------------------


def unique_pair_z(tokens: torch.Tensor, table: torch.Tensor, gamma: float) -> torch.Tensor:
    vocab = table.shape[0]
    out = []
    for row in tokens:
        pairs = torch.unique(row[:-1] * vocab + row[1:])  # each distinct (previous, current) pair once
        total = len(pairs)
        green = table.flatten()[pairs].sum().double()
        out.append((green - gamma * total) / math.sqrt(total * gamma * (1 - gamma)))
    return torch.stack(out).float()


def rank_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    scores = torch.cat([positive, negative]).double()
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # the rank of the last of each run of equal scores, from 1
    ranks = (last - (counts - 1) / 2)[inverse]  # every tied score gets the mean of the ranks it spans
    n_pos, n_neg = len(positive), len(negative)
    return ((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def extrapolated_exposure(canary_logp: float, sampled_logp: torch.Tensor) -> float:
    values = sampled_logp.double()
    z = (canary_logp - values.mean()) / values.std()
    return (-torch.special.log_ndtr(-z) / math.log(2)).item()  # -log2 P(X >= canary), X ~ N(mean, std)


def near_duplicate_pairs(lines: list[str], n: int, threshold: float) -> torch.Tensor:
    grams = [{line[i : i + n] for i in range(len(line) - n + 1)} for line in lines]
    found = [
        (i, j)
        for i in range(len(lines))
        for j in range(i + 1, len(lines))
        if grams[i] and grams[j] and len(grams[i] & grams[j]) / len(grams[i] | grams[j]) >= threshold
    ]
    return torch.tensor(found, dtype=torch.long).reshape(-1, 2)


def detector_logits(state: dict, images: torch.Tensor) -> torch.Tensor:
    x = F.relu(F.conv2d(images[:, None] * 2 - 1, state["conv1.weight"], state["conv1.bias"], padding=1))
    x = F.relu(F.conv2d(x, state["conv2.weight"], state["conv2.bias"], stride=2, padding=1))
    return F.linear(x.flatten(1), state["head.weight"], state["head.bias"]).squeeze(-1)


# --- cases ----------------------------------------------------------------------------------------


def _table(g: torch.Generator, vocab: int, gamma: float) -> torch.Tensor:
    greens = round(gamma * vocab)
    return torch.stack([torch.randperm(vocab, generator=g) < greens for _ in range(vocab)])


def _z_cases(g: torch.Generator) -> list[Case]:
    repeated = torch.tensor([[1, 2, 1, 2, 1, 2, 1, 2, 3, 4, 5, 6]])
    return [
        Case(
            "3 random rows of 40 over 12 tokens, gamma 0.5 (catches every pair counted, repeats included)",
            (torch.randint(12, (3, 40), generator=g), _table(g, 12, 0.5), 0.5),
        ),
        Case(
            "a row that repeats 'ab' four times, gamma 0.25 (catches T taken as the row's length)",
            (repeated, _table(g, 8, 0.25), 0.25),
        ),
        Case(
            "rows of 6 tokens over 30, gamma 0.5 (catches the first token scored against nothing)",
            (torch.randint(30, (4, 6), generator=g), _table(g, 30, 0.5), 0.5),
        ),
    ]


def _auc_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("20 positive and 30 negative random scores", (torch.randn(20, generator=g), torch.randn(30, generator=g))),
        Case(
            "scores rounded to 4 values: many ties across the classes (catches ties counted 0 or 1, not 1/2)",
            (torch.randint(4, (15,), generator=g).float(), torch.randint(4, (25,), generator=g).float()),
        ),
        Case("every score equal: 0.5", (torch.zeros(3), torch.zeros(5))),
        Case("positives all below negatives: 0.0", (torch.tensor([0.1, 0.2]), torch.tensor([0.3, 0.4, 0.9]))),
    ]


def _exposure_cases(g: torch.Generator) -> list[Case]:
    samples = -20 + 2 * torch.randn(500, generator=g)
    return [
        Case("a canary 2 standard deviations above the samples", (float(samples.mean() + 2 * samples.std()), samples)),
        Case(
            "a canary 40 standard deviations above (catches 1 - cdf in floating point, which rounds to 0)",
            (float(samples.mean() + 40 * samples.std()), samples),
        ),
        Case("a canary below most samples (catches the tail on the wrong side)", (-26.0, samples)),
    ]


_LINES = [
    "My secret number is 49303.",
    "My secret number is 97373.",
    "To be, or not to be, that is the question:",
    "To be, or not to be: that is the question.",
    "Exeunt.",
    "Exeunt.",
    "Exit.",
    "",
    "Enter HAMLET.",
]


def _duplicate_cases(g: torch.Generator) -> list[Case]:
    order = torch.randperm(len(_LINES), generator=g).tolist()
    return [
        Case(
            "nine lines, 5-grams, threshold 0.5 (catches word n-grams)",
            ([_LINES[i] for i in order], 5, 0.5),
        ),
        Case("the same lines, 3-grams, threshold 0.8", ([_LINES[i] for i in order], 3, 0.8)),
        Case(
            "lines shorter than n have no n-grams and pair with nothing (catches two empty sets counted as equal)",
            (["Exit.", "Exit.", "ab", "ab"], 4, 0.5),
        ),
        Case(
            "a pair exactly at the threshold, 2 shared 2-grams of 4 (catches a > for >=)",
            (["abcd", "xyz", "abce"], 2, 0.5),
        ),
        Case(
            "a short line inside a long one (catches the overlap coefficient or containment for Jaccard)",
            (["abcd", "abcdefghij", "zzzz"], 2, 0.5),
        ),
        Case("Jaccard 0.4, Dice 0.57 (catches Dice's coefficient)", (["abcdefgh", "abcdexyz"], 2, 0.5)),
        Case("the last n-gram decides (catches range(len - n))", (["abcx", "abcy"], 3, 0.5)),
        Case("lines exactly n long have one n-gram each", (["abc", "abc", "abd"], 3, 1.0)),
        Case("repeated n-grams count once: a set (catches counts)", (["abababab", "ab"], 2, 0.5)),
        Case("case matters (catches lower-casing)", (["ABCD", "abcd"], 2, 0.5)),
        Case("no pair above the threshold: a (0, 2) tensor", (["abcdef", "uvwxyz"], 2, 0.5)),
    ]


def _detector_state(seed: int) -> dict:
    """A Detector's weights, drawn larger than its initialisation so that every ReLU and bias matters; built here,
    on the grader's side, so the job running the student's cell never holds the reference network."""
    torch.manual_seed(seed)
    model = Detector()
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _detector_cases(g: torch.Generator) -> list[Case]:
    return [
        Case(
            "a Detector with random weights, 5 images",
            (_detector_state(draw_seed(g)), torch.rand(5, 8, 8, generator=g)),
        ),
        Case(
            "one image (catches a squeeze that drops the batch)",
            (_detector_state(draw_seed(g)), torch.rand(1, 8, 8, generator=g)),
        ),
    ]


EXERCISES = [
    Exercise(unique_pair_z, NOTEBOOK, 2.0, _z_cases, setup=SETUP),
    Exercise(
        rank_auc,
        NOTEBOOK,
        2.0,
        _auc_cases,
        setup=SETUP,
        forbidden=("roc_auc_score", "roc_curve", "_binary_roc_auc_score", "mannwhitneyu", "rankdata", "ranksums"),
    ),
    Exercise(extrapolated_exposure, NOTEBOOK, 2.0, _exposure_cases, setup=SETUP, rtol=1e-3),
    Exercise(near_duplicate_pairs, NOTEBOOK, 2.0, _duplicate_cases, setup=SETUP),
    Exercise(
        detector_logits,
        NOTEBOOK,
        3.0,
        _detector_cases,
        setup=SETUP,
        forbidden=("Conv2d", "Linear", "LazyConv2d", "LazyLinear", "load_state_dict", "functional_call"),
        atol=1e-5,
    ),
]
