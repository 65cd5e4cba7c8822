"""Every lesson: the grader's reports: a table for the terminal and a CSV for a spreadsheet, both safe to open."""

from __future__ import annotations

import csv
import io
import unicodedata
from pathlib import Path

from course_tools.grading.verdict import Score, Status


def printable(text: str) -> str:
    """The text without control characters (terminal escapes, carriage returns), each shown as a space."""
    return "".join(" " if unicodedata.category(c)[0] == "C" else c for c in str(text))


def spreadsheet_safe(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string that starts like a formula gets a leading apostrophe."""
    if isinstance(value, str):
        value = printable(value)
        if value[:1] in ("=", "+", "-", "@"):
            return "'" + value
    return value


def report_table(results: dict[str, dict[str, dict[str, Score]]], isolation: str = "") -> str:
    out = io.StringIO()
    if isolation:
        print(isolation, file=out)
    for student, notebooks in results.items():
        got = sum(s.points for nb in notebooks.values() for s in nb.values())
        best = sum(s.max for nb in notebooks.values() for s in nb.values())
        print(f"\n{printable(student)}: {got:g} / {best:g}", file=out)
        print(f"  {'notebook':<16} {'exercise':<18} {'status':<16} {'points':>9}  first reason", file=out)
        for stem, scores in notebooks.items():
            for exercise_id, s in scores.items():
                reason = printable(s.messages[0]) if s.messages else ""
                reason = reason if len(reason) <= 110 else reason[:107] + "..."
                print(f"  {stem:<16} {exercise_id:<18} {s.status:<16} {s.points:>4.2g}/{s.max:<4g}  {reason}", file=out)
    print("\nsummary", file=out)
    totals = {
        st: (
            sum(s.points for nb in nbs.values() for s in nb.values()),
            sum(s.max for nb in nbs.values() for s in nb.values()),
        )
        for st, nbs in results.items()
    }
    for student, (got, best) in totals.items():
        print(f"  {printable(student):<24} {got:>6g} / {best:g}", file=out)
    by_exercise: dict[str, list[Score]] = {}
    for nbs in results.values():
        for scores in nbs.values():
            for exercise_id, s in scores.items():
                by_exercise.setdefault(exercise_id, []).append(s)
    for exercise_id, scores in by_exercise.items():
        full = sum(s.status == Status.PASSED for s in scores)
        print(f"  {exercise_id:<24} full marks {full}/{len(scores)}", file=out)
    return out.getvalue()


def write_csv(results: dict[str, dict[str, dict[str, Score]]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "exercise", "points", "max", "status", "message"])
        for student, nbs in results.items():
            for stem, scores in nbs.items():
                for exercise_id, s in scores.items():
                    writer.writerow(
                        spreadsheet_safe(cell)
                        for cell in [
                            student,
                            stem,
                            exercise_id,
                            round(s.points, 4),
                            s.max,
                            str(s.status),
                            s.messages[0] if s.messages else "",
                        ]
                    )
