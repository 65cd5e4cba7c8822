"""Lesson 00's check(): its references against PyTorch, and the feedback it prints for a wrong, forbidden, slow
or unwritten function (course_tools.grading.feedback on course_tools/grading/lessons/lesson00.py)."""

import pytest
import torch
import torch.nn.functional as F

from course_tools.grading.feedback import check_messages
from course_tools.grading.lessons import lesson00


def full_batch_step(model, optimizer, x, y, micro_batches):
    """accumulated_step's meaning, without accumulating: one step on the whole batch's mean loss."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def unfolded_patches(images, patch):
    """(b, c, h, w) -> (b, patches in reading order, patch * patch * c) with Tensor.unfold, not einops."""
    b, c = images.shape[:2]
    tiles = images.unfold(2, patch, patch).unfold(3, patch, patch)  # (b, c, rows, cols, patch, patch)
    return tiles.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, patch * patch * c)


INDEPENDENT = {  # each lesson 00 exercise, computed another way
    "stable_softmax": lambda x, dim=-1: torch.softmax(x, dim),
    "batched_matmul": torch.bmm,
    "image_to_patches": unfolded_patches,
    "accumulated_step": full_batch_step,
}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_references_agree_with_independent_computations(seed):
    """check() judges a learner's function by the reference's answers: here the references meet PyTorch's."""
    assert sorted(INDEPENDENT) == sorted(e.id for e in lesson00.EXERCISES)
    for exercise in lesson00.EXERCISES:
        for case in exercise.cases(seed):
            ours = exercise.call(exercise.reference, case.fresh())
            theirs = exercise.call(INDEPENDENT[exercise.id], case)
            where = f"{exercise.id}, {case.name}"
            if exercise.id == "accumulated_step":  # same losses and weights; only the reference accumulates
                assert ours[2].endswith(": 0"), where
                assert theirs[2].endswith(": 0") == (case.args[2] == 1), where
                ours, theirs = ours[:2], theirs[:2]
            torch.testing.assert_close(ours, theirs, rtol=exercise.rtol, atol=exercise.atol, msg=f"{where}: differs")


def test_check_passes_the_references_without_flagging_their_source():
    """The screens read each reference's own source (`def stable_softmax` names the forbidden softmax) and let it
    through; the answers it is compared with are its own, so this checks the screens and harnesses, not the maths."""
    for exercise in lesson00.EXERCISES:
        assert check_messages(exercise.id, exercise.reference) == [
            f"✓ {exercise.id}: all {len(exercise.cases(0))} cases pass"
        ]


def test_naive_softmax_names_the_cases_and_the_nan():
    naive = lambda x, dim=-1: x.exp() / x.exp().sum(dim, keepdim=True)
    lines = check_messages("stable_softmax", naive)
    assert len(lines) == 2
    assert "[large logits" in lines[0] and "inputs (3, 8)" in lines[0] and "NaN" in lines[0]
    assert "[very negative logits" in lines[1]


def test_wrong_shape_dtype_and_not_implemented_are_reported():
    lines = check_messages("stable_softmax", lambda x, dim=-1: x.sum(dim))
    assert all("shape" in line for line in lines) and len(lines) == 6
    lines = check_messages("batched_matmul", lambda a, b: torch.einsum("bik,bkj->bij", a, b).float())
    assert len(lines) == 1 and "dtype torch.float32, expected torch.float64" in lines[0]

    def stub(x, dim=-1):
        raise NotImplementedError

    assert check_messages("stable_softmax", stub) == [
        "… stable_softmax: not implemented yet (replace the `raise NotImplementedError` line)"
    ]


def test_infinite_loop_times_out():
    def forever(x, dim=-1):
        while True:
            pass

    lines = check_messages("stable_softmax", forever, timeout=0.5)
    assert lines == ["✗ stable_softmax: took longer than 0.5 s (an infinite loop?)"]


def test_using_the_forbidden_shortcut_is_flagged():
    lines = check_messages("stable_softmax", lambda x, dim=-1: torch.softmax(x, dim))
    assert "uses softmax" in lines[0]


def test_accumulated_step_with_a_mean_per_chunk_fails():
    def mean_per_chunk(model, optimizer, x, y, micro_batches):
        optimizer.zero_grad()
        total = 0.0
        for xc, yc in zip(x.chunk(micro_batches), y.chunk(micro_batches)):
            loss = torch.nn.functional.cross_entropy(model(xc), yc) / micro_batches
            loss.backward()
            total += loss.item()
        optimizer.step()
        return total

    lines = check_messages("accumulated_step", mean_per_chunk)
    assert len(lines) >= 1 and all("uneven" in line for line in lines), lines


def test_accumulated_step_on_the_whole_batch_at_once_fails():
    """The same update computed without accumulating: right numbers, but the model sees the whole batch."""
    lines = check_messages("accumulated_step", full_batch_step)
    assert len(lines) == 3 and all("more than" in line and "at once: 3" in line for line in lines), lines


def test_forbidden_names_are_seen_as_keywords_and_strings_too():
    from course_tools.grading.execute import forbidden_uses

    assert forbidden_uses("F.cross_entropy(logits, labels, ignore_index=-100)", ("ignore_index",)) == ["ignore_index="]
    assert forbidden_uses("getattr(torch, 'softmax')(x, -1)", ("softmax",)) == ["softmax"]
    assert forbidden_uses("x.exp() / x.exp().sum(-1, keepdim=True)", ("softmax",)) == []
    # a forbidden name imported under another name is still used
    assert forbidden_uses("from sklearn.metrics import roc_auc_score as area", ("roc_auc_score",)) == ["roc_auc_score"]
    assert forbidden_uses("from torch.nn import Conv2d as C, Linear as L", ("Conv2d", "Linear")) == ["Conv2d", "Linear"]
    assert forbidden_uses("import scipy.stats.mannwhitneyu as m", ("mannwhitneyu",)) == ["mannwhitneyu"]


def test_dynamic_access_is_seen_in_every_spelling():
    from course_tools.grading.execute import dynamic_access

    cheats = {
        "f.__globals__['g']": ".__globals__",
        "getattr(torch, 'soft' + 'max')": "getattr() with a computed name",
        "import importlib": "import importlib",
        "sys.modules['x']": ".modules",
        "sys._getframe(1).f_locals": "._getframe",
        "import gc": "import gc",
        "eval('1')": "eval",
        "vars(torch)": "vars()",
    }
    for source, what in cheats.items():
        assert what in dynamic_access(source), source
    assert dynamic_access("def f(x):\n    return getattr(x, 'shape')\n") == []
    assert dynamic_access("import sys\nsys.exit(0)\n") == []


def test_getattr_with_a_dynamic_constant_name_is_flagged():
    """getattr(sys, "modules") reached the library's whole answers under other names before it was screened."""
    from course_tools.grading.execute import dynamic_access

    assert dynamic_access("import sys\nlib = getattr(sys, 'modules')['course_lib.vision.diffusion']\n")
    assert dynamic_access("g = getattr(kl_shaped_rewards, '__globals__')\n")
    assert dynamic_access("model._forward_pre_hooks.clear()\n")
    assert dynamic_access("x = getattr(model, 'weight')\n") == []
