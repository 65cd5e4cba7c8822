"""The exercise rule (DESIGN.md): no exercise asks for code that its lesson shows.

A solution region transcribes its lesson when two consecutive non-trivial lines of it appear, one after the
other, among the lesson notebook's code lines (comments and blank lines skipped, whitespace normalised).
"""

import re
from pathlib import Path

import pytest

from course_tools.grading.notebook import cell_source, exercise_meta, read_notebook
from tests.conftest import ROOT

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
TRIVIAL = {"else:", "try:", "pass", "return x", "return out", "return output", "return logits", "break", "continue"}


def code_lines(source: str) -> list[str]:
    """The lines that carry code: no blanks, no comments, no markers, whitespace collapsed."""
    lines = []
    for raw in source.splitlines():
        line = re.sub(r"\s+", " ", re.sub(r"\s+# .*$", "", raw)).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def non_trivial(line: str) -> bool:
    return len(line) >= 12 and line not in TRIVIAL and not line.startswith(('"""', "def ", "raise NotImplementedError"))


def solution_regions(nb: dict) -> dict[str, list[str]]:
    regions: dict[str, list[str]] = {}
    for cell in nb["cells"]:
        meta = exercise_meta(cell)
        if not meta:
            continue
        inside, lines = False, []
        for raw in cell_source(cell).splitlines():
            if "### BEGIN SOLUTION" in raw:
                inside = True
            elif "### END SOLUTION" in raw:
                inside = False
            elif inside:
                lines.extend(code_lines(raw))
        regions[meta["id"]] = [line for line in lines if non_trivial(line)]
    return regions


def lesson_pairs(path: Path) -> set[tuple[str, str]]:
    nb = read_notebook(path)
    pairs: set[tuple[str, str]] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = [line for line in code_lines(cell_source(cell)) if non_trivial(line)]
        pairs.update(zip(lines, lines[1:]))
    return pairs


def transcribed(solution: Path) -> dict[str, list[tuple[str, str]]]:
    shown = lesson_pairs(ROOT / "notebooks" / solution.name)
    found = {}
    for exercise_id, lines in solution_regions(read_notebook(solution)).items():
        copies = [pair for pair in zip(lines, lines[1:]) if pair in shown]
        if copies:
            found[exercise_id] = copies
    return found


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_no_exercise_transcribes_its_lesson(solution):
    found = transcribed(solution)
    assert not found, "\n".join(
        f"{solution.name} {exercise_id}: the lesson already shows\n    {a}\n    {b}"
        for exercise_id, pairs in found.items()
        for a, b in pairs[:2]
    )


def test_the_rule_catches_a_copied_cell(tmp_path):
    lesson = tmp_path / "lesson.ipynb"
    lesson.write_text(
        '{"cells": [{"cell_type": "code", "metadata": {}, "source": '
        '"def attention(q, k):\\n    scores = q @ k.transpose(-2, -1)\\n    return scores.softmax(dim=-1)\\n"}]}'
    )
    pairs = lesson_pairs(lesson)
    assert ("scores = q @ k.transpose(-2, -1)", "return scores.softmax(dim=-1)") in pairs
    region = code_lines("  scores = q @ k.transpose(-2,   -1)\n\n  # softmax\n  return scores.softmax(dim=-1)\n")
    assert list(zip(region, region[1:]))[0] in pairs
