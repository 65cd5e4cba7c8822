"""Every lesson: `check("name", fn)`, instant feedback in the notebook, one line per failing case.

It compares against the reference on a fixed seed. It is for feedback, not for grades: the CLI
grader runs the same kind of cases on fresh inputs, out of process.
"""

from __future__ import annotations

import inspect
import signal
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from course_tools.grading import registry
from course_tools.grading.execute import NOT_IMPLEMENTED, run_cases
from course_tools.grading.scoring import judge, screen
from course_tools.grading.verdict import CaseResult, Status

CHECK_SEED = 0


class CheckTimeout(BaseException):  # not an Exception: run_cases must not swallow it
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout after `seconds` (POSIX main thread only; elsewhere no limit)."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise CheckTimeout(f"took longer than {seconds:g} s (an infinite loop?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_messages(exercise_id: str, fn: Callable, *, timeout: float = 30.0, seed: int = CHECK_SEED) -> list[str]:
    """The lines `check` prints: one per problem, or a single success line."""
    exercise = registry.get(exercise_id)
    if not callable(fn):
        return [f"✗ {exercise_id}: expected a function, got {type(fn).__name__}"]
    lines = []
    try:
        screened = screen(exercise, textwrap.dedent(inspect.getsource(fn)))
        if screened is not None and screened[0] == Status.FORBIDDEN:
            lines.append(f"✗ {exercise_id}: {screened[1]}")
        elif screened is not None:
            note = "the grader does not grade such a cell, it reports it to your instructor"
            lines.append(f"✗ {exercise_id}: {screened[1]}; {note}")
    except (OSError, TypeError, SyntaxError):
        pass  # no source available (e.g. a builtin): the grader will still see the cell
    cases = exercise.cases(seed)
    try:
        with _time_limit(timeout):
            # the reference first: a function that patches torch while it runs cannot change what it is compared with
            expected = run_cases(exercise, exercise.reference, cases)
            outcomes = run_cases(exercise, fn, cases)
    except CheckTimeout as err:
        return lines + [f"✗ {exercise_id}: {err}"]
    for want in expected:
        if want.error:
            raise RuntimeError(f"the reference failed on case {want.case.name!r}: {want.error}")
    verdict = judge(exercise, expected, [CaseResult(o.value, o.error) for o in outcomes])
    if verdict.status == Status.NOT_IMPLEMENTED:
        return [f"… {exercise_id}: {NOT_IMPLEMENTED} yet (replace the `raise NotImplementedError` line)"]
    lines += [f"✗ {exercise_id} {m}" for m in verdict.messages]
    if verdict.passed == verdict.total and not lines:
        return [f"✓ {exercise_id}: all {len(cases)} cases pass"]
    if verdict.passed == verdict.total:
        lines.append(f"  ({exercise_id}: all {len(cases)} cases pass, but the grader will not count it)")
    return lines


def check(exercise_id: str, fn: Callable, *, timeout: float = 30.0) -> None:
    """Run the exercise's seeded cases on `fn` and print what is wrong, or that all cases pass."""
    print("\n".join(check_messages(exercise_id, fn, timeout=timeout)))
