"""Every lesson: the graded exercises, found by themselves; each `lessons/lessonNN.py` declares a list `EXERCISES`.

A catalog of ids, notebooks, function names and points is read from the spec files' source without running
them (so `assign`, which only edits notebooks, never imports torch); a spec's module is imported only when its
reference or cases are needed.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from course_tools.grading.spec import Exercise

LESSONS = Path(__file__).parent / "lessons"
PACKAGE = "course_tools.grading.lessons"


@dataclass(frozen=True)
class Entry:
    """What the catalog knows of an exercise without importing its spec."""

    id: str
    notebook: str
    function: str
    points: float
    module: str


def _literal(node: ast.expr, names: dict[str, object], where: str) -> object:
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(
            f"{where}: Exercise(reference, notebook, points, ...) needs a literal notebook and points "
            f"(or a module-level string constant), got {ast.unparse(node)!r}"
        ) from None


def _entries(path: Path) -> list[Entry]:
    """The `Exercise(reference, notebook, points, ...)` calls in one spec file, read from its source: the
    reference is named, by a plain name, as the function the student writes, which is also the exercise's id."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Exercise":
            where = f"{path.name}:{node.lineno}"
            if len(node.args) < 3 or not isinstance(node.args[0], ast.Name):
                raise ValueError(
                    f"{where}: Exercise(...) needs the reference (by its name), the notebook and the points "
                    "as its first three arguments"
                )
            function = node.args[0].id
            notebook, points = (_literal(arg, names, where) for arg in node.args[1:3])
            out.append(Entry(function, str(notebook), function, float(points), f"{PACKAGE}.{path.stem}"))
    return out


@cache
def catalog() -> dict[str, Entry]:
    """Every exercise by id, in the order the spec files (sorted by name) declare them."""
    found: dict[str, Entry] = {}
    for path in sorted(LESSONS.glob("lesson*.py")):
        for entry in _entries(path):
            if entry.id in found:
                raise RuntimeError(
                    f"exercise id {entry.id!r} is defined twice ({found[entry.id].module}, {entry.module})"
                )
            found[entry.id] = entry
    return found


def entry(exercise_id: str) -> Entry:
    """The catalog entry of one exercise, or a KeyError that lists the known ids."""
    try:
        return catalog()[exercise_id]
    except KeyError:
        raise KeyError(f"unknown exercise {exercise_id!r}; known: {', '.join(catalog())}") from None


def entries(stem: str) -> list[Entry]:
    """The catalog entries of one notebook, in the order they were declared."""
    return [e for e in catalog().values() if e.notebook == stem]


def notebooks() -> list[str]:
    """Stems of all notebooks that have graded exercises."""
    return sorted({e.notebook for e in catalog().values()})


@cache
def _loaded(module: str) -> dict[str, Exercise]:
    exercises = {e.id: e for e in importlib.import_module(module).EXERCISES}
    declared = {e.id for e in catalog().values() if e.module == module}
    if set(exercises) != declared:
        raise RuntimeError(f"{module}: EXERCISES holds {sorted(exercises)} but its source declares {sorted(declared)}")
    return exercises


def get(exercise_id: str) -> Exercise:
    """The exercise with this id (its spec module is imported now), or a KeyError that lists the known ids."""
    found = _loaded(entry(exercise_id).module)[exercise_id]
    listed = entry(exercise_id)
    if (found.notebook, found.function, found.points) != (listed.notebook, listed.function, listed.points):
        raise RuntimeError(
            f"exercise {exercise_id!r}: the catalog read {listed} from the source, the spec holds "
            f"{found.notebook!r}, {found.function!r}, {found.points}"
        )
    return found


def for_notebook(stem: str) -> list[Exercise]:
    """The exercises of one notebook, in the order they were declared."""
    return [get(e.id) for e in entries(stem)]
