"""Lesson 11 exercises: learned position embeddings resized to a new grid (how a ViT is fine-tuned at a higher
resolution), the deletion test of a saliency ranking (the k top-ranked patches blanked), and the whole ViT forward
pass from its state dict, checked on small ViTs and, in the solutions notebook, on the lesson's trained one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.vit import ViT, ViTConfig
from course_tools.grading.spec import Case, Exercise, draw_seed

NOTEBOOK = "11_vit"
SETUP = """\
import math
import torch
import torch.nn.functional as F
from einops import rearrange, einsum
"""


# --- references ---------------------------------------------------------------------------------


def resize_positions(positions: torch.Tensor, side: int) -> torch.Tensor:
    """(1, 1 + g*g, d) learned positions of a g x g grid (reading order, class token first) -> (1, 1 + side*side, d):
    the class token's kept, the grid's resized bilinearly as a d-channel image (align_corners=False, as timm, which
    is bicubic; Dosovitskiy et al.'s code aligns the corners), to fine-tune at a higher resolution (their 3.2)."""
    grid = positions[:, 1:]
    g = round(grid.shape[1] ** 0.5)
    image = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, d, g, g)
    resized = F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False)
    return torch.cat([positions[:, :1], resized.permute(0, 2, 3, 1).reshape(1, side * side, -1)], dim=1)


def occlude_top_patches(images: torch.Tensor, scores: torch.Tensor, k: int, patch: int) -> torch.Tensor:
    """images (b, c, H, W), scores (b, (H / patch) * (W / patch)) one per patch in reading order -> a copy of the
    images with each image's k highest-scoring patches set to 0: the deletion test of a saliency ranking
    (Samek et al. 2017's region perturbation, most relevant first, with zeros for noise)."""
    b, c, height, width = images.shape
    rows, cols = height // patch, width // patch
    blank = torch.zeros(b, rows * cols, dtype=torch.bool)
    if k > 0:
        blank.scatter_(1, scores.topk(k, dim=1).indices, True)
    mask = blank.reshape(b, 1, rows, 1, cols, 1).expand(b, c, rows, patch, cols, patch).reshape(b, c, height, width)
    return images.masked_fill(mask, 0.0)


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


def _resize_cases(g: torch.Generator) -> list[Case]:
    def positions(grid: int, d: int) -> torch.Tensor:
        return torch.randn(1, 1 + grid * grid, d, generator=g)

    return [
        Case("4x4 -> 8x8, d 6 (catches the class token resized with the grid)", (positions(4, 6), 8)),
        Case("3x3 -> 5x5 (catches rows and columns exchanged)", (positions(3, 4), 5)),
        Case("4x4 -> 2x2, smaller", (positions(4, 3), 2)),
        Case("the same grid: nothing changes", (positions(4, 5), 4)),
    ]


def _occlusion_cases(g: torch.Generator) -> list[Case]:
    def images(b: int, c: int, height: int, width: int) -> torch.Tensor:
        return torch.rand(b, c, height, width, generator=g) + 0.5  # no pixel is 0 already

    def scores(b: int, n: int) -> torch.Tensor:
        return torch.randn(b, n, generator=g)

    return [
        Case(
            "8x8, 2x2 patches, k 3 (catches the lowest scores, patches in column order)",
            (images(3, 1, 8, 8), scores(3, 16), 3, 2),
        ),
        Case(
            "4x8 images: 2 rows of 4 patches (catches rows and columns exchanged)",
            (images(2, 1, 4, 8), scores(2, 8), 2, 2),
        ),
        Case(
            "2 channels, 4x4 patches, k 1 (every channel of the patch blanked)",
            (images(2, 2, 8, 8), scores(2, 4), 1, 4),
        ),
        Case("k 0: the images unchanged", (images(2, 1, 8, 8), scores(2, 16), 0, 2)),
    ]


def _run_occlusion(fn, case: Case):
    """The answer, then the inputs as the call left them: blanking `images` or marking `scores` in place spoils the
    caller's copies (the solutions notebook ranks the same tensors for k = 0 to 4)."""
    images, scores, k, patch = case.args
    out = fn(images, scores, k, patch)
    if out is images:
        raise ValueError("occlude_top_patches returned its input: return a copy (new tensor), even for k = 0")
    return out, images, scores


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
    Exercise(resize_positions, NOTEBOOK, 2.0, _resize_cases, setup=SETUP, atol=1e-5),
    Exercise(occlude_top_patches, NOTEBOOK, 1.0, _occlusion_cases, call=_run_occlusion, setup=SETUP),
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
