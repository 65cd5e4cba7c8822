"""Every lesson: the grader's child process, run ONE exercise cell of ONE submission on seeded cases, save plain
results.

    python -m course_lib.grading.runner JOB.json

This process runs untrusted code. It decides nothing: it only writes what the function returned
(plain tensors and numbers, via torch.save) to the path in the job. The parent loads that file with
`torch.load(weights_only=True)` and does every comparison itself, so nothing done in here (patching
torch, lying objects, forged files) can award points.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import re
import sys

import torch

from course_lib.grading import registry
from course_lib.grading.execute import NOT_IMPLEMENTED, run_cases, short_error

_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)


def without_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (`%time`, `!pip ...`) so the cell is plain Python."""
    return _MAGIC.sub(r"\1pass  # \2", source)


def run_job(job: dict) -> dict:
    exercise = registry.get(job["exercise"])
    cases = exercise.cases(int(job["seed"]))  # made before any student code runs
    namespace: dict = {"__name__": "__exercise__", "__builtins__": builtins}
    exec(exercise.setup, namespace)
    for other in registry.for_notebook(exercise.notebook):
        if other.id != exercise.id:
            namespace[other.function] = other.reference  # reference versions: one failure does not cascade
    source = without_magics(job["source"])
    linecache.cache["<exercise cell>"] = (len(source), None, source.splitlines(keepends=True), "<exercise cell>")
    try:
        exec(compile(source, "<exercise cell>", "exec"), namespace)
    except NotImplementedError:
        return {"status": NOT_IMPLEMENTED, "message": "the cell still raises NotImplementedError", "cases": []}
    except BaseException as err:  # noqa: BLE001 - SystemExit included
        return {"status": "error", "message": f"running the cell raised {short_error(err)}", "cases": []}
    fn = namespace.get(exercise.function)
    if not callable(fn):
        return {
            "status": "error",
            "message": f"the cell does not define a function named {exercise.function}",
            "cases": [],
        }
    try:
        outcomes = run_cases(exercise, fn, cases)
    except BaseException as err:  # noqa: BLE001
        return {"status": "error", "message": f"stopped the run: {short_error(err)}", "cases": []}
    return {"status": "ran", "message": "", "cases": [{"value": o.value, "error": o.error} for o in outcomes]}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    torch.set_num_threads(1)
    result = run_job(job)
    tmp = job["out"] + ".tmp"
    torch.save(result, tmp)
    os.replace(tmp, job["out"])
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a student's atexit handler or __del__ cannot change anything


if __name__ == "__main__":
    main()
