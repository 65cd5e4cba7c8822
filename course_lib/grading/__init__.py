"""Exercises and grading: `check` in the notebook, `course_lib.assign` to generate exercises, `course_lib.grade` to grade."""
from course_lib.grading.check import check

__all__ = ["check"]
