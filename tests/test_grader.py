"""The CLI grader against a folder of submissions we wrote ourselves, cheats included.

Every student starts from the solutions notebook and changes one thing, so the other exercises
must keep their full marks (one failure never cascades).
"""

import copy
import json

import pytest

from course_lib.grading.grade import main
from course_lib.grading.notebook import cell_source, exercise_meta, read_notebook
from tests.conftest import ROOT

SOLUTION = read_notebook(ROOT / "solutions" / "00_foundations.ipynb")
FULL = 8.0

SOFTMAX_HEADER = "def stable_softmax(x, dim=-1):\n"
CHEATS = {
    # student: (exercise whose cell is replaced, new cell source)
    "raises": ("stable_softmax", SOFTMAX_HEADER + "    raise ValueError('boom')\n"),
    "loops_forever": ("stable_softmax", SOFTMAX_HEADER + "    while True:\n        pass\n"),
    "ignores_signals": (
        "batched_matmul",
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
    ),
    "exits_hard": ("stable_softmax", "import os\n" + SOFTMAX_HEADER + "    os._exit(0)\n"),
    "exits_politely": ("image_to_patches", "import sys\nsys.exit(0)\n"),
    "wrong_shape": ("stable_softmax", SOFTMAX_HEADER + "    return x.exp().sum(dim)\n"),
    "wrong_dtype": (
        "batched_matmul",
        "def batched_matmul(a, b):\n    return torch.einsum('bik,bkj->bij', a, b).float()\n",
    ),
    "naive_nan": ("stable_softmax", SOFTMAX_HEADER + "    return x.exp() / x.exp().sum(dim, keepdim=True)\n"),
    "eq_always_true": (
        "stable_softmax",
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        + SOFTMAX_HEADER
        + "    return Anything()\n",
    ),
    "lying_subclass": (
        "stable_softmax",
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        + SOFTMAX_HEADER
        + "    return torch.zeros_like(x).as_subclass(Liar)\n",
    ),
    "patched_allclose": (
        "stable_softmax",
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n" + SOFTMAX_HEADER + "    return torch.zeros_like(x)\n",
    ),
    "forged_result": (
        "stable_softmax",
        "import sys, json, os, pickle\n"
        "job = json.load(open(sys.argv[1]))\n"
        "class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch /tmp/pwned_by_student',))\n"
        "pickle.dump({'status': 'ran', 'cases': [Evil()]}, open(job['out'], 'wb'))\n"
        "os._exit(0)\n",
    ),
    "uses_torch_softmax": ("stable_softmax", SOFTMAX_HEADER + "    return torch.softmax(x, dim)\n"),
    "imports_reference": ("stable_softmax", "from course_lib.grading.lessons.lesson00 import stable_softmax\n"),
    "patch_order_wrong": (
        "image_to_patches",
        "def image_to_patches(images, patch):\n"
        "    return rearrange(images, 'b c (h p1) (w p2) -> b (w h) (c p1 p2)', p1=patch, p2=patch)\n",
    ),
    "no_zero_grad": (
        "train_step",
        "def train_step(model, optimizer, x, y):\n    loss = F.cross_entropy(model(x), y)\n"
        "    loss.backward()\n    optimizer.step()\n    return loss.item()\n",
    ),
    "returns_tensor_loss": (
        "train_step",
        "def train_step(model, optimizer, x, y):\n    optimizer.zero_grad()\n"
        "    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss\n",
    ),
    "floods_output": ("stable_softmax", SOFTMAX_HEADER + "    while True:\n        print('x' * 100_000)\n"),
    "syntax_error": ("stable_softmax", SOFTMAX_HEADER + "    return (x\n"),
}


def replaced(nb, exercise_id, source):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        meta = exercise_meta(cell)
        if meta and meta["id"] == exercise_id:
            cell["source"] = source
    return nb


