"""Every lesson: the code a job needs, sent as source, so the exercise specs never reach the sandbox.

A job runs the student's cell, then calls it through the exercise's harness on cases the grader built. The
harness and the other exercises' references (helpers a cell may call, so one failure does not cascade) live in
the spec files, which also hold the graded reference; the sandbox does not mount them. Instead the grader sends
each function as its own source plus what that source names from its module: imports of the library and of
torch, literal constants, and the source of the module's other functions, recursively. The graded function's
name is never sent: a helper that calls it calls the student's function, as it would in the notebook.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPECS = "course_tools.grading.lessons."


class ShippingError(RuntimeError):
    """A function cannot be sent to the sandbox as source (a name it reads is not importable or literal)."""


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _literal(value: Any) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _import_line(name: str, value: Any) -> str | None:
    """An import statement that binds `name` to `value` in the sandbox, or None if there is none."""
    if isinstance(value, types.ModuleType):
        if value.__name__.startswith(SPECS):
            return None
        return f"import {value.__name__} as {name}" if name != value.__name__ else f"import {name}"
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not (module and qualname) or module.startswith(SPECS) or module == "__main__" or "." in qualname:
        return None
    if getattr(sys.modules.get(module), qualname, None) is not value:
        return None
    return f"from {module} import {qualname}" + (f" as {name}" if name != qualname else "")


def source_of(functions: list[types.FunctionType], *, withheld: str = "", withheld_object: Any = None) -> str:
    """Python source that defines every function in `functions` (under its own name) and all it reads from its
    module, never a function named `withheld`. ShippingError if something it reads cannot be sent."""
    imports: dict[str, str] = {}
    constants: dict[str, str] = {}
    bodies: dict[str, str] = {}  # name -> source, dependencies first
    visiting: set[int] = set()

    def visit(fn: Any, name: str) -> None:
        if name in bodies or id(fn) in visiting:
            return
        if not isinstance(fn, (types.FunctionType, type)):
            raise ShippingError(f"{name} is a {type(fn).__name__}, not a function or class")
        visiting.add(id(fn))
        module = sys.modules[fn.__module__]
        code = fn.__code__ if isinstance(fn, types.FunctionType) else None
        text = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(text)
        reads = (_names(code) if code is not None else _class_names(fn)) | {
            node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
        }
        for read in sorted(reads):
            if read == withheld or read not in vars(module) or read in bodies or read in imports:
                continue
            value = vars(module)[read]
            if withheld_object is not None and value is withheld_object:
                raise ShippingError(f"{fn.__module__}.{name} reads the graded reference as {read!r}: it is never sent")
            line = _import_line(read, value)
            if line is not None:
                imports[read] = line
            elif isinstance(value, (types.FunctionType, type)) and value.__module__ == fn.__module__:
                visit(value, read)
            elif _literal(value):
                constants[read] = f"{read} = {value!r}"
            else:
                raise ShippingError(f"{fn.__module__}.{name} reads {read!r}, which cannot be sent to the sandbox")
        defined = tree.body[0]
        if getattr(defined, "name", None) != fn.__name__:
            raise ShippingError(f"{name}: its source does not define it")
        bodies[name] = text if name == fn.__name__ else f"{text}\n{name} = {fn.__name__}\n"
        visiting.discard(id(fn))

    for fn in functions:
        if fn.__name__ == withheld or (withheld_object is not None and fn is withheld_object):
            raise ShippingError(f"{fn.__name__} is the graded function: it is never sent")
        visit(fn, fn.__name__)
    parts = ["from __future__ import annotations", *imports.values(), *constants.values(), *bodies.values()]
    return "\n".join(parts) + "\n"


def _class_names(cls: type) -> set[str]:
    names: set[str] = set()
    for value in vars(cls).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, types.FunctionType):
            names |= _names(value.__code__)
    names |= {base.__name__ for base in cls.__bases__}
    return names


def _stub_out(source: str, function: str, message: str) -> str | None:
    """The module's source with every function named `function` (at any depth) raising `message`; None if the
    module defines none."""
    tree = ast.parse(source)
    found = False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            node.body = [ast.parse(f"raise RuntimeError({message!r})").body[0]]
            found = True
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if found else None


def stripped_library(
    library: Path, functions: tuple[str, ...], folder: Path, message: Callable[[str], str]
) -> list[tuple[str, str]]:
    """Copies, under `folder`, of the library's modules that define a function named as one of `functions`, with
    each such function raising `message(name)`: (copy, original) pairs for the sandbox to mount over the
    originals, so the library's own version of a graded function is not in the job at all, whatever the cell
    does."""
    pairs = []
    for path in sorted(library.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        stubbed = text
        for function in functions:
            if f"def {function}(" in stubbed and (out := _stub_out(stubbed, function, message(function))) is not None:
                stubbed = out
        if stubbed == text:
            continue
        copy = folder / "+".join(functions) / path.relative_to(library)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(stubbed, encoding="utf-8")
        pairs.append((str(copy), str(path)))
    return pairs
