"""Root pytest hooks: print how long each notebook took, so the CI budget is watched on every run."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

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


def pytest_collection_modifyitems(items):
    """nbval waits only 5 s for a cell's output messages after the cell ends; on a busy 2-core machine
    a long training cell's last messages can take longer, so allow a minute (cells still end on
    --nbval-cell-timeout)."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
