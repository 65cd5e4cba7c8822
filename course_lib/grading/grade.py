"""Every lesson: grade a folder of submitted notebooks, each exercise in its own sandboxed subprocess.

    python -m course_lib.grade SUBMISSIONS_DIR [--timeout S] [--json FILE] [--csv FILE] [--seed N] [--jobs N]

SUBMISSIONS_DIR holds one folder per student (alice/00_foundations.ipynb) or notebooks named after
students (alice.ipynb, alice_00_foundations.ipynb). Only exercise cells are run; check cells and
everything else in the notebook are ignored. Exit status is non-zero only if the grader itself fails.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import secrets
import stat
import sys
import threading
import time
import types
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from course_lib.grading import registry, sandbox, shipping, wire
from course_lib.grading.execute import NOT_IMPLEMENTED, dynamic_access, forbidden_uses, run_cases
from course_lib.grading.notebook import NotebookError, cell_source, defines, exercise_meta, notebook_stem, read_notebook
from course_lib.grading.spec import Case, Exercise, compare

MAX_MESSAGE = 300  # characters of one message from a job: reports carry what the student wrote, briefly
NEEDS_REVIEW = "needs review"  # found the answer at run time, or tried to: zero points, and the instructor looks


@dataclass
class Score:
    points: float
    max: float
    status: str
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"points": round(self.points, 4), "max": self.max, "status": self.status, "messages": self.messages}


# --- finding submissions -----------------------------------------------------------------------


MAX_DEPTH = 6  # folders inside a student's folder
MAX_FILES = 2000  # entries looked at in one student's folder


@dataclass
class Submission:
    student: str
    stem: str | None
    path: Path
    problem: str = ""  # why this submission cannot be graded (it becomes the student's error rows)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _notebooks_in(folder: Path, root: Path, warnings: list[str]) -> list[Path]:
    """The regular .ipynb files under a student's folder: no links followed, depth and count capped."""
    found, seen = [], 0
    for parent, dirs, files in os.walk(folder, followlinks=False, onerror=lambda err: None):
        depth = len(Path(parent).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
        for name in sorted(files + [d for d in dirs if d.endswith(".ipynb")]):
            seen += 1
            if seen > MAX_FILES:
                warnings.append(f"{folder.relative_to(root)}/: more than {MAX_FILES} files; the rest skipped")
                return found
            path = Path(parent) / name
            if not name.endswith(".ipynb"):
                continue
            if not _regular(path):
                warnings.append(f"{path.relative_to(root)}: not a regular file (a folder, link or device; skipped)")
                continue
            found.append(path)
    return found


def find_submissions(root: Path) -> tuple[list[Submission], list[str]]:
    """Every notebook under `root`, with its student and course notebook; plus warnings for what was skipped.

    Only regular files are read, never through a link; a notebook that cannot be read still becomes its
    student's row (unreadable), and two files that claim the same student and notebook become an error row."""
    known = registry.notebooks()
    found: list[Submission] = []
    warnings: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        mode = os.lstat(entry).st_mode
        if stat.S_ISLNK(mode):
            warnings.append(f"{entry.name}: a symbolic link (skipped: submissions must be files in the folder)")
        elif stat.S_ISDIR(mode) and entry.suffix != ".ipynb":
            paths = [p for p in _notebooks_in(entry, root, warnings) if ".ipynb_checkpoints" not in p.parts]
            if not paths:
                warnings.append(f"{entry.name}/: no notebooks")
            found += [Submission(entry.name, None, p) for p in paths]
        elif entry.suffix == ".ipynb" and not stat.S_ISREG(mode):
            warnings.append(f"{entry.name}: not a regular file (a folder, FIFO or device; skipped)")
        elif entry.suffix == ".ipynb":
            student = entry.stem
            for stem in known:
                student = student.replace(stem, "")
            found.append(Submission(student.strip("_- .") or entry.stem, None, entry))
    for sub in found:
        try:
            nb = read_notebook(sub.path)
        except Exception as err:  # noqa: BLE001 - whatever the file is, it is this student's problem only
            nb, sub.problem = {}, str(err) if isinstance(err, NotebookError) else f"{sub.path.name}: {short(err)}"
        sub.stem = notebook_stem(nb, sub.path, known) or (known[0] if len(known) == 1 else None)
    kept: dict[tuple[str, str], Submission] = {}
    for sub in found:
        if sub.stem is None:
            warnings.append(f"{sub.path.relative_to(root)}: not a course notebook with graded exercises (skipped)")
            continue
        key = (sub.student, sub.stem)
        if key in kept:
            first = kept[key]
            names = sorted({str(first.path.relative_to(root)), str(sub.path.relative_to(root))})
            first.problem = f"two submissions of {sub.stem} ({', '.join(names)}): none graded; keep one and grade again"
            warnings.append(f"{sub.student}: {first.problem}")
            continue
        kept[key] = sub
    return list(kept.values()), warnings


def exercise_sources(nb: dict[str, Any], stem: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """{exercise id: cell source} for the notebook's exercises, plus notes per exercise (duplicates, fallbacks)."""
    wanted = {e.id: e for e in registry.for_notebook(stem)}
    sources: dict[str, str] = {}
    notes: dict[str, list[str]] = {e: [] for e in wanted}
    counts: dict[str, int] = {}
    for cell in nb.get("cells", []):
        meta = exercise_meta(cell) if isinstance(cell, dict) else None
        if meta is None or cell.get("cell_type") != "code":
            continue
        if meta["id"] not in wanted:
            continue
        counts[meta["id"]] = counts.get(meta["id"], 0) + 1
        sources[meta["id"]] = cell_source(cell)  # the last one wins, as when the notebook runs top to bottom
    for exercise_id, n in counts.items():
        if n > 1:
            notes[exercise_id].append(f"{n} cells are marked as this exercise; graded the last one")
    for exercise_id, exercise in wanted.items():
        if exercise_id in sources:
            continue
        candidates = [
            cell_source(c)
            for c in nb.get("cells", [])
            if isinstance(c, dict) and c.get("cell_type") == "code" and defines(cell_source(c), exercise.function)
        ]
        if candidates:
            sources[exercise_id] = candidates[-1]
            notes[exercise_id].append(
                f"no cell carries this exercise's metadata; graded the cell that defines {exercise.function}"
            )
    return sources, notes


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
    helpers = shipping.source_of(others, withheld=exercise.function)
    harness = shipping.source_of([exercise.call], withheld=exercise.function)
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
            "preload": preload,
            "cases": [{"args": list(c.args), "kwargs": c.kwargs} for c in cases],
            "source": source,
        }
    )


