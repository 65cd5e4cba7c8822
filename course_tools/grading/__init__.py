"""Every lesson: `check` in the notebook; `python -m course_tools.assign` to generate exercises;
`python -m course_tools.grade` to grade a folder of submissions. `check` is imported on first use, so the tools that
only edit notebooks never load torch."""

from __future__ import annotations

from typing import Any

__all__ = ["check"]


def __getattr__(name: str) -> Any:
    if name == "check":
        from course_tools.grading.feedback import check

        return check
    raise AttributeError(f"module 'course_tools.grading' has no attribute {name!r}")
