"""Every lesson: grade a folder of submitted notebooks, each exercise in its own sandboxed subprocess.

    python -m course_lib.grade SUBMISSIONS_DIR [--timeout S] [--json FILE] [--csv FILE] [--seed N] [--jobs N]
                                               [--unsandboxed]

The pieces, in the order a run meets them: `discovery` finds the submissions and their exercise cells; here the
grader builds each exercise's cases and reference answers (trusted, in this process), `shipping` and `wire`
make the job, `sandbox` runs it under bubblewrap (`runner` is the job's side), `judge` screens the cell and
classifies what came back (the same judgement `check(...)` gives in the notebook), `report` writes the table
and the CSV. Without bubblewrap the grader refuses unless `--unsandboxed` (or COURSE_GRADER_UNSANDBOXED=1).

SUBMISSIONS_DIR holds one folder per student (alice/00_foundations.ipynb) or notebooks named after
students (alice.ipynb, alice_00_foundations.ipynb). Only exercise cells are run; check cells and
everything else in the notebook are ignored. Exit status is non-zero only if the grader itself fails.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from course_lib.grading import registry, sandbox, shipping, wire
from course_lib.grading.discovery import MAX_CELL, Submission, exercise_sources, find_submissions
from course_lib.grading.execute import NOT_IMPLEMENTED, run_cases
from course_lib.grading.judge import MAX_MESSAGE, judge, screen, trap_message
from course_lib.grading.notebook import NotebookError, read_notebook
from course_lib.grading.report import printable, report_table, write_csv
from course_lib.grading.spec import Case, Exercise
from course_lib.grading.verdict import Score, Status, short

# --- finding submissions -----------------------------------------------------------------------


# --- running one exercise ------------------------------------------------------------------------


@cache
def _shipped(exercise_id: str) -> tuple[str, str, list[str]]:
    """(helpers, harness, preload): the source a job of this exercise needs, and the library modules its spec
    imports (loaded in the job before disarming, as they were in the spec's process)."""
    exercise = registry.get(exercise_id)
    others = [
        o.reference
        for o in registry.for_notebook(exercise.notebook)
        if o.id != exercise.id and isinstance(o.reference, types.FunctionType)
    ]
    if any(ref.__name__ != o.function for o in registry.for_notebook(exercise.notebook) if (ref := o.reference)):
        raise RuntimeError(f"{exercise.notebook}: every reference must be named as its exercise's function")
    helpers = shipping.source_of(others, withheld=exercise.function, withheld_object=exercise.reference)
    harness = shipping.source_of([exercise.call], withheld=exercise.function, withheld_object=exercise.reference)
    spec = sys.modules[exercise.reference.__module__]
    preload = set()
    for value in vars(spec).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("course_lib.") and not name.startswith(shipping.SPECS):
            preload.add(name)
    return helpers, harness, sorted(preload)


def build_job(exercise: Exercise, source: str, cases: list[Case]) -> bytes:
    """What the sandbox gets for one cell: the cell, the cases, and the code to call it (never the reference)."""
    helpers, harness, preload = _shipped(exercise.id)
    return wire.dumps(
        {
            "function": exercise.function,
            "setup": exercise.setup,
            "helpers": helpers,
            "harness": harness,
            "harness_name": exercise.call.__name__,
            "helper_names": [
                o.function
                for o in registry.for_notebook(exercise.notebook)
                if o.id != exercise.id and isinstance(o.reference, types.FunctionType)
            ],
            "preload": preload,
            "cases": [{"args": list(c.args), "kwargs": c.kwargs} for c in cases],
            "source": source,
        }
    )


_STRIPPED = Path(tempfile.mkdtemp(prefix="course-grader-library-"))
atexit.register(shutil.rmtree, _STRIPPED, ignore_errors=True)


@cache
def library_without(function: str) -> list[tuple[str, str]]:
    """The library's modules that define `function`, as copies in which it raises: the job sees these."""
    return shipping.stripped_library(sandbox.LIBRARY, function, _STRIPPED, trap_message(function))


def run_in_sandbox(
    exercise: Exercise, source: str, cases: list[Case], timeout: float, unsandboxed: bool = False
) -> tuple[dict | None, str, list[str]]:
    """Run the cell in the sandbox. -> (the result or None, a reason when None, the introspection flags raised)."""
    started = time.monotonic()
    job = build_job(exercise, source, cases)
    hidden = library_without(exercise.function) if sandbox.sandboxed() else []
    outcome = sandbox.run_job(job, timeout, unsandboxed=unsandboxed, replacements=hidden)
    deadline = started + timeout + 5  # parsing shares the job's time (the input is capped, the parse linear)
    flags, result = [], None
    for record in outcome.records:
        try:
            value = wire.loads(record, max_bytes=sandbox.MAX_RESULT_BYTES, deadline=deadline)
        except wire.WireError as err:
            return None, f"the result is not plain data and was rejected ({str(err)[:100]})", flags
        if not isinstance(value, dict) or value.get("kind") not in ("flag", "result") or result is not None:
            return None, "the result was tampered with", flags
        if value["kind"] == "flag":
            flags.append(str(value.get("what"))[:200])
        else:
            result = value
    if outcome.timed_out:
        return None, f"timed out after {timeout:g} s (an infinite loop, or far too slow); the process was killed", flags
    if outcome.problem:
        return None, outcome.problem, flags
    if result is None:
        tail = outcome.log.strip().splitlines()
        last = f": {printable(tail[-1])[:200]}" if tail else ""
        return None, f"the process ended (exit status {outcome.returncode}) before reporting a result{last}", flags
    if not isinstance(result.get("cases"), list):
        return None, "the result was tampered with", flags
    return result, "", flags


class Grader:
    def __init__(self, seed: int, timeout: float, unsandboxed: bool = False) -> None:
        self.seed, self.timeout, self.unsandboxed = seed, timeout, unsandboxed
        self._expected: dict[str, list] = {}
        self._cases: dict[str, list[Case]] = {}
        self._lock = threading.Lock()

    def expected(self, exercise: Exercise) -> list:
        """Reference results, computed in this (trusted) process.

        One at a time: harnesses seed torch's global generator to build their inputs, and two
        threads doing that at once would interleave their draws and corrupt each other's references.
        """
        with self._lock:
            return self._expected_locked(exercise)

    def _expected_locked(self, exercise: Exercise) -> list:
        if exercise.id not in self._expected:
            cases = exercise.cases(self.seed)
            self._cases[exercise.id] = [c.fresh() for c in cases]  # what the job gets, untouched by the reference
            outcomes = run_cases(exercise, exercise.reference, cases)
            for o in outcomes:
                if o.error:
                    raise RuntimeError(f"reference for {exercise.id} failed on {o.case.name!r}: {o.error}")
            self._expected[exercise.id] = outcomes
        return self._expected[exercise.id]

    def grade_exercise(self, exercise: Exercise, source: str | None, notes: list[str]) -> Score:
        """Screen the cell, run it in the sandbox, judge what came back (course_lib.grading.judge)."""
        if source is None:
            return Score(0.0, exercise.points, Status.MISSING, [f"no cell defines {exercise.function}"] + notes)
        if len(source) > MAX_CELL:  # parsed here, in the trusted process: its size is bounded first
            why = f"the cell is longer than {MAX_CELL // 1024} KiB; not graded"
            return Score(0.0, exercise.points, Status.ERROR, [why] + notes)
        try:
            screened = screen(exercise, source)
        except SyntaxError as err:
            why = f"SyntaxError in the cell, line {err.lineno}: {err.msg}"
            return Score(0.0, exercise.points, Status.ERROR, [why] + notes)
        if screened is not None:
            status, why = screened
            if status == Status.NEEDS_REVIEW:
                why += ": not graded, reported for review"
            return Score(0.0, exercise.points, status, [why] + notes)
        expected = self.expected(exercise)
        cases = self._cases[exercise.id]
        result, reason, flags = run_in_sandbox(exercise, source, cases, self.timeout, self.unsandboxed)
        if flags:
            why = f"{'; '.join(flags)} while graded: not graded, reported for review"
            return Score(0.0, exercise.points, Status.NEEDS_REVIEW, [why] + notes)
        if result is None:
            status = Status.TIMEOUT if reason.startswith("timed out") else Status.ERROR
            return Score(0.0, exercise.points, status, [reason] + notes)
        if result.get("status") in (NOT_IMPLEMENTED, "error"):
            status = Status.NOT_IMPLEMENTED if result["status"] == NOT_IMPLEMENTED else Status.ERROR
            return Score(0.0, exercise.points, status, [str(result.get("message"))[:MAX_MESSAGE]] + notes)
        verdict = judge(exercise, expected, result["cases"])
        points = exercise.points * verdict.passed / verdict.total
        return Score(points, exercise.points, verdict.status, verdict.messages + notes)

    def grade_submission(self, sub: Submission, jobs: int) -> dict[str, Score]:
        if sub.stem is None:
            raise ValueError(f"{sub.path} is not a course notebook with graded exercises")
        exercises = registry.for_notebook(sub.stem)
        if sub.problem:
            status = Status.ERROR if sub.problem.startswith("two submissions") else Status.UNREADABLE
            return {e.id: Score(0.0, e.points, status, [sub.problem]) for e in exercises}
        try:
            nb = read_notebook(sub.path)
        except NotebookError as err:
            return {e.id: Score(0.0, e.points, Status.UNREADABLE, [str(err)]) for e in exercises}
        sources, notes = exercise_sources(nb, sub.stem)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {e.id: pool.submit(self.guarded, e, sources.get(e.id), notes[e.id]) for e in exercises}
        return {k: f.result() for k, f in futures.items()}

    def guarded(self, exercise: Exercise, source: str | None, notes: list[str]) -> Score:
        """`grade_exercise`, but whatever goes wrong becomes this exercise's error, never the run's."""
        try:
            return self.grade_exercise(exercise, source, notes)
        except Exception as err:  # noqa: BLE001 - one bad job must not stop a class's run
            return Score(0.0, exercise.points, Status.ERROR, [f"the grader could not grade this: {short(err)}"] + notes)


# --- reporting ----------------------------------------------------------------------------------


def grade_folder(
    root: Path, *, seed: int, timeout: float, jobs: int, unsandboxed: bool = False
) -> tuple[dict, list[str]]:
    """Grade every submission under `root`: {student: {notebook: {exercise: Score}}} and warnings."""
    if not sandbox.sandboxed() and not unsandboxed:
        raise RuntimeError(f"no sandbox: {sandbox.sandbox_problem()}; pass --unsandboxed to grade without one")
    submissions, warnings = find_submissions(root)
    grader = Grader(seed, timeout, unsandboxed)
    for stem in {sub.stem for sub in submissions if sub.stem}:
        registry.for_notebook(stem)  # every spec loaded before any student code runs
    results: dict[str, dict[str, dict[str, Score]]] = {}
    reaper = not sandbox.sandboxed() and sandbox.become_subreaper(True)
    try:
        for sub in sorted(submissions, key=lambda s: (s.student, s.stem or "")):
            if sub.stem is None:
                continue
            try:
                scores = grader.grade_submission(sub, jobs)
            except Exception as err:  # noqa: BLE001 - one bad submission must not stop a class's run
                scores = {
                    e.id: Score(0.0, e.points, Status.ERROR, [f"not graded: {short(err)}"])
                    for e in registry.for_notebook(sub.stem)
                }
            results.setdefault(sub.student, {})[sub.stem] = scores
    finally:
        if reaper:  # nothing a job started outlives the run, or touches the report
            sandbox.reap_orphans()
            sandbox.become_subreaper(False)
    return results, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="folder of submissions")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise (default 60)")
    parser.add_argument("--json", type=Path, help="write {student: {notebook: {exercise: {...}}}} here")
    parser.add_argument("--csv", type=Path, help="write one row per student and exercise here")
    parser.add_argument("--seed", type=int, help="seed for the test cases (default: fresh each run, printed)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="exercises graded in parallel")
    parser.add_argument(
        "--unsandboxed",
        action="store_true",
        help="grade even where bubblewrap cannot run (students' code then reaches the network and your files)",
    )
    args = parser.parse_args(argv)
    args.unsandboxed = args.unsandboxed or os.environ.get("COURSE_GRADER_UNSANDBOXED") == "1"
    if not args.submissions.is_dir():
        print(f"error: {args.submissions} is not a folder of submissions", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    line = f"isolation: {sandbox.isolation()}"
    print(line)
    if not sandbox.sandboxed() and not args.unsandboxed:
        print("error: refusing to run students' code without a sandbox; install bubblewrap, or pass --unsandboxed")
        return 2
    results, warnings = grade_folder(
        args.submissions, seed=seed, timeout=args.timeout, jobs=max(1, args.jobs), unsandboxed=args.unsandboxed
    )
    print(f"graded {sum(len(v) for v in results.values())} notebooks of {len(results)} students (seed {seed})")
    for w in warnings:
        print(f"warning: {w}")
    print(report_table(results, line), end="")
    as_dicts = {
        st: {nb: {ex: s.as_dict() for ex, s in scores.items()} for nb, scores in nbs.items()}
        for st, nbs in results.items()
    }
    if args.json:
        args.json.write_text(json.dumps(as_dicts, indent=1) + "\n", encoding="utf-8")
    if args.csv:
        write_csv(results, args.csv)
    return 0
