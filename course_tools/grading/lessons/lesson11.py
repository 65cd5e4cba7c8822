"""Lesson 11 exercises: patch tokens with the class token and positions, the attention-rollout product, and
the whole ViT forward pass from its state dict, checked on small ViTs and, in the solutions notebook, on the
lesson's trained one."""

from __future__ import annotations

import torch

from course_lib.models.vit import ViT, ViTConfig, patchify
from course_lib.vision import vit_training
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "11_vit"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def vit_embed(images: torch.Tensor, patch: int, weight: torch.Tensor, bias: torch.Tensor, class_token, positions):
    """images (b, c, H, W) -> (b, 1 + tokens, d): [class token; patches @ W^T + b] + positions."""
    tokens = patchify(images, patch) @ weight.T + bias
    return torch.cat([class_token.expand(len(images), -1, -1), tokens], dim=1) + positions


def attention_rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    return vit_training.attention_rollout(maps)


def vit_forward(params: dict[str, torch.Tensor], images: torch.Tensor, heads: int, patch: int) -> torch.Tensor:
    """The course's ViT from its state dict -> logits (b, classes)."""
    d = params["positions"].shape[-1]
    layers = len({k.split(".")[1] for k in params if k.startswith("layers.")})
    config = ViTConfig(
        image=images.shape[-1],
        patch=patch,
        channels=images.shape[1],
        d_model=d,
        heads=heads,
        layers=layers,
        d_ff=params["layers.0.ff.0.weight"].shape[0],
        classes=params["head.weight"].shape[0],
    )
    model = ViT(config)
    model.load_state_dict(params)
    return model(images)


# --- cases ----------------------------------------------------------------------------------------


def _embed_cases(g: torch.Generator) -> list[Case]:
    def args(b: int, c: int, side: int, patch: int, d: int) -> tuple:
        tokens = (side // patch) ** 2
        return (
            torch.randn(b, c, side, side, generator=g),
            patch,
            torch.randn(d, patch * patch * c, generator=g),
            torch.randn(d, generator=g),
            torch.randn(1, 1, d, generator=g),
            torch.randn(1, tokens + 1, d, generator=g),
        )

    return [
        Case("8x8 digits, 2x2 patches (catches patches in the wrong order)", args(2, 1, 8, 2, 6)),
        Case("3 channels, 4x4 patches of a 8x8 image (catches (c p1 p2) for (p1 p2 c))", args(2, 3, 8, 4, 5)),
        Case("a 6x6 image, 3x3 patches, batch 3", args(3, 1, 6, 3, 4)),
    ]


def _rollout_cases(g: torch.Generator) -> list[Case]:
    def maps(layers: int, b: int, heads: int, t: int) -> list[torch.Tensor]:
        return [torch.randn(b, heads, t, t, generator=g).softmax(-1) for _ in range(layers)]

    return [
        Case("3 layers, 2 heads, 5 tokens (catches the product in the wrong order)", (maps(3, 2, 2, 5),)),
        Case("one layer is 0.5 A + 0.5 I with the heads averaged", (maps(1, 1, 4, 3),)),
    ]


def _forward_cases(g: torch.Generator) -> list[Case]:
    return [
        Case("2 layers, 2 heads, d 16, 8x8 images, 2x2 patches", (), {"seed": draw_seed(g), "heads": 2, "patch": 2}),
        Case("1 layer, 4 heads, d 16, 4x4 patches", (), {"seed": draw_seed(g), "heads": 4, "patch": 4}),
    ]


@torch.no_grad()
def _run_forward(fn, case: Case):
    torch.manual_seed(case.kwargs["seed"])
    layers = 2 if case.kwargs["patch"] == 2 else 1
    config = ViTConfig(patch=case.kwargs["patch"], d_model=16, heads=case.kwargs["heads"], layers=layers, d_ff=32)
    model = ViT(config)
    model.class_token.normal_()  # zero at initialisation: a random one catches a missing class token
    params = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    images = torch.rand(3, 1, 8, 8)
    return fn(params, images, case.kwargs["heads"], case.kwargs["patch"])


EXERCISES = [
    Exercise(vit_embed, NOTEBOOK, 2.0, _embed_cases, setup=SETUP, atol=1e-4),
    Exercise(attention_rollout, NOTEBOOK, 1.0, _rollout_cases, setup=SETUP),
    Exercise(
        vit_forward,
        NOTEBOOK,
        4.0,
        _forward_cases,
        call=_run_forward,
        setup=SETUP,
        forbidden=("MultiheadAttention", "TransformerEncoder", "scaled_dot_product_attention"),
        atol=1e-4,
    ),
]
