"""Every lesson: grade a folder of submitted notebooks, each exercise in its own sandboxed subprocess.

    python -m course_tools.grade SUBMISSIONS_DIR [--timeout S] [--json FILE] [--csv FILE] [--seed N] [--jobs N]
                                               [--unsandboxed]

The pieces, in the order a run meets them: `discovery` finds the submissions and their exercise cells; here the
grader builds each exercise's cases and reference answers (trusted, in this process), `shipping` and `wire`
make the job, `sandbox` runs it under bubblewrap (`runner` is the job's side), `scoring` screens the cell and
classifies what came back (the same judgement `check(...)` gives in the notebook), `report` writes the table
and the CSV. Without bubblewrap the grader refuses unless `--unsandboxed` (or COURSE_GRADER_UNSANDBOXED=1).

SUBMISSIONS_DIR holds one folder per student (alice/00_foundations.ipynb) or notebooks named after
students (alice.ipynb, alice_00_foundations.ipynb). Only exercise cells are run; check cells and
everything else in the notebook are ignored. Exit status is non-zero only if the grader itself fails.
"""

from __future__ import annotations

import argparse
import ast
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from course_lib.cores import usable_cores
from course_tools.grading import registry, sandbox, shipping, wire
from course_tools.grading.discovery import MAX_CELL, Submission, exercise_sources, find_submissions
from course_tools.grading.execute import NOT_IMPLEMENTED, run_cases
from course_tools.grading.notebook import NotebookError, read_notebook
from course_tools.grading.report import printable, report_table, write_csv
from course_tools.grading.scoring import MAX_MESSAGE, judge, screen, trap_message
from course_tools.grading.spec import Case, Exercise
from course_tools.grading.verdict import JobResult, Score, Status, short

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
    helpers = shipping.source_of(others, withheld=exercise.function, withheld_object=exercise.reference)
    harness = shipping.source_of([exercise.call], withheld=exercise.function, withheld_object=exercise.reference)
    spec = sys.modules[exercise.reference.__module__]
    preload = set()
    for value in vars(spec).values():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.startswith("course_lib."):  # the specs are in course_tools: never preloaded
            preload.add(name)
    return helpers, harness, sorted(preload)


def build_job(exercise: Exercise, source: str, cases: list[Case], *, alone: bool = True) -> dict:
    """What the sandbox gets for one cell: the cell, the cases, and the code to call it (never the reference).
    A cell graded `alone` also gets the notebook's other references, which it may call; in a bundle it gets none."""
    helpers, harness, preload = _shipped(exercise.id)
    return {
        "exercise": exercise.id,
        "function": exercise.function,
        "trap": list(exercise.trap),
        "setup": exercise.setup,
        "helpers": helpers if alone else "",
        "harness": harness,
        "harness_name": exercise.call.__name__,
        "helper_names": _helper_names(exercise) if alone else [],
        "preload": preload,
        "cases": [{"args": list(c.args), "kwargs": c.kwargs} for c in cases],
        "source": source,
    }


def _helper_names(exercise: Exercise) -> list[str]:
    return [
        o.function
        for o in registry.for_notebook(exercise.notebook)
        if o.id != exercise.id and isinstance(o.reference, types.FunctionType)
    ]


def _names_in(source: str) -> set[str]:
    """Every identifier the source uses or defines (names, attributes, imported names), from its syntax tree."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".")[0])
    return found


def bundled(exercises: list[Exercise], sources: dict[str, str]) -> bool:
    """Whether one job may run these cells, each in a process of its own forked from the job's (see
    runner.run_bundle): only under the sandbox, and only when no cell and no harness names another graded
    function of the notebook, so none needs another exercise's reference (which a bundle never ships)."""
    if len(exercises) < 2 or not sandbox.sandboxed():
        return False
    functions = {e.function for e in registry.for_notebook(exercises[0].notebook)}
    for exercise in exercises:
        others = functions - {exercise.function}
        try:
            used = _names_in(_shipped(exercise.id)[1]) | _names_in(sources[exercise.id])
        except SyntaxError:
            return False
        if used & others:
            return False
    return True


