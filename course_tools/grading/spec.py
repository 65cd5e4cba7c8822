"""Every lesson: what an exercise is, and how a result is compared with the reference.

An `Exercise` is the reference implementation (its name is the function a student writes), its notebook, its
points, and a generator of seeded test cases. The same cases serve `check(...)` in the notebook (a fixed seed)
and the CLI grader (a fresh seed per run, so answers cannot be memorised).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Case:
    """One test input: a label that says which mistake it catches, and the arguments."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def shapes(self) -> str:
        """The argument shapes, for messages: "(4, 10), dim=-1"."""

        def show(v: Any) -> str:
            return str(tuple(v.shape)) if isinstance(v, torch.Tensor) else repr(v)

        return ", ".join([show(a) for a in self.args] + [f"{k}={show(v)}" for k, v in self.kwargs.items()])

    def fresh(self) -> Case:
        """A copy with cloned tensors, so a function that edits its inputs cannot spoil later cases."""

        def clone(v: Any) -> Any:
            return v.clone() if isinstance(v, torch.Tensor) else v

        return Case(self.name, tuple(clone(a) for a in self.args), {k: clone(v) for k, v in self.kwargs.items()})


def draw_seed(g: torch.Generator) -> int:
    """A seed for a case's own generator (a model's initialisation, a sampler), drawn from the cases' generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=g))


def call_with_args(fn: Callable, case: Case) -> Any:
    """The default harness: fn(*args, **kwargs)."""
    return fn(*case.args, **case.kwargs)


@dataclass(frozen=True)
class Exercise:
    """One graded exercise, declared once: the reference's name is the exercise's id and the function the student
    writes; the notebook's exercise cell names only that id (its metadata), points live here alone."""

    reference: Callable
    notebook: str  # stem of the solutions notebook, e.g. "00_foundations"
    points: float
    make_cases: Callable[[torch.Generator], list[Case]]
    call: Callable[[Callable, Case], Any] = call_with_args  # runs a function on a case, returns plain data
    setup: str = "import torch"  # the imports an exercise cell may rely on
    forbidden: tuple[str, ...] = ()  # names the cell may not use (the thing it asks you to write)
    # library functions that compute the whole answer under another name: hidden from the job like the reference
    trap: tuple[str, ...] = ()
    atol: float = 1e-5
    rtol: float = 1e-4

    @property
    def id(self) -> str:
        return self.reference.__name__

    @property
    def function(self) -> str:
        """The name the student's cell must define."""
        return self.reference.__name__

    def cases(self, seed: int) -> list[Case]:
        """The seeded test cases."""
        return self.make_cases(torch.Generator().manual_seed(seed))


def describe(value: Any) -> str:
    """A short description of a value's type and shape for messages."""
    if isinstance(value, torch.Tensor):
        return f"{type(value).__name__}{tuple(value.shape)} {value.dtype}"
    return type(value).__name__


def compare(expected: Any, got: Any, *, atol: float, rtol: float, where: str = "result") -> str | None:
    """None if `got` matches `expected`, else one sentence saying what is wrong.

    The type is checked exactly first (`type(got) is type(expected)`), so subclasses and look-alike
    objects fail before any of their methods could run.
    """
    if type(got) is not type(expected):
        return f"{where} is {describe(got)}, expected {describe(expected)}"
    if isinstance(expected, (tuple, list)):
        if len(got) != len(expected):
            return f"{where} has {len(got)} items, expected {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare(e, g, atol=atol, rtol=rtol, where=f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(expected, torch.Tensor):
        if got.shape != expected.shape:
            return f"{where} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if got.dtype != expected.dtype:
            return f"{where} has dtype {got.dtype}, expected {expected.dtype}"
        if got.is_floating_point() or got.is_complex():
            bad_nan = torch.isnan(got) & ~torch.isnan(expected)
            if bad_nan.any():
                return f"{where} has NaN at {int(bad_nan.sum())} positions where the reference is finite"
            bad_inf = torch.isinf(got) & ~torch.isinf(expected)
            if bad_inf.any():
                return f"{where} has inf at {int(bad_inf.sum())} positions where the reference is finite"
            if not torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True):
                diff = (got - expected).abs().nan_to_num(0.0)
                wrong = int((~torch.isclose(got, expected, atol=atol, rtol=rtol, equal_nan=True)).sum())
                return (
                    f"{where} has wrong values at {wrong} of {got.numel()} positions "
                    f"(largest difference {diff.max().item():.3g})"
                )
            return None
        if not torch.equal(got, expected):
            wrong = int((got != expected).sum())
            return f"{where} has wrong values at {wrong} of {got.numel()} positions"
        return None
    if isinstance(expected, float):
        if math.isnan(got) and not math.isnan(expected):
            return f"{where} is NaN, expected {expected:.6g}"
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            return f"{where} is {got:.6g}, expected {expected:.6g}"
        return None
    if isinstance(expected, (int, bool, str, type(None))):
        return None if got == expected else f"{where} is {got!r}, expected {expected!r}"
    raise TypeError(f"cannot compare results of type {type(expected).__name__}")


def plain(value: Any, where: str = "result") -> Any:
    """Check that a result is plain data (exact torch.Tensor, float, int, bool, tuples of those) and detach it.

    Raises TypeError naming the offending part; used before a result crosses a process boundary.
    """
    if type(value) is torch.Tensor:
        return torch.Tensor.detach(value).to("cpu").clone()
    if type(value) in (float, int, bool, str, type(None)):
        return value
    if type(value) in (tuple, list):
        return type(value)(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where} is {describe(value)}: return a torch.Tensor (or the type the exercise asks for)")
