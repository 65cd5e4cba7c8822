"""Lesson 11's Vision Transformer: patches in reading order, attention rollout and attention distance on maps
worked out by hand, and a tiny ViT that overfits a batch (course_lib.models.vit, course_lib.vision.vit_training)."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.models.vit import ViT, ViTConfig, patchify
from course_lib.train import adamw
from course_lib.vision import vit_training


def test_patchify_reads_patches_row_by_row():
    images = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    tokens = patchify(images, 2)  # (2, 2 rows x 3 columns of patches, 2 * 2 * 3)
    assert tokens.shape == (2, 6, 12)
    row, col = 1, 2  # patch 5 in reading order
    expected = images[1, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2].permute(1, 2, 0).flatten()
    assert torch.equal(tokens[1, 5], expected)
    with pytest.raises(ValueError, match="multiples of the patch size"):
        patchify(torch.zeros(1, 1, 5, 5), 2)


def test_attention_rollout_on_known_maps():
    t = 5
    identity = [torch.eye(t).expand(2, 3, t, t)] * 3
    torch.testing.assert_close(vit_training.attention_rollout(identity), torch.eye(t).expand(2, t, t))
    # two tokens; layer 1's heads average to [[1, 0], [.5, .5]], layer 2 reads token 1 only. With the residual
    # path (0.5 A + 0.5 I): L1 = [[1, 0], [.25, .75]], L2 = [[.5, .5], [0, 1]], and L2 @ L1 by hand:
    layer1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])[None]  # (1, 2 heads, 2, 2)
    layer2 = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).expand(1, 2, 2, 2)
    expected = torch.tensor([[[0.625, 0.375], [0.25, 0.75]]])  # the other order would give [[.5, .5], [.125, .875]]
    torch.testing.assert_close(vit_training.attention_rollout([layer1, layer2]), expected)


def test_attention_distance_on_known_maps():
    # a 2x2 grid of 2-pixel patches, centres (0, 0), (0, 2), (2, 0), (2, 2); token 0 is the class token
    reads_patch_0 = torch.zeros(5, 5)
    reads_patch_0[:, 0] = reads_patch_0[:, 1] = 0.5  # half on the class token, left out and renormalised away
    maps = [torch.stack([reads_patch_0, torch.eye(5)])[None]]  # (1, 2 heads, 5, 5)
    expected = torch.tensor([[(0 + 2 + 2 + 2 * math.sqrt(2)) / 4, 0.0]])  # head 2: every patch reads itself
    torch.testing.assert_close(vit_training.attention_distance(maps, grid=2, patch=2), expected)


def test_a_tiny_vit_overfits_a_batch():
    torch.manual_seed(0)
    images, labels = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    model = ViT(ViTConfig(d_model=32, layers=1, d_ff=64))
    optimizer = adamw(model, lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model(images).argmax(-1) == labels).all()
