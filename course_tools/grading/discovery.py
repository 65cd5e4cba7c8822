"""Every lesson: finding the submissions in a folder, and the exercise cells in a notebook.

Only regular files are read, never through a link, without blocking; whatever a file is, it becomes its own
student's row, never the run's failure.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_tools.grading import registry
from course_tools.grading.notebook import (
    NotebookError,
    cell_source,
    defines,
    exercise_meta,
    notebook_stem,
    read_notebook,
)
from course_tools.grading.verdict import short

MAX_CELL = 256 * 2**10  # characters of one exercise cell: the grader parses cells itself, so their size is bounded
MAX_DEPTH = 6  # folders inside a student's folder
MAX_FILES = 2000  # entries looked at in one student's folder


@dataclass
class Submission:
    student: str
    stem: str | None
    path: Path
    problem: str = ""  # why this submission cannot be graded (it becomes the student's error rows)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _notebooks_in(folder: Path, root: Path, warnings: list[str]) -> list[Path]:
    """The regular .ipynb files under a student's folder: no links followed, depth and count capped."""
    found, seen = [], 0
    for parent, dirs, files in os.walk(folder, followlinks=False, onerror=lambda err: None):
        depth = len(Path(parent).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
        for name in sorted(files + [d for d in dirs if d.endswith(".ipynb")]):
            seen += 1
            if seen > MAX_FILES:
                warnings.append(f"{folder.relative_to(root)}/: more than {MAX_FILES} files; the rest skipped")
                return found
            path = Path(parent) / name
            if not name.endswith(".ipynb"):
                continue
            if not _regular(path):
                warnings.append(f"{path.relative_to(root)}: not a regular file (a folder, link or device; skipped)")
                continue
            found.append(path)
    return found


def find_submissions(root: Path) -> tuple[list[Submission], list[str]]:
    """Every notebook under `root`, with its student and course notebook; plus warnings for what was skipped.

    Only regular files are read, never through a link; a notebook that cannot be read still becomes its
    student's row (unreadable), and two files that claim the same student and notebook become an error row."""
    known = registry.notebooks()
    found: list[Submission] = []
    warnings: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        mode = os.lstat(entry).st_mode
        if stat.S_ISLNK(mode):
            warnings.append(f"{entry.name}: a symbolic link (skipped: submissions must be files in the folder)")
        elif stat.S_ISDIR(mode) and entry.suffix != ".ipynb":
            paths = [p for p in _notebooks_in(entry, root, warnings) if ".ipynb_checkpoints" not in p.parts]
            if not paths:
                warnings.append(f"{entry.name}/: no notebooks")
            found += [Submission(entry.name, None, p) for p in paths]
        elif entry.suffix == ".ipynb" and not stat.S_ISREG(mode):
            warnings.append(f"{entry.name}: not a regular file (a folder, FIFO or device; skipped)")
        elif entry.suffix == ".ipynb":
            student = entry.stem
            for stem in known:
                student = student.replace(stem, "")
            found.append(Submission(student.strip("_- .") or entry.stem, None, entry))
    for sub in found:
        try:
            nb = read_notebook(sub.path)
        except Exception as err:  # noqa: BLE001 - whatever the file is, it is this student's problem only
            nb, sub.problem = {}, str(err) if isinstance(err, NotebookError) else f"{sub.path.name}: {short(err)}"
        sub.stem = notebook_stem(nb, sub.path, known) or (known[0] if len(known) == 1 else None)
    kept: dict[tuple[str, str], Submission] = {}
    for sub in found:
        if sub.stem is None:
            warnings.append(f"{sub.path.relative_to(root)}: not a course notebook with graded exercises (skipped)")
            continue
        key = (sub.student, sub.stem)
        if key in kept:
            first = kept[key]
            names = sorted({str(first.path.relative_to(root)), str(sub.path.relative_to(root))})
            first.problem = f"two submissions of {sub.stem} ({', '.join(names)}): none graded; keep one and grade again"
            warnings.append(f"{sub.student}: {first.problem}")
            continue
        kept[key] = sub
    return list(kept.values()), warnings


def exercise_sources(nb: dict[str, Any], stem: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """{exercise id: cell source} for the notebook's exercises, plus notes per exercise (duplicates, fallbacks)."""
    wanted = {e.id: e for e in registry.for_notebook(stem)}
    sources: dict[str, str] = {}
    notes: dict[str, list[str]] = {e: [] for e in wanted}
    counts: dict[str, int] = {}
    for cell in nb.get("cells", []):
        meta = exercise_meta(cell) if isinstance(cell, dict) else None
        if meta is None or cell.get("cell_type") != "code":
            continue
        if meta["id"] not in wanted:
            continue
        counts[meta["id"]] = counts.get(meta["id"], 0) + 1
        sources[meta["id"]] = cell_source(cell)  # the last one wins, as when the notebook runs top to bottom
    for exercise_id, n in counts.items():
        if n > 1:
            notes[exercise_id].append(f"{n} cells are marked as this exercise; graded the last one")
    for exercise_id, exercise in wanted.items():
        if exercise_id in sources:
            continue
        candidates = [
            cell_source(c)
            for c in nb.get("cells", [])
            if isinstance(c, dict)
            and c.get("cell_type") == "code"
            and len(cell_source(c)) <= MAX_CELL
            and defines(cell_source(c), exercise.function)
        ]
        if candidates:
            sources[exercise_id] = candidates[-1]
            notes[exercise_id].append(
                f"no cell carries this exercise's metadata; graded the cell that defines {exercise.function}"
            )
    return sources, notes