_STRIPPED = Path(tempfile.mkdtemp(prefix="course-grader-library-"))
atexit.register(shutil.rmtree, _STRIPPED, ignore_errors=True)
_stripping = threading.Lock()


@cache
def _library_without(functions: tuple[str, ...]) -> list[tuple[str, str]]:
    return shipping.stripped_library(sandbox.LIBRARY, functions, _STRIPPED, trap_message)


def library_without(functions: tuple[str, ...]) -> list[tuple[str, str]]:
    """The library's modules that define one of `functions`, as copies in which they raise: the job sees these.
    Written once per set, under a lock, so no job mounts a copy another thread is still writing."""
    with _stripping:
        return _library_without(tuple(sorted(functions)))


@dataclass
class Ran:
    """What came back from the sandbox for one exercise: its result, or why there is none, and the flags raised."""

    result: JobResult | None = None
    reason: str = ""
    flags: list[str] = field(default_factory=list)


def run_in_sandbox(
    work: list[tuple[Exercise, str, list[Case]]], timeout: float, unsandboxed: bool = False
) -> dict[str, Ran]:
    """Run one job: a single cell (with its helpers), or with several, a bundle of one notebook's cells, each
    given `timeout` seconds. -> {exercise id: what came back}; an exercise missing from it was not reached."""
    started = time.monotonic()
    alone = len(work) == 1
    payload = {"jobs": [build_job(e, source, cases, alone=alone) for e, source, cases in work]}
    if not alone:
        payload |= {"bundle": True, "timeout": timeout}
    hidden = library_without(tuple(n for e, _, _ in work for n in (e.function, *e.trap))) if sandbox.sandboxed() else []
    outcome = sandbox.run_job(
        wire.dumps(payload), timeout, unsandboxed=unsandboxed, replacements=hidden, stages=len(work)
    )
    deadline = started + sandbox.job_limit(timeout, len(work)) + 5  # parsing shares the job's time (capped, linear)
    ids = [e.id for e, _, _ in work]
    flags: dict[str, list[str]] = {i: [] for i in ids}
    results: dict[str, JobResult] = {}
    ends: dict[str, str] = {}
    timed_out = f"timed out after {timeout:g} s (an infinite loop, or far too slow); the process was killed"

    def settled() -> dict[str, Ran]:
        came_back = {i: Ran(results[i], "", flags[i]) for i in ids if i in results}
        return came_back | {i: Ran(None, ends[i], flags[i]) for i in ids if i not in results and i in ends}

    def everyone(reason: str) -> dict[str, Ran]:
        """A broken stream: a single cell's error. A bundle's stream is written by the job's parent alone, which
        checks and labels each cell's records: what it settled before the break stands, the rest run alone."""
        return {i: Ran(None, reason, flags[i]) for i in ids} if alone else settled()

    for record in outcome.records:
        try:
            value = wire.loads(record, max_bytes=sandbox.MAX_RESULT_BYTES, deadline=deadline)
        except wire.WireError as err:
            return everyone(f"the result is not plain data and was rejected ({str(err)[:100]})")
        exercise = value.get("exercise") if isinstance(value, dict) else None
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind == "ready" and not results and not ends:
            continue
        if not isinstance(exercise, str) or exercise not in flags:
            return everyone("the result was tampered with")
        if kind == "flag":
            flags[exercise].append(str(value.get("what"))[:200])
        elif kind == "result" and exercise not in results:
            try:
                results[exercise] = JobResult.parse(value)
            except ValueError:
                return everyone("the result was tampered with")
        elif kind in ("timeout", "ended") and not alone and exercise not in ends:
            why = str(value.get("why"))[:200]
            ends[exercise] = timed_out if kind == "timeout" else f"the process ended ({why}) before reporting a result"
        else:
            return everyone("the result was tampered with")
    if alone:
        if outcome.timed_out:
            return everyone(timed_out)
        if outcome.problem:
            return everyone(outcome.problem)
        if ids[0] not in results:
            tail = outcome.log.strip().splitlines()
            last = f": {printable(tail[-1])[:200]}" if tail else ""
            return everyone(f"the process ended (exit status {outcome.returncode}) before reporting a result{last}")
    # A bundle's stream is written by the job's parent alone, which labels each cell's records: what it settled
    # stands even if the stream broke later (too much, the parent killed); the cells it did not reach run alone.
    return settled()


