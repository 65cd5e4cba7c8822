"""Every lesson: how many cores this process may really use (device.set_threads, the test run, the grader). No
torch here, so that the count can be taken before torch starts its threads."""

from __future__ import annotations

import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2: "<quota> <period>" in microseconds, or "max <period>"


def usable_cores() -> int:
    """The cores this process may really use: those it is allowed to run on, capped by a cgroup CPU quota (a
    container limited to 2 CPUs on a 64-core host sees 64 in os.cpu_count(); 64 threads on 2 CPUs spin and wait)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = open(CGROUP_CPU_MAX, encoding="ascii").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)