def run_in_sandbox(
    exercise: Exercise, source: str, cases: list[Case], timeout: float, unsandboxed: bool = False
) -> tuple[dict | None, str, list[str]]:
    """Run the cell in the sandbox. -> (the result or None, a reason when None, the introspection flags raised)."""
    started = time.monotonic()
    outcome = sandbox.run_job(build_job(exercise, source, cases), timeout, unsandboxed=unsandboxed)
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
        if source is None:
            return Score(0.0, exercise.points, "missing", [f"no cell defines {exercise.function}"] + notes)
        try:
            used = forbidden_uses(source, exercise.forbidden)
        except SyntaxError as err:
            return Score(
                0.0, exercise.points, "error", [f"SyntaxError in the cell, line {err.lineno}: {err.msg}"] + notes
            )
        if used:
            return Score(
                0.0,
                exercise.points,
                "forbidden",
                [f"uses {', '.join(used)}; the exercise asks you to write this yourself"] + notes,
            )
        reaching = dynamic_access(source)
        if reaching:
            why = f"reaches for objects at run time ({', '.join(reaching)}): not graded, reported for review"
            return Score(0.0, exercise.points, NEEDS_REVIEW, [why] + notes)
        expected = self.expected(exercise)
        cases = self._cases[exercise.id]
        result, reason, flags = run_in_sandbox(exercise, source, cases, self.timeout, self.unsandboxed)
        if flags:
            why = f"{'; '.join(flags)} while graded: not graded, reported for review"
            return Score(0.0, exercise.points, NEEDS_REVIEW, [why] + notes)
        if result is None:
            return Score(
                0.0, exercise.points, "timeout" if reason.startswith("timed out") else "error", [reason] + notes
            )
        if result.get("status") in (NOT_IMPLEMENTED, "error"):
            status = result["status"] if result["status"] == NOT_IMPLEMENTED else "error"
            return Score(0.0, exercise.points, status, [str(result.get("message"))[:300]] + notes)
        got_cases = result["cases"]
        if len(got_cases) != len(expected):
            return Score(
                0.0, exercise.points, "error", ["the result file was tampered with (wrong number of cases)"] + notes
            )
        passed, messages, not_impl = 0, [], 0
        for want, got in zip(expected, got_cases):
            if not isinstance(got, dict):
                messages.append(f"[{want.case.name}] result was tampered with")
                continue
            error = got.get("error")
            if error == NOT_IMPLEMENTED:
                not_impl += 1
            problem = (
                str(error) if error else compare(want.value, got.get("value"), atol=exercise.atol, rtol=exercise.rtol)
            )
            if problem:
                messages.append(f"[{want.case.name}] inputs {want.case.shapes()}: {problem[:MAX_MESSAGE]}")
            else:
                passed += 1
        total = len(expected)
        if any(sandbox.TRAP_MARK in m for m in messages):
            why = "called the exercise's reference, found at run time: not graded, reported for review"
            return Score(0.0, exercise.points, NEEDS_REVIEW, [why] + notes)
        if passed == 0 and not_impl:
            return Score(
                0.0, exercise.points, NOT_IMPLEMENTED, ["the function still raises NotImplementedError"] + notes
            )
        status = "passed" if passed == total else ("partial" if passed else "failed")
        points = exercise.points * passed / total
        return Score(points, exercise.points, status, messages + notes)

    def grade_submission(self, sub: Submission, jobs: int) -> dict[str, Score]:
        if sub.stem is None:
            raise ValueError(f"{sub.path} is not a course notebook with graded exercises")
        exercises = registry.for_notebook(sub.stem)
        if sub.problem:
            status = "error" if sub.problem.startswith("two submissions") else "unreadable"
            return {e.id: Score(0.0, e.points, status, [sub.problem]) for e in exercises}
        try:
            nb = read_notebook(sub.path)
        except NotebookError as err:
            return {e.id: Score(0.0, e.points, "unreadable", [str(err)]) for e in exercises}
        sources, notes = exercise_sources(nb, sub.stem)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {e.id: pool.submit(self.guarded, e, sources.get(e.id), notes[e.id]) for e in exercises}
        return {k: f.result() for k, f in futures.items()}

    def guarded(self, exercise: Exercise, source: str | None, notes: list[str]) -> Score:
        """`grade_exercise`, but whatever goes wrong becomes this exercise's error, never the run's."""
        try:
            return self.grade_exercise(exercise, source, notes)
        except Exception as err:  # noqa: BLE001 - one bad job must not stop a class's run
            return Score(0.0, exercise.points, "error", [f"the grader could not grade this: {short(err)}"] + notes)


# --- reporting ----------------------------------------------------------------------------------


def short(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:200]}"


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
        full = sum(s.status == "passed" for s in scores)
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
                            s.status,
                            s.messages[0] if s.messages else "",
                        ]
                    )


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
                    e.id: Score(0.0, e.points, "error", [f"not graded: {short(err)}"])
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
