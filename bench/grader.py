"""The grader: a class of 30 students handing in lesson 00's solutions, graded with --jobs 2 (each notebook's four
cells in one job), and the sandbox's start-up cost per job (bubblewrap and a Python that imports torch, against the
same Python started bare).

python bench/grader.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit

from course_tools.grade import grade_folder
from course_tools.grading import sandbox
from course_tools.grading.verdict import Status

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = 30
START = [sys.executable, "-I", "-c", "import torch, course_tools.grading.runner"]


def start_seconds(command: list[str], repeats: int = 5) -> float:
    """The median wall time of starting `command` and waiting for it."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, preexec_fn=lambda: __import__("os").umask(0o022))
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    solution = (ROOT / "solutions" / "00_foundations.ipynb").read_text()
    with tempfile.TemporaryDirectory() as folder:
        subs = Path(folder) / "subs"
        for i in range(STUDENTS):
            (subs / f"student{i:02d}").mkdir(parents=True)
            (subs / f"student{i:02d}" / "00_foundations.ipynb").write_text(solution)
        started = time.perf_counter()
        grades, _, alone = grade_folder(subs, seed=0, timeout=60, jobs=2, unsandboxed=not sandbox.sandboxed())
        seconds = time.perf_counter() - started
    full = sum(all(s.status == Status.PASSED for s in nb["00_foundations"].values()) for nb in grades.values())
    for student, nbs in grades.items():
        for exercise, s in nbs["00_foundations"].items():
            if s.status != Status.PASSED:
                print(f"{student} {exercise}: {s.status} {s.messages[:1]}", file=sys.stderr)
    bare = start_seconds(START)
    boxed = start_seconds([*sandbox._bwrap(sandbox.JOB_UIDS[0] if sandbox._as_root() else None), *START])
    emit(
        "grader",
        isolation=sandbox.isolation(),
        students=STUDENTS,
        jobs=2,
        students_with_full_marks=full,
        exercises_run_alone_after_a_bundle=alone,
        grading_seconds=round(seconds, 1),
        seconds_per_notebook_job=round(seconds * 2 / STUDENTS, 2),
        start_bare_python_torch_s=round(bare, 2),
        start_in_bubblewrap_s=round(boxed, 2),
        sandbox_overhead_per_job_s=round(boxed - bare, 3),
    )


if __name__ == "__main__":
    main()