class Grader:
    def __init__(self, seed: int, timeout: float, unsandboxed: bool = False) -> None:
        self.seed, self.timeout, self.unsandboxed = seed, timeout, unsandboxed
        self._expected: dict[str, list] = {}
        self._cases: dict[str, list[Case]] = {}
        self._lock = threading.Lock()
        self.bundle_reruns = 0  # exercises a bundle did not settle, run alone (for the bench and the tests)

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

    def screened(self, exercise: Exercise, source: str | None, notes: list[str]) -> Score | None:
        """The score of a cell that is not run (missing, too long, unparsable, caught by the screen), else None."""
        if source is None:
            return Score(0.0, exercise.points, Status.MISSING, [f"no cell defines {exercise.function}"] + notes)
        if len(source) > MAX_CELL:  # parsed here, in the trusted process: its size is bounded first
            why = f"the cell is longer than {MAX_CELL // 1024} KiB; not graded"
            return Score(0.0, exercise.points, Status.ERROR, [why] + notes)
        try:
            found = screen(exercise, source)
        except SyntaxError as err:
            why = f"SyntaxError in the cell, line {err.lineno}: {err.msg}"
            return Score(0.0, exercise.points, Status.ERROR, [why] + notes)
        if found is not None:
            status, why = found
            if status == Status.NEEDS_REVIEW:
                why += ": not graded, reported for review"
            return Score(0.0, exercise.points, status, [why] + notes)
        return None

    def scored(self, exercise: Exercise, ran: Ran, notes: list[str]) -> Score:
        """Judge what came back from the sandbox (course_tools.grading.scoring)."""
        if ran.flags:
            why = f"{'; '.join(ran.flags)} while graded: not graded, reported for review"
            return Score(0.0, exercise.points, Status.NEEDS_REVIEW, [why] + notes)
        result = ran.result
        if result is None:
            status = Status.TIMEOUT if ran.reason.startswith("timed out") else Status.ERROR
            return Score(0.0, exercise.points, status, [ran.reason] + notes)
        if result.status in (NOT_IMPLEMENTED, "error"):
            status = Status.NOT_IMPLEMENTED if result.status == NOT_IMPLEMENTED else Status.ERROR
            return Score(0.0, exercise.points, status, [result.message[:MAX_MESSAGE]] + notes)
        verdict = judge(exercise, self.expected(exercise), result.cases)
        points = exercise.points * verdict.passed / verdict.total
        return Score(points, exercise.points, verdict.status, verdict.messages + notes)

    def grade_exercise(self, exercise: Exercise, source: str | None, notes: list[str]) -> Score:
        """Screen the cell, run it alone in the sandbox, judge what came back."""
        early = self.screened(exercise, source, notes)
        if early is not None:
            return early
        work = [(exercise, source, self._cases_of(exercise))]
        return self.scored(exercise, run_in_sandbox(work, self.timeout, self.unsandboxed)[exercise.id], notes)

    def grade_submission(self, sub: Submission) -> dict[str, Score]:
        """Every exercise of one notebook: the cells that pass the screen run in one job when `bundled` allows it
        (one start-up of Python and torch instead of one per exercise), each cell in a process of its own; an
        exercise the bundle did not reach (the job died, or its stream broke) runs alone."""
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
        scores: dict[str, Score] = {}
        to_run = []
        for e in exercises:
            early = self.screened(e, sources.get(e.id), notes[e.id])
            if early is not None:
                scores[e.id] = early
            else:
                to_run.append(e)
        if bundled(to_run, sources):
            try:
                work = [(e, sources[e.id], self._cases_of(e)) for e in to_run]
                came_back = run_in_sandbox(work, self.timeout, self.unsandboxed)
            except Exception:  # noqa: BLE001 - each exercise is then tried alone, where its error is reported
                came_back = {}
            for e in to_run:
                if e.id in came_back:
                    scores[e.id] = self.guarded(self.scored, e, came_back[e.id], notes[e.id])
            with self._lock:
                self.bundle_reruns += sum(e.id not in scores for e in to_run)
        for e in to_run:
            if e.id not in scores:
                scores[e.id] = self.guarded(self.grade_exercise, e, sources.get(e.id), notes[e.id])
        return {e.id: scores[e.id] for e in exercises}

    def _cases_of(self, exercise: Exercise) -> list[Case]:
        self.expected(exercise)
        return self._cases[exercise.id]

    def guarded(self, grade: Callable[..., Score], exercise: Exercise, *args: object) -> Score:
        """`grade(exercise, ...)`, but whatever goes wrong becomes this exercise's error, never the run's."""
        try:
            return grade(exercise, *args)
        except Exception as err:  # noqa: BLE001 - one bad job must not stop a class's run
            notes = args[-1] if args and isinstance(args[-1], list) else []
            return Score(0.0, exercise.points, Status.ERROR, [f"the grader could not grade this: {short(err)}"] + notes)


