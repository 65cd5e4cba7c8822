"""Every lesson: running a student's function on an exercise's cases, shared by `check` (in the notebook) and the
grader's child process."""

from __future__ import annotations

import ast
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from course_lib.device import seeded
from course_tools.grading.spec import Case, Exercise, plain

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
        try:
            with seeded(0):  # a function that samples gets the same numbers as the reference; the caller's RNG is kept
                result = exercise.call(fn, case)
            outcomes.append(Outcome(case, value=plain(result)))
        except NotImplementedError:
            outcomes.append(Outcome(case, error=NOT_IMPLEMENTED, not_implemented=True))
        except Exception as err:  # noqa: BLE001 - a student's code may raise anything
            outcomes.append(Outcome(case, error=short_error(err)))
    return outcomes


OWN_PACKAGES = {"course_lib": "course_lib (the reference implementations)", "course_tools": "course_tools (the grader)"}


def forbidden_uses(source: str, forbidden: tuple[str, ...]) -> list[str]:
    """Names from `forbidden` (and any use of course_lib or course_tools) that the source uses, as a name, an
    attribute, a keyword argument or a string (`getattr(torch, "softmax")`); a SyntaxError propagates."""
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
        elif isinstance(node, ast.keyword) and node.arg in forbidden:
            note(f"{node.arg}=")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and "@" in forbidden:
            note("@")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for package, what in OWN_PACKAGES.items():
                if any(m.split(".")[0] == package for m in modules):
                    note(what)
            imported = [*modules, *(a.name for a in node.names)]  # `import ... as other` hides no forbidden name
            for part in (p for name in imported for p in name.split(".")):
                if part in forbidden:
                    note(part)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = [what for package, what in OWN_PACKAGES.items() if package in node.value]
            for what in named:
                note(what)
            if not named and node.value in forbidden:
                note(node.value)
    return found


# Ways to reach objects the cell was not given: names, attributes and modules no exercise needs.
DYNAMIC_NAMES = {
    "__import__": "__import__",
    "importlib": "importlib",
    "globals": "globals()",
    "vars": "vars()",
    "eval": "eval",
    "exec": "exec",
    "compile": "compile",
    "__builtins__": "__builtins__",
    "builtins": "builtins",
    "gc": "gc",
    "inspect": "inspect",
    "ctypes": "ctypes",
}
DYNAMIC_ATTRIBUTES = {
    "__globals__",
    "__closure__",
    "__code__",
    "__dict__",
    "__self__",
    "__wrapped__",
    "__subclasses__",
    "__reduce__",
    "__reduce_ex__",
    "__getattribute__",
    "__loader__",
    "__spec__",
    "modules",
    "_getframe",
    "f_back",
    "f_locals",
    "f_globals",
    "f_code",
    "tb_frame",
    "gi_frame",
    "cr_frame",
    "_forward_hooks",  # the checks measure through hooks; no exercise needs to touch them
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
}
ATTRIBUTE_FUNCTIONS = ("getattr", "setattr", "delattr", "hasattr")


def dynamic_access(source: str) -> list[str]:
    """How the source reaches for objects at run time instead of using what it was given: introspection (frames,
    globals, gc, sys.modules, importlib, eval) or attributes named by a computed string. Such a cell is not
    graded: it is reported for review. A SyntaxError propagates."""
    found: list[str] = []

    def note(what: str) -> None:
        if what not in found:
            found.append(what)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in DYNAMIC_NAMES:
            note(DYNAMIC_NAMES[node.id])
        elif isinstance(node, ast.Attribute) and node.attr in DYNAMIC_ATTRIBUTES:
            note(f".{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in DYNAMIC_NAMES:
                    note(f"import {module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_FUNCTIONS:
            named = (
                len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
            )
            if not named:
                note(f"{node.func.id}() with a computed name")
            elif node.args[1].value in DYNAMIC_ATTRIBUTES or node.args[1].value in DYNAMIC_NAMES:
                note(f"{node.func.id}(..., {node.args[1].value!r})")
    return found
