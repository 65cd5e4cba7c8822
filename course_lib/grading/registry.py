"""All graded exercises, by id and by notebook."""
from __future__ import annotations

from course_lib.grading.lessons import lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07
from course_lib.grading.spec import Exercise

EXERCISES: dict[str, Exercise] = {}
for _module in (lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07):
    for _exercise in _module.EXERCISES:
        if _exercise.id in EXERCISES:
            raise RuntimeError(f"exercise id {_exercise.id!r} is defined twice")
        EXERCISES[_exercise.id] = _exercise


def for_notebook(stem: str) -> list[Exercise]:
    """The exercises of one notebook, in the order they were declared."""
    return [e for e in EXERCISES.values() if e.notebook == stem]


def notebooks() -> list[str]:
    """Stems of all notebooks that have graded exercises."""
    return sorted({e.notebook for e in EXERCISES.values()})


def get(exercise_id: str) -> Exercise:
    """The exercise with this id, or a KeyError that lists the known ids."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"unknown exercise {exercise_id!r}; known: {', '.join(EXERCISES)}") from None
