"""Every lesson's exercises/: generated from solutions/ with stubs in place of the solutions, malformed markers
refused, the committed folder in sync (course_tools.assign)."""

import copy
import json

import pytest

from course_tools.assign import generate, make_exercise
from course_tools.grading.notebook import NotebookError, cell_source, exercise_meta, read_notebook
from tests.conftest import ROOT

SOLUTION = read_notebook(ROOT / "solutions" / "00_foundations.ipynb")


def test_exercises_folder_is_in_sync_with_solutions():
    assert generate(ROOT / "solutions", ROOT / "exercises", check_only=True) == []


def test_generated_exercise_has_stubs_and_no_outputs_or_solutions():
    nb = make_exercise(SOLUTION, "00_foundations", "test")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    stubs = [c for c in code if exercise_meta(c)]
    assert len(stubs) == 4
    for cell in stubs:
        source = cell_source(cell)
        assert "NotImplementedError" in source and "BEGIN SOLUTION" not in source
        assert "amax" not in source and "zero_grad()" not in source


def test_solution_only_cells_stay_out_of_the_exercise():
    nb = copy.deepcopy(SOLUTION)
    nb["cells"].append({"cell_type": "markdown", "metadata": {"solution_only": True}, "source": ["the answers"]})
    out = make_exercise(nb, "00_foundations", "test")
    assert len(out["cells"]) == sum(not c["metadata"].get("solution_only") for c in SOLUTION["cells"])
    assert all("the answers" not in cell_source(c) for c in out["cells"])


def with_exercise_source(source, exercise_id="stable_softmax", nb=SOLUTION):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if exercise_meta(cell) and exercise_meta(cell)["id"] == exercise_id:
            cell["source"] = source
    return nb


@pytest.mark.parametrize(
    "source,message",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "nested"),
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "without a"),
        ("def f():\n    ## BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n", "looks like a marker"),
        ("def f():\n    return 1\n", "no ### BEGIN SOLUTION region"),
    ],
)
def test_malformed_markers_are_rejected(source, message):
    with pytest.raises(NotebookError, match=message):
        make_exercise(with_exercise_source(source), "00_foundations", "test")


def test_markers_outside_an_exercise_cell_are_rejected():
    nb = copy.deepcopy(SOLUTION)
    plain = next(c for c in nb["cells"] if c["cell_type"] == "code" and not exercise_meta(c))
    plain["source"] = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    with pytest.raises(NotebookError, match="outside an exercise cell"):
        make_exercise(nb, "00_foundations", "test")


def test_duplicate_unknown_and_mispointed_exercises_are_rejected():
    nb = copy.deepcopy(SOLUTION)
    cell = next(c for c in nb["cells"] if exercise_meta(c))
    nb["cells"].append(copy.deepcopy(cell))
    with pytest.raises(NotebookError, match="duplicate exercise id"):
        make_exercise(nb, "00_foundations", "test")
    nb = copy.deepcopy(SOLUTION)
    next(c for c in nb["cells"] if exercise_meta(c))["metadata"]["exercise"]["id"] = "softmax_v2"
    with pytest.raises(NotebookError, match="unknown exercise"):
        make_exercise(nb, "00_foundations", "test")
    nb = copy.deepcopy(SOLUTION)
    next(c for c in nb["cells"] if exercise_meta(c))["metadata"]["exercise"]["points"] = 10  # a second declaration
    with pytest.raises(NotebookError, match="only the id"):
        make_exercise(nb, "00_foundations", "test")


def test_check_mode_reports_a_stale_exercise(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    (tmp_path / "solutions" / "00_foundations.ipynb").write_text(json.dumps(SOLUTION))
    assert "missing" in generate(tmp_path / "solutions", tmp_path / "exercises", check_only=True)[0]
    assert generate(tmp_path / "solutions", tmp_path / "exercises", check_only=False) == []
    stale = tmp_path / "exercises" / "00_foundations.ipynb"
    stale.write_text(stale.read_text().replace("replace this line", "edited by hand"))
    assert "out of date" in generate(tmp_path / "solutions", tmp_path / "exercises", check_only=True)[0]
    (tmp_path / "exercises" / "extra.ipynb").write_text("{}")
    assert any("no source" in p for p in generate(tmp_path / "solutions", tmp_path / "exercises", check_only=True))
