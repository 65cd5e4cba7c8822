"""Every lesson: generate exercises/ from solutions/; solution regions become `raise NotImplementedError`, outputs
are cleared.

python -m course_tools.assign            # write exercises/
python -m course_tools.assign --check    # exit 1 if exercises/ is stale or a marker is malformed
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from pathlib import Path
from typing import Any

from course_tools.grading import registry
from course_tools.grading.notebook import (
    NotebookError,
    cell_source,
    exercise_meta,
    has_marker,
    notebook_text,
    read_notebook,
    strip_solution,
    write_notebook,
)

KEEP_METADATA = ("exercise", "tags")  # execution timings and UI state stay out of the student's copy


def make_exercise(nb: dict[str, Any], stem: str, where: str) -> dict[str, Any]:
    """The student version of a solutions notebook; raises NotebookError on any malformed marker or metadata."""
    course = nb.get("metadata", {}).get("course", {})
    if not isinstance(course, dict) or course.get("notebook") != stem:
        raise NotebookError(f'{where}: notebook metadata must hold {{"course": {{"notebook": "{stem}"}}}}')
    out = copy.deepcopy(nb)
    out["cells"] = [c for c in out["cells"] if not c.get("metadata", {}).get("solution_only")]  # answers stay out
    seen: dict[str, int] = {}
    for index, cell in enumerate(out["cells"]):
        here = f"{where}, cell {index}"
        source = cell_source(cell)
        meta = exercise_meta(cell)
        if cell.get("cell_type") != "code":
            if has_marker(source):
                raise NotebookError(
                    f"{here}: solution markers in a {cell.get('cell_type')} cell; only code cells may hold them"
                )
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_METADATA}
        if meta is None:
            if has_marker(source):
                raise NotebookError(
                    f"{here}: solution markers outside an exercise cell "
                    '(add {"exercise": {"id": ...}} to its metadata)'
                )
            continue
        exercise_id = meta["id"]
        if exercise_id in seen:
            raise NotebookError(f"{here}: duplicate exercise id {exercise_id!r} (also cell {seen[exercise_id]})")
        seen[exercise_id] = index
        try:
            spec = registry.entry(exercise_id)
        except KeyError as err:
            raise NotebookError(f"{here}: {err.args[0]}") from None
        if spec.notebook != stem:
            raise NotebookError(f"{here}: exercise {exercise_id!r} belongs to notebook {spec.notebook!r}, not {stem!r}")
        if set(meta) != {"id"}:
            raise NotebookError(
                f"{here}: exercise metadata holds only the id, got {sorted(meta)} "
                f"(points and everything else are declared once, in {spec.module})"
            )
        stripped, regions = strip_solution(source, exercise_id, here)
        if regions == 0:
            raise NotebookError(f"{here}: exercise cell {exercise_id!r} has no {'### BEGIN SOLUTION'} region")
        cell["source"] = stripped.splitlines(keepends=True)
    missing = [e.id for e in registry.entries(stem) if e.id not in seen]
    if missing:
        raise NotebookError(f"{where}: no exercise cell for {', '.join(missing)} (declared in the registry)")
    return out


def generate(solutions: Path, exercises: Path, check_only: bool) -> list[str]:
    """Write (or compare) every exercise notebook; return a list of problems."""
    problems = []
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        return [f"no notebooks in {solutions}"]
    expected_names = set()
    for path in sources:
        expected_names.add(path.name)
        try:
            text = notebook_text(make_exercise(read_notebook(path), path.stem, str(path)))
        except NotebookError as err:
            problems.append(str(err))
            continue
        target = exercises / path.name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if check_only:
            if current is None:
                problems.append(f"{target} is missing: run `python -m course_tools.assign`")
            else:
                diff = list(
                    difflib.unified_diff(
                        current.splitlines(), text.splitlines(), str(target), "generated", n=1, lineterm=""
                    )
                )
                problems.append(
                    f"{target} is out of date with {path}: run `python -m course_tools.assign`\n" + "\n".join(diff[:20])
                )
        else:
            exercises.mkdir(parents=True, exist_ok=True)
            write_notebook(make_exercise(read_notebook(path), path.stem, str(path)), target)
            print(f"wrote {target}")
    for stray in sorted(exercises.glob("*.ipynb")):
        if stray.name not in expected_names:
            problems.append(f"{stray} has no source in {solutions}/ (exercises are generated, never written by hand)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.assign", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    parser.add_argument("--solutions", type=Path, default=Path("solutions"))
    parser.add_argument("--exercises", type=Path, default=Path("exercises"))
    args = parser.parse_args(argv)
    problems = generate(args.solutions, args.exercises, args.check)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems and args.check:
        print(f"exercises/ is in sync with solutions/ ({len(list(args.solutions.glob('*.ipynb')))} notebooks)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
