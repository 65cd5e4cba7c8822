"""Every lesson's instructor: `make grade-demo` grades three sample students before a workshop.

    python -m course_tools.grading.demo [FOLDER]      (default build/grade-demo)

It writes lesson 00 submissions for three students into FOLDER/submissions and runs the CLI grader on them
with a fixed seed, printing its tables and writing grades.json and grades.csv next to them:
- ada hands in the solutions: full marks;
- ben solved half the exercises and left the rest as the stubs: partial;
- cy hands in broken work: a syntax error, a shortcut the exercise forbids (`torch.softmax`), an infinite
  loop (stopped by the timeout) and an exception, one per exercise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from course_tools.grading.notebook import exercise_meta, read_notebook

COURSE = Path(__file__).resolve().parents[2]
NOTEBOOK = "00_foundations"
BROKEN = {
    "stable_softmax": "def stable_softmax(x, dim=-1):\n    return torch.softmax(x, dim=dim)\n",
    "batched_matmul": "def batched_matmul(a, b):\n    return einsum(a, b, 'batch i k, batch k j -> batch i j'\n",
    "image_to_patches": "def image_to_patches(images, patch):\n    while True:\n        pass\n",
    "accumulated_step": "def accumulated_step(model, optimizer, x, y, micro_batches):\n"
    "    raise RuntimeError('CUDA out of memory')\n",
}


def _with_cells(notebook: dict, sources: dict[str, str]) -> dict:
    """A copy of `notebook` whose exercise cells with an id in `sources` hold that source instead."""
    cells = []
    for cell in notebook["cells"]:
        meta = exercise_meta(cell)
        if meta and meta["id"] in sources:
            cell = {**cell, "source": sources[meta["id"]].splitlines(keepends=True)}
        cells.append(cell)
    return {**notebook, "cells": cells}


def write_submissions(folder: Path, course: Path = COURSE) -> list[str]:
    """The three students' notebooks under `folder`, one sub-folder each. -> the students' names.
    `course` is a checkout (an installed copy of the grader has no solutions/ or exercises/)."""
    if not (course / "solutions").is_dir():
        raise FileNotFoundError(f"no solutions/ in {course}: the grading demo runs from a checkout of the course")
    solutions = read_notebook(course / "solutions" / f"{NOTEBOOK}.ipynb")
    exercises = read_notebook(course / "exercises" / f"{NOTEBOOK}.ipynb")
    solved = {
        meta["id"]: "".join(cell["source"]) for cell in solutions["cells"] if (meta := exercise_meta(cell)) is not None
    }
    missing = set(BROKEN) - set(solved)
    if missing:
        raise ValueError(f"the demo's broken cells name exercises {NOTEBOOK} does not have: {sorted(missing)}")
    half = dict(list(solved.items())[: len(solved) // 2])
    students = {"ada": solutions, "ben": _with_cells(exercises, half), "cy": _with_cells(exercises, BROKEN)}
    for name, notebook in students.items():
        path = folder / name / f"{NOTEBOOK}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return list(students)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.grading.demo", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("build/grade-demo"))
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per exercise (default 20)")
    args = parser.parse_args(argv)
    from course_tools.grade import main as grade
    from course_tools.grading import sandbox

    own = [] if sandbox.sandboxed() else ["--unsandboxed"]  # the demo's notebooks are ours, not students'

    submissions = args.folder / "submissions"
    students = write_submissions(submissions)
    print(f"wrote {NOTEBOOK} for {', '.join(students)} under {submissions}")
    return grade(
        [
            str(submissions),
            "--seed",
            "0",
            "--timeout",
            str(args.timeout),
            "--json",
            str(args.folder / "grades.json"),
            "--csv",
            str(args.folder / "grades.csv"),
            *own,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
