"""Every lesson: what the grader says of one exercise: a status and a score with its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How an exercise came out; the value is what the reports print."""

    PASSED = "passed"
    PARTIAL = "partial"  # points in proportion to the cases passed
    FAILED = "failed"
    NOT_IMPLEMENTED = "not implemented"
    ERROR = "error"
    TIMEOUT = "timeout"
    FORBIDDEN = "forbidden"  # used the shortcut the exercise asks you to write (advisory screen)
    NEEDS_REVIEW = "needs review"  # reached for the answer at run time, or tried to: zero points, the instructor looks
    MISSING = "missing"
    UNREADABLE = "unreadable"


@dataclass
class Score:
    points: float
    max: float
    status: Status
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "points": round(self.points, 4),
            "max": self.max,
            "status": str(self.status),
            "messages": self.messages,
        }


def short(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:200]}"


@dataclass(frozen=True)
class CaseResult:
    """What a job says of one case: a plain value, or the error it raised."""

    value: Any
    error: str | None


@dataclass(frozen=True)
class JobResult:
    """What a job says of one exercise, checked field by field when it arrives (the job is not trusted):
    `status` is "ran" (the cases were called), "not implemented" or "error" (the cell itself failed)."""

    exercise: str
    status: str
    message: str
    cases: tuple[CaseResult, ...]

    @classmethod
    def parse(cls, record: Any) -> JobResult:
        """A result record from the wire, or ValueError if any part has the wrong type."""
        if not isinstance(record, dict) or record.get("kind") != "result":
            raise ValueError("not a result record")
        exercise, status, message, cases = (record.get(k) for k in ("exercise", "status", "message", "cases"))
        if not (isinstance(exercise, str) and status in ("ran", "not implemented", "error")):
            raise ValueError("a result record names no exercise or an unknown status")
        if not isinstance(message, str) or not isinstance(cases, list):
            raise ValueError("a result record's message or cases have the wrong type")
        parsed = []
        for case in cases:
            if not isinstance(case, dict) or set(case) != {"value", "error"}:
                raise ValueError("a case result is not {value, error}")
            if case["error"] is not None and not isinstance(case["error"], str):
                raise ValueError("a case's error is not text")
            parsed.append(CaseResult(case["value"], case["error"]))
        return cls(exercise, status, message, tuple(parsed))
