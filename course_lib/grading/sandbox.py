"""Every lesson: the grader's sandbox, one untrusted exercise cell in a process that cannot reach out.

Each job runs `python -I course_lib/grading/runner.py` with a scrubbed environment, its own empty working
directory and HOME, resource limits (address space, CPU seconds, open files, file size, no core dumps), the job
on stdin, and its results on a pipe whose size is capped. Where the machine has user namespaces (Linux with
util-linux's `unshare`), the job also gets its own PID, network and mount namespaces: no network, the whole
file system read-only except a private scratch folder (its working directory), and every process it
starts dies with it (a forked, `setsid` child included). Elsewhere the grader becomes a child subreaper and
kills whatever a job leaves behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

RUNNER = Path(__file__).with_name("runner.py")
MAX_RESULT_BYTES = 64 * 2**20  # what a job may send back
MAX_LOG_BYTES = 64 * 2**10  # the tail of its output that is kept
MAX_FILE_BYTES = 64 * 2**20  # the largest file it may write
MAX_ADDRESS_SPACE = 6 * 2**30  # torch maps about 1 GiB on import; an exercise needs far less than this
MAX_OPEN_FILES = 256
TRAP_MARK = "reference-trap"  # in the message of a disarmed reference (runner.disarm); the grader looks for it
FRAME = struct.Struct(">I")  # each record on the result pipe: a 4-byte length, then a torch.save payload

# Inside the namespaces: every mount read-only, a private tmpfs on the job's own folder ($1; the course and its
# Python may live under /tmp, so /tmp itself stays as it is, read-only), then a nested user namespace so that the
# read-only flags are locked and the job cannot remount them.
_NAMESPACE_SETUP = """
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$m" in /proc*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null
done
mount -t tmpfs -o size=64m,mode=700 tmpfs "$1" || exit 97
cd "$1" || exit 97
shift
exec unshare --user --map-root-user --mount -- "$@"
"""
_UNSHARE = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--net", "--kill-child"]


@dataclass
class JobOutcome:
    """What came back from one job: its records (flags, then the result), the tail of its output, and why it
    ended."""

    records: list[bytes] = field(default_factory=list)
    log: str = ""
    returncode: int | None = None
    timed_out: bool = False
    problem: str = ""  # the channel itself misbehaved: too much data, a malformed record


@cache
def namespaces_available() -> bool:
    """Whether this machine lets an unprivileged process make user, PID, network and mount namespaces."""
    if os.environ.get("COURSE_GRADER_NO_NAMESPACES") or sys.platform != "linux" or not shutil.which("unshare"):
        return False
    probe = tempfile.mkdtemp(prefix="grade-probe-")
    try:
        done = subprocess.run(
            [*_UNSHARE, "sh", "-c", _NAMESPACE_SETUP, "sh", probe, "sh", "-c", "! touch /etc/.course-probe"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return done.returncode == 0


def isolation() -> str:
    """One line saying which isolation the grader's children run under on this machine."""
    common = "python -I, scrubbed environment, own working directory and HOME, limits on memory, CPU, files"
    if namespaces_available():
        return (
            "namespaces (user, pid, net, mount): no network, read-only file system but a private 64 MB scratch "
            f"folder; {common}"
        )
    return (
        f"process isolation only (no user namespaces here: the network and the file system stay reachable); "
        f"{common}; leftover processes killed"
    )


