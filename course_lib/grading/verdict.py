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
