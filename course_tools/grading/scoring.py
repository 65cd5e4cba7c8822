"""Every lesson: the one judgement, shared by `check(...)` in the notebook and the CLI grader: screen a cell's
source, then compare what its function returned with the reference's answers and classify the outcome."""

from __future__ import annotations

from dataclasses import dataclass

from course_tools.grading.execute import NOT_IMPLEMENTED, Outcome, dynamic_access, forbidden_uses
from course_tools.grading.spec import Exercise, compare
from course_tools.grading.verdict import CaseResult, Status

MAX_MESSAGE = 300  # characters of one message from a job: reports carry what the student wrote, briefly
TRAP_MARK = "reference-trap"  # in the message of a disarmed library function (runner.disarm)


def trap_message(function: str) -> str:
    """What a library function with the graded function's name raises inside a job."""
    return f"{TRAP_MARK}: {function} is out of reach while grading; write it yourself"


@dataclass
class Judgement:
    """How the cases came out: a status, the cases passed, and one message per failing case."""

    status: Status
    passed: int
    total: int
    messages: list[str]


def screen(exercise: Exercise, source: str) -> tuple[Status, str] | None:
    """The static screen (advice for the instructor, see README): why a cell is not run, or None.
    A SyntaxError propagates."""
    used = forbidden_uses(source, exercise.forbidden)
    if used:
        return Status.FORBIDDEN, f"uses {', '.join(used)}; the exercise asks you to write this yourself"
    reaching = dynamic_access(source)
    if reaching:
        return Status.NEEDS_REVIEW, f"reaches for objects at run time ({', '.join(reaching)})"
    return None


def judge(exercise: Exercise, expected: list[Outcome], got: list[CaseResult] | tuple[CaseResult, ...]) -> Judgement:
    """Compare each case's result (plain data from wherever the function ran) with the reference's outcome, in the
    trusted process."""
    if len(got) != len(expected):
        return Judgement(Status.ERROR, 0, len(expected), ["the result was tampered with (wrong number of cases)"])
    passed, messages, not_implemented = 0, [], 0
    for want, result in zip(expected, got):
        if not isinstance(result, CaseResult):
            messages.append(f"[{want.case.name}] result was tampered with")
            continue
        error = result.error
        not_implemented += error == NOT_IMPLEMENTED
        problem = str(error) if error else compare(want.value, result.value, atol=exercise.atol, rtol=exercise.rtol)
        if problem:
            messages.append(f"[{want.case.name}] inputs {want.case.shapes()}: {problem[:MAX_MESSAGE]}")
        else:
            passed += 1
    total = len(expected)
    if any(TRAP_MARK in m for m in messages):
        why = "called the exercise's reference, found at run time: not graded, reported for review"
        return Judgement(Status.NEEDS_REVIEW, 0, total, [why])
    if passed == 0 and not_implemented:
        return Judgement(Status.NOT_IMPLEMENTED, 0, total, ["the function still raises NotImplementedError"])
    status = Status.PASSED if passed == total else (Status.PARTIAL if passed else Status.FAILED)
    return Judgement(status, passed, total, messages)