def _limits(timeout: float) -> None:
    """In the child, before exec: resource limits (inherited by everything it starts)."""
    import resource

    cpu = int(timeout) + 2
    for limit, value in (
        (resource.RLIMIT_AS, MAX_ADDRESS_SPACE),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
        (resource.RLIMIT_FSIZE, MAX_FILE_BYTES),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def _environment(home: str) -> dict[str, str]:
    """The child's whole environment: nothing of the grader's (tokens, sockets, paths) leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COURSE_DEVICE": "cpu",
        "MPLBACKEND": "Agg",
    }


def _drain(pipe: BinaryIO, keep: bytearray, cap: int, tail_only: bool, overflow: threading.Event) -> None:
    """Read a pipe to its end; keep at most `cap` bytes (the first ones, or with `tail_only` the last ones)."""
    with pipe:
        while chunk := pipe.read1(65536):
            keep += chunk
            if len(keep) > cap:
                if tail_only:
                    del keep[:-cap]
                else:
                    overflow.set()
                    del keep[cap:]
                    return


def split_records(data: bytes) -> list[bytes] | None:
    """The length-prefixed records of a result stream, or None if it is malformed."""
    records, at = [], 0
    while at < len(data):
        if at + FRAME.size > len(data):
            return None
        (size,) = FRAME.unpack_from(data, at)
        at += FRAME.size
        if at + size > len(data):
            return None
        records.append(data[at : at + size])
        at += size
    return records


def run_job(job: dict, timeout: float) -> JobOutcome:
    """Run one exercise job in the sandbox; never raises for anything the job does."""
    result_read, result_write = os.pipe()
    home = tempfile.mkdtemp(prefix="grade-job-")
    command = [sys.executable, "-I", str(RUNNER), str(result_write)]
    if namespaces_available():
        command = [*_UNSHARE, "sh", "-c", _NAMESPACE_SETUP, "sh", home, *command]
    outcome, result, log, overflow = JobOutcome(), bytearray(), bytearray(), threading.Event()
    try:
        with _lock:  # registered before the reaper can see it
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=home,
                env=_environment(home),
                pass_fds=(result_write,),
                start_new_session=True,
                preexec_fn=lambda: _limits(timeout),
            )
            _running.add(proc.pid)
    except OSError as err:
        os.close(result_read)
        os.close(result_write)
        outcome.problem = f"could not start the job: {err}"
        return outcome
    os.close(result_write)
    results_pipe, log_pipe = os.fdopen(result_read, "rb"), proc.stdout
    readers = [
        threading.Thread(target=_drain, args=(results_pipe, result, MAX_RESULT_BYTES, False, overflow), daemon=True),
        threading.Thread(target=_drain, args=(log_pipe, log, MAX_LOG_BYTES, True, threading.Event()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not overflow.is_set():
            time.sleep(0.02)
        outcome.timed_out = proc.poll() is None and not overflow.is_set()
    finally:
        _kill_group(proc)
        with _lock:
            _running.discard(proc.pid)
        if not namespaces_available():
            reap_orphans()
        for reader in readers:
            reader.join(timeout=2)  # an escaped process that keeps a pipe open cannot hold the grader
        shutil.rmtree(home, ignore_errors=True)
    outcome.returncode = proc.returncode
    outcome.log = log.decode("utf-8", "replace")
    if overflow.is_set():
        outcome.problem = f"sent back more than {MAX_RESULT_BYTES // 2**20} MiB; stopped"
    else:
        records = split_records(bytes(result))
        if records is None:
            outcome.problem = "the result stream was malformed (written over by the cell?)"
        else:
            outcome.records = records
    return outcome


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it cannot be ignored), then reap it. In namespaces, the PID
    namespace dies with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# --- the subreaper: what a job leaves behind when there are no namespaces ------------------------------------

_PR_SET_CHILD_SUBREAPER = 36
_lock = threading.Lock()
_running: set[int] = set()  # the jobs' own processes, which the reaper leaves alone
_before: set[int] = set()  # children this process had before grading began: not the grader's to kill


def become_subreaper(on: bool = True) -> bool:
    """Make this process the parent of any orphan its children leave (Linux only); -> whether it worked."""
    global _before
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if ok and on:
        _before = set(_children_of(os.getpid()))
    return ok


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def reap_orphans() -> int:
    """Kill and reap every child of this process that is neither a running job nor older than the grading:
    orphans that a job left behind and that were re-parented to us (a double fork, a `setsid`). -> how many."""
    if sys.platform != "linux":
        return 0
    killed = 0
    with _lock:  # no job starts while the children are listed
        for pid in _children_of(os.getpid()):
            if pid in _running or pid in _before:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                killed += 1
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass
    return killed
