"""Every lesson: running a student's function on an exercise's cases, shared by `check` (in the notebook) and the
grader's child process."""

from __future__ import annotations

import ast
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from course_lib.grading.spec import Case, Exercise, plain

NOT_IMPLEMENTED = "not implemented"


@dataclass
class Outcome:
    """What happened on one case: a plain value, or an error message."""

    case: Case
    value: Any = None
    error: str | None = None
    not_implemented: bool = False


def short_error(err: BaseException) -> str:
    """`ValueError: message (line 3 of your cell)`: the exception and the last line of student code it passed."""
    line = ""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if (
            frame.filename.startswith("<exercise")
            or frame.filename.startswith("<ipython-input")
            or "ipykernel" in frame.filename
        ):
            line = f" (line {frame.lineno} of your cell: {frame.line.strip() if frame.line else ''})"
            break
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}{line}"


def run_cases(exercise: Exercise, fn: Callable, cases: list[Case]) -> list[Outcome]:
    """Call `fn` through the exercise's harness on each case; catch everything, keep only plain results."""
    outcomes = []
    for case in cases:
        case = case.fresh()
        torch.manual_seed(0)  # a function that samples gets the same numbers as the reference
        try:
            result = exercise.call(fn, case)
            outcomes.append(Outcome(case, value=plain(result)))
        except NotImplementedError:
            outcomes.append(Outcome(case, error=NOT_IMPLEMENTED, not_implemented=True))
        except Exception as err:  # noqa: BLE001 - a student's code may raise anything
            outcomes.append(Outcome(case, error=short_error(err)))
    return outcomes


def forbidden_uses(source: str, forbidden: tuple[str, ...]) -> list[str]:
    """Names from `forbidden` (and any use of course_lib) that the source uses; a SyntaxError propagates."""
    tree = ast.parse(source)
    found: list[str] = []

    def note(what: str) -> None:
        if what not in found:
            found.append(what)

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in forbidden:
            note(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in forbidden:
            note(node.attr)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and "@" in forbidden:
            note("@")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] == "course_lib" for m in modules):
                note("course_lib (the reference implementations)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "course_lib" in node.value:
            note("course_lib (the reference implementations)")
    return found
