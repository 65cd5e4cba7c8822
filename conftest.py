"""Root pytest hooks: print how long each notebook took, so the CI budget is watched on every run; with
$COURSE_RECORD_OUTPUTS set to a folder, also write each notebook cell's text outputs there (one file a notebook),
so a run on another machine can be set beside the committed outputs (`make test-portability` does)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from course_lib.cores import usable_cores

# One OpenMP/MKL thread per core this process may really use, for pytest and for every notebook kernel it starts
# (they inherit the environment): on a container limited to 2 CPUs of a big host, the libraries would otherwise
# start a thread per host core. A value already set wins.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, str(usable_cores()))

_NOTEBOOK_SECONDS: dict[str, float] = defaultdict(float)
_NOTEBOOK_FAILED: set[str] = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _NOTEBOOK_SECONDS[path] += report.duration  # setup (kernel start) + every cell
        if report.failed:
            _NOTEBOOK_FAILED.add(path)


def pytest_terminal_summary(terminalreporter):
    if not _NOTEBOOK_SECONDS:
        return
    tr = terminalreporter
    tr.section("notebook execution times")
    for path, seconds in sorted(_NOTEBOOK_SECONDS.items()):
        tr.write_line(f"{path:<50} {seconds:8.1f} s  {'FAILED' if path in _NOTEBOOK_FAILED else 'ok'}")
    total = sum(_NOTEBOOK_SECONDS.values())
    tr.write_line(f"{'total':<50} {total:8.1f} s  ({total / 60:.1f} min)")
    out = Path("build")
    out.mkdir(exist_ok=True)
    (out / "notebook_times.json").write_text(json.dumps(dict(sorted(_NOTEBOOK_SECONDS.items())), indent=1) + "\n")


def pytest_runtest_makereport(item, call):
    folder = os.environ.get("COURSE_RECORD_OUTPUTS")
    outputs = getattr(item, "test_outputs", None)  # nbval's cell items keep what the kernel sent
    if not folder or call.when != "call" or outputs is None:
        return
    path = Path(folder) / (item.nodeid.split("::")[0].replace("/", "__") + ".txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = []
    for output in outputs:
        texts.append("".join(output.get("text", "")) or "".join(output.get("data", {}).get("text/plain", "")))
        if output.get("output_type") == "error":
            texts.append(f"{output.get('ename')}: {output.get('evalue')}")
    with path.open("a", encoding="utf-8") as f:
        f.write(f"## {item.nodeid.split('::', 1)[1]}\n" + "\n".join(t for t in texts if t) + "\n")


def pytest_collection_modifyitems(items):
    """nbval waits only 5 s for a cell's output messages after the cell ends; on a busy 2-core machine
    a long training cell's last messages can take longer, so allow a minute (cells still end on
    --nbval-cell-timeout)."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