# --- reporting ----------------------------------------------------------------------------------


def grade_folder(
    root: Path, *, seed: int, timeout: float, jobs: int, unsandboxed: bool = False
) -> tuple[dict, list[str], int]:
    """Grade every submission under `root`: {student: {notebook: {exercise: Score}}}, warnings, and how many
    exercises a bundle did not settle and were run alone."""
    if not sandbox.sandboxed() and not unsandboxed:
        raise RuntimeError(f"no sandbox: {sandbox.sandbox_problem()}; pass --unsandboxed to grade without one")
    submissions, warnings = find_submissions(root)
    grader = Grader(seed, timeout, unsandboxed)
    for stem in {sub.stem for sub in submissions if sub.stem}:
        registry.for_notebook(stem)  # every spec loaded before any student code runs
    results: dict[str, dict[str, dict[str, Score]]] = {}
    reaper = not sandbox.sandboxed() and sandbox.become_subreaper(True)
    try:
        ordered = sorted((s for s in submissions if s.stem), key=lambda s: (s.student, s.stem))
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # one submission per slot at a time
            graded = list(pool.map(lambda sub: _graded(grader, sub), ordered))
        for sub, scores in zip(ordered, graded):
            results.setdefault(sub.student, {})[sub.stem] = scores
    finally:
        if reaper:  # nothing a job started outlives the run, or touches the report
            sandbox.reap_orphans()
            sandbox.become_subreaper(False)
    return results, warnings, grader.bundle_reruns


def _graded(grader: Grader, sub: Submission) -> dict[str, Score]:
    try:
        return grader.grade_submission(sub)
    except Exception as err:  # noqa: BLE001 - one bad submission must not stop a class's run
        why = [f"not graded: {short(err)}"]
        return {e.id: Score(0.0, e.points, Status.ERROR, why) for e in registry.for_notebook(sub.stem)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="folder of submissions")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise (default 60)")
    parser.add_argument("--json", type=Path, help="write {student: {notebook: {exercise: {...}}}} here")
    parser.add_argument("--csv", type=Path, help="write one row per student and exercise here")
    parser.add_argument("--seed", type=int, help="seed for the test cases (default: fresh each run, printed)")
    parser.add_argument("--jobs", type=int, default=usable_cores(), help="submissions graded in parallel")
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
    results, warnings, alone = grade_folder(
        args.submissions, seed=seed, timeout=args.timeout, jobs=max(1, args.jobs), unsandboxed=args.unsandboxed
    )
    print(f"graded {sum(len(v) for v in results.values())} notebooks of {len(results)} students (seed {seed})")
    if alone:
        warnings.append(f"{alone} exercises ran in jobs of their own after their notebook's job ended early")
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


if __name__ == "__main__":
    sys.exit(main())
