"""Every lesson: reading notebooks as plain JSON, solution markers, exercise cells, notebook identity."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_MARKER_LIKE = re.compile(r"#+\s*(BEGIN|END)\s+SOLUTION", re.IGNORECASE)


class NotebookError(ValueError):
    """A notebook that cannot be read or is malformed; the message says where and why."""


MAX_NOTEBOOK_BYTES = 64 * 2**20


def read_notebook(path: str | Path) -> dict[str, Any]:
    """Load a notebook's JSON, or raise NotebookError saying why it is not a notebook.

    Only a regular file is read (a folder, a FIFO, a device or a symbolic link is refused without blocking),
    at most MAX_NOTEBOOK_BYTES, and JSON nested too deep for the parser is refused too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        raise NotebookError(f"{path}: cannot be opened ({err.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotebookError(f"{path}: not a regular file")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise NotebookError(f"{path}: larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_NOTEBOOK_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path}: larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    try:
        nb = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise NotebookError(f"{path}: not UTF-8 text ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise NotebookError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except RecursionError:
        raise NotebookError(f"{path}: JSON nested too deep") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: valid JSON but not a notebook (no list of cells)")
    return nb


def write_notebook(nb: dict[str, Any], path: str | Path) -> None:
    """Write a notebook the way Jupyter does (indent 1, sorted keys), atomically."""
    from course_lib.paths import atomic_write_bytes

    atomic_write_bytes(path, notebook_text(nb).encode("utf-8"))


def notebook_text(nb: dict[str, Any]) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def exercise_meta(cell: dict[str, Any]) -> dict[str, Any] | None:
    """The cell's {"id": ...} exercise metadata, or None."""
    meta = cell.get("metadata")
    meta = meta.get("exercise") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) and isinstance(meta.get("id"), str) else None


def strip_solution(source: str, exercise_id: str, where: str) -> tuple[str, int]:
    """Replace each BEGIN/END SOLUTION region with a `raise NotImplementedError`; return (new source, regions).

    Raises NotebookError for a nested, unclosed or unopened region, or a line that looks like a marker but is not one.
    """
    out: list[str] = []
    inside = False
    regions = 0
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        text = line.strip()
        if text == BEGIN:
            if inside:
                raise NotebookError(f"{where}, line {number}: {BEGIN} inside another solution region (nested)")
            inside = True
            regions += 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(
                f'{indent}raise NotImplementedError("exercise {exercise_id}: replace this line with your code")\n'
            )
        elif text == END:
            if not inside:
                raise NotebookError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif _MARKER_LIKE.search(text):
            raise NotebookError(
                f"{where}, line {number}: {text!r} looks like a marker; write exactly {BEGIN!r} or {END!r}"
            )
        elif not inside:
            out.append(line)
    if inside:
        raise NotebookError(f"{where}: {BEGIN} is never closed by {END}")
    return "".join(out), regions


def has_marker(source: str) -> bool:
    return bool(_MARKER_LIKE.search(source))


def defines(source: str, name: str) -> bool:
    """Whether the source defines a top-level function `name` (False if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body)


def notebook_stem(nb: dict[str, Any], path: Path, known: list[str]) -> str | None:
    """Which course notebook this is: its metadata, else a known stem in the file name, else None."""
    meta = nb.get("metadata", {})
    course = meta.get("course") if isinstance(meta, dict) else None
    if isinstance(course, dict) and course.get("notebook") in known:
        return course["notebook"]
    for stem in known:
        if stem in path.name:
            return stem
    return None