def write(folder, name, nb):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(nb if isinstance(nb, str) else json.dumps(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    write(subs / "solution", "00_foundations.ipynb", SOLUTION)
    write(subs, "untouched_00_foundations.ipynb", read_notebook(ROOT / "exercises" / "00_foundations.ipynb"))
    write(subs, "not_json_00_foundations.ipynb", "{this is not json")  # the file name says which notebook
    for student, (exercise_id, source) in CHEATS.items():
        write(subs / student, "00_foundations.ipynb", replaced(SOLUTION, exercise_id, source))
    # an edited check cell (claims success) with a wrong answer; a deleted check cell with a right one
    edited = replaced(SOLUTION, "stable_softmax", SOFTMAX_HEADER + "    return x\n")
    deleted = copy.deepcopy(SOLUTION)
    for nb in (edited, deleted):
        for cell in nb["cells"]:
            if 'check("stable_softmax"' in cell_source(cell):
                cell["source"] = "print('✓ stable_softmax: all 6 cases pass')" if nb is edited else ""
    write(subs / "edited_check", "00_foundations.ipynb", edited)
    write(subs / "deleted_check", "00_foundations.ipynb", deleted)
    # exercise metadata renamed (graded by function name), and a duplicated cell (the last one counts)
    renamed = copy.deepcopy(SOLUTION)
    duplicated = copy.deepcopy(SOLUTION)
    for cell in renamed["cells"]:
        if exercise_meta(cell) and exercise_meta(cell)["id"] == "batched_matmul":
            cell["metadata"]["exercise"]["id"] = "my_matmul"
    for i, cell in enumerate(duplicated["cells"]):
        if exercise_meta(cell) and exercise_meta(cell)["id"] == "image_to_patches":
            wrong = copy.deepcopy(cell)
            wrong["source"] = "def image_to_patches(images, patch):\n    return images.flatten(1)[:, None]\n"
            duplicated["cells"].insert(i + 1, wrong)
            break
    write(subs / "renamed_cell", "00_foundations.ipynb", renamed)
    write(subs / "duplicated_cell", "00_foundations.ipynb", duplicated)
    out = tmp_path_factory.mktemp("out")
    code = main(
        [
            str(subs),
            "--timeout",
            "20",
            "--seed",
            "123",
            "--jobs",
            "2",
            "--json",
            str(out / "grades.json"),
            "--csv",
            str(out / "grades.csv"),
        ]
    )
    assert code == 0
    return json.loads((out / "grades.json").read_text()), (out / "grades.csv").read_text()


def score(graded, student):
    return graded[0][student]["00_foundations"]


def total(graded, student):
    return sum(e["points"] for e in score(graded, student).values())


def test_solutions_score_full_marks(graded):
    assert total(graded, "solution") == FULL
    assert all(e["status"] == "passed" for e in score(graded, "solution").values())


def test_untouched_exercises_score_zero_with_not_implemented(graded):
    for e in score(graded, "untouched").values():
        assert e["points"] == 0 and e["status"] == "not implemented"


def test_invalid_json_scores_zero_without_stopping_the_grader(graded):
    for e in score(graded, "not_json").values():
        assert e["status"] == "unreadable" and "not valid JSON" in e["messages"][0]


@pytest.mark.parametrize(
    "student,status,points,message",
    [
        ("raises", "failed", 0, "ValueError: boom"),
        ("loops_forever", "timeout", 0, "timed out"),
        ("ignores_signals", "timeout", 0, "timed out"),
        ("exits_hard", "error", 0, "before reporting a result"),
        ("exits_politely", "error", 0, "SystemExit"),
        ("wrong_shape", "failed", 0, "shape"),
        ("wrong_dtype", "partial", 1.5, "dtype torch.float32, expected torch.float64"),
        ("naive_nan", "partial", 2 * 4 / 6, "NaN"),
        ("eq_always_true", "failed", 0, "result is Anything"),
        ("lying_subclass", "failed", 0, "result is Liar"),
        ("patched_allclose", "failed", 0, "wrong values"),
        ("forged_result", "error", 0, "not plain data"),
        ("uses_torch_softmax", "forbidden", 0, "uses softmax"),
        ("imports_reference", "forbidden", 0, "course_lib"),
        ("patch_order_wrong", "failed", 0, "wrong values"),
        ("no_zero_grad", "failed", 0, "result[0][2]"),
        ("returns_tensor_loss", "failed", 0, "result[0][0] is Tensor"),
        ("syntax_error", "error", 0, "SyntaxError"),
        ("floods_output", "failed", 0, "File too large"),
    ],
)
def test_bad_submission_loses_only_its_exercise(graded, student, status, points, message):
    exercise_id = CHEATS[student][0]
    result = score(graded, student)[exercise_id]
    assert result["status"] == status, result
    assert result["points"] == pytest.approx(points, abs=1e-3)
    assert any(message in m for m in result["messages"]), result["messages"]
    others = [e for k, e in score(graded, student).items() if k != exercise_id]
    assert all(e["status"] == "passed" for e in others), "one failure must not cascade"


def test_forged_pickle_never_ran_in_the_grader(graded):
    import os

    assert score(graded, "forged_result")["stable_softmax"]["status"] == "error"  # it was graded
    assert not os.path.exists("/tmp/pwned_by_student")


def test_editing_or_deleting_check_cells_changes_nothing(graded):
    assert score(graded, "edited_check")["stable_softmax"]["points"] == 0
    assert total(graded, "deleted_check") == FULL


def test_renamed_and_duplicated_cells(graded):
    renamed = score(graded, "renamed_cell")["batched_matmul"]
    assert renamed["points"] == 2 and "defines batched_matmul" in renamed["messages"][-1]
    duplicated = score(graded, "duplicated_cell")["image_to_patches"]
    assert duplicated["points"] == 0 and any("graded the last one" in m for m in duplicated["messages"])


def test_csv_has_one_row_per_student_and_exercise(graded):
    rows = graded[1].strip().splitlines()
    assert rows[0] == "student,notebook,exercise,points,max,status,message"
    assert len(rows) == 1 + 4 * len(graded[0])


def test_missing_folder_is_a_grader_failure(tmp_path):
    assert main([str(tmp_path / "nope")]) == 2
