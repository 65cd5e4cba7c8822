"""Every lesson: the grader's sandbox, one untrusted exercise cell in a process that cannot reach out.

Each job runs `python -I course_tools/grading/runner.py` under bubblewrap (`bwrap`, Debian's `bubblewrap`), a
well-kept sandbox tool, with new PID, IPC, UTS, network, mount and cgroup namespaces: no network, no host processes
or sockets, no System V shared memory that outlives it, and every process it starts dies with it (the PID namespace
ends with the job, `--die-with-parent` ends it with the grader). Its file system is only what the job needs,
read-only: /usr, the Python installation and its packages, course_lib and course_tools without the exercise specs (a
tmpfs hides `course_tools/grading/lessons/`, and /dev/null covers any compiled module whose source is gone, such as
the specs' bytecode that an older layout left behind), plus a private scratch folder of 64 MiB; /proc is the job's
own, /proc/sys read-only. The job never runs as root: started by root, bwrap keeps only the right to change uid and
`setpriv` drops to an unprivileged uid of the job's own (no capabilities, no new privileges); started by a user,
bwrap adds a user namespace in which the job keeps that user's uid and cannot make another. Memory and process count
are limited for the job as a whole by a cgroup where the machine lets the grader make one (root, cgroup v1 or v2),
else by RLIMIT_NPROC with the per-process limits (address space, CPU seconds, open files, file size, no core dumps).
The job reads its work on stdin and writes its results, JSON of plain data (course_tools.grading.wire), on a pipe
whose size is capped.

Where bubblewrap cannot run (macOS, Windows, a Linux without it or without user namespaces), the grader says so
and refuses unless told `--unsandboxed`: then jobs get only the process limits, a scrubbed environment and a
child subreaper that kills what they leave behind.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO

import course_lib
import course_tools
from course_tools.grading import seccomp

try:
    import resource  # POSIX only; imported here, never after fork
except ImportError:  # Windows: no sandbox, no limits
    resource = None

RUNNER = Path(__file__).with_name("runner.py")
LIBRARY = Path(course_lib.__file__).resolve().parent  # the reference implementations the cells may call
TOOLS = Path(course_tools.__file__).resolve().parent  # the runner and what it imports
SPECS = TOOLS / "grading" / "lessons"
MAX_RESULT_BYTES = 32 * 2**20  # what a job may send back
MAX_RECORDS = 10_000  # records a job may send back (flags and results)
MAX_LOG_BYTES = 64 * 2**10  # the tail of its output that is kept
MAX_FILE_BYTES = 64 * 2**20  # the largest file it may write
MAX_ADDRESS_SPACE = 6 * 2**30  # per process: torch maps about 1 GiB on import; an exercise needs far less
MAX_JOB_MEMORY = 3 * 2**30  # the whole job, where a cgroup holds it
MAX_JOB_TASKS = 64  # processes and threads of the whole job
MAX_OPEN_FILES = 256
SCRATCH_BYTES = 64 * 2**20
JOB_UIDS = range(61000, 62000)  # as root: each running job gets an unprivileged uid and gid of its own
FRAME = struct.Struct(">I")  # each record on the result pipe: a 4-byte length, then JSON (wire.dumps)


@dataclass
class JobOutcome:
    """What came back from one job: its records (flags, then the result), the tail of its output, and why it
    ended."""

    records: list[bytes] = field(default_factory=list)
    log: str = ""
    returncode: int | None = None
    timed_out: bool = False
    problem: str = ""  # the channel itself misbehaved: too much data, a malformed record


def _as_root() -> bool:
    return sys.platform == "linux" and os.geteuid() == 0


def _mounts() -> list[str]:
    """bwrap's arguments for the job's file system: read-only system, Python and course_lib; nothing else."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/bin", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    roots: list[str] = []
    for path in (
        sys.base_prefix,
        sys.prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        str(LIBRARY),
        str(TOOLS),
    ):
        real = os.path.realpath(path)
        if not real.startswith("/usr/") and real != "/usr" and not any(real.startswith(r + os.sep) for r in roots):
            roots = [r for r in roots if not r.startswith(real + os.sep)] + [real]
    parents = sorted({str(p) for root in roots for p in Path(root).parents if str(p) != "/"}, key=len)
    for parent in parents:  # bwrap would make them 0700, which the job's uid could not pass through
        args += ["--perms", "0755", "--dir", parent]
    for root in roots:
        args += ["--ro-bind", root, root]
    seen = os.path.abspath(sys.prefix)  # a venv reached through a symbolic link
    if os.path.realpath(seen) != seen and not any(seen.startswith(r + os.sep) for r in [*roots, "/usr"]):
        args += ["--symlink", os.path.realpath(seen), seen]
    if SPECS.is_dir():  # the exercise specs hold the graded references: hidden
        args += ["--tmpfs", str(SPECS)]
    for orphan in orphaned_bytecode():
        args += ["--ro-bind", "/dev/null", str(orphan)]
    return args


def orphaned_bytecode() -> list[Path]:
    """Compiled modules under course_lib and course_tools whose source file is gone: an update that moved a
    module leaves its `__pycache__/*.pyc` behind (git does not track them), and the specs' old bytecode holds the
    references. The sandbox covers each with /dev/null."""
    found = []
    for root in (LIBRARY, TOOLS):
        for folder in root.rglob("__pycache__"):
            if folder.is_relative_to(SPECS):
                continue
            for compiled in folder.glob("*.pyc"):
                if not (folder.parent / (compiled.name.split(".")[0] + ".py")).exists():
                    found.append(compiled)
    return sorted(found)


def _covers(replacements: list[tuple[str, str]]) -> list[str]:
    """bwrap's arguments that mount each (copy, original) file over the original, and hide the original's
    compiled form (an empty file where its .pyc was: Python then compiles the copy)."""
    args = []
    for copy, original in replacements:
        args += ["--ro-bind", copy, original]
        path = Path(original)
        for cached in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
            args += ["--ro-bind", "/dev/null", str(cached)]
    return args


@cache
def _filter_file() -> str | None:
    """A file holding the seccomp program (course_tools.grading.seccomp), or None on a machine without one."""
    code = seccomp.program()
    if code is None:
        return None
    folder = tempfile.mkdtemp(prefix="course-grader-seccomp-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, "filter.bpf")
    with open(path, "wb") as f:
        f.write(code)
    return path


def _bwrap(uid: int | None, replacements: list[tuple[str, str]] = (), seccomp_fd: int | None = None) -> list[str]:
    """The bwrap command line that wraps a job (uid: the job's own uid when the grader runs as root;
    replacements: library files mounted over the originals; seccomp_fd: an open file of the filter).

    Started by a user, one bwrap does everything, a user namespace included. Started by root, two: the outer
    one, privileged, builds the job's file system (it can reach a Python under /root, which the job's uid
    could not) and its PID, IPC, UTS, network and cgroup namespaces, keeping only the right to change uid;
    `setpriv` drops to the job's uid with no capabilities; then an inner bwrap, run by that uid, adds the user
    namespace (no further ones: --disable-userns) and the seccomp filter, over the same file system."""
    command = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try"]
    if uid is None:
        command += ["--unshare-user", "--disable-userns"]
        if seccomp_fd is not None:
            command += ["--seccomp", str(seccomp_fd)]
    else:
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    command += ["--die-with-parent", "--new-session", "--hostname", "grader", "--proc", "/proc", "--dev", "/dev"]
    command += ["--remount-ro", "/dev"]  # bwrap's /dev is a tmpfs the job could fill (/dev/shm included)
    # The scratch tmpfs first: a course or a Python that lives under /tmp is then mounted on top of it.
    command += ["--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp"]
    command += [*_mounts(), *_covers(replacements), "--chdir", "/tmp"]
    command.append("--")
    if uid is not None:
        command += [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
        command += ["bwrap", "--unshare-user", "--disable-userns", "--die-with-parent"]
        if seccomp_fd is not None:
            command += ["--seccomp", str(seccomp_fd)]
        command += ["--ro-bind", "/", "/", "--bind", "/tmp", "/tmp", "--dev-bind", "/dev", "/dev"]
        command += ["--bind", "/proc", "/proc", "--chdir", "/tmp", "--"]
    return command


@cache
def sandbox_problem() -> str:
    """Why bubblewrap cannot isolate jobs on this machine ("" when it can): checked once by a probe job."""
    if os.environ.get("COURSE_GRADER_NO_SANDBOX"):
        return "COURSE_GRADER_NO_SANDBOX is set"
    if sys.platform != "linux":
        return f"bubblewrap runs on Linux only (this is {sys.platform})"
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (Debian/Ubuntu: apt install bubblewrap)"
    if _as_root() and not shutil.which("setpriv"):
        return "setpriv (util-linux) is missing: as root the job could not drop to an unprivileged uid"
    probe = [
        sys.executable,
        "-I",
        "-c",
        "import os, course_lib, course_tools, torch; open('/tmp/x', 'w'); os.getuid() or exit(3); "
        "print(course_lib.__file__); print(course_tools.__file__)",
    ]
    try:
        with _filter() as fd:
            done = subprocess.run(
                [*_bwrap(JOB_UIDS[-1] if _as_root() else None, seccomp_fd=fd), *probe],
                capture_output=True,
                timeout=60,
                pass_fds=() if fd is None else (fd,),
                preexec_fn=lambda: os.umask(0o022),
            )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start a job ({type(err).__name__})"
    if done.returncode != 0:
        last = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return f"bubblewrap could not start a job: {last[-1][:200] if last else f'exit status {done.returncode}'}"
    printed = done.stdout.decode(errors="replace").strip().splitlines()[-2:]
    for seen, (name, here) in zip(printed, (("course_lib", LIBRARY), ("course_tools", TOOLS))):
        if Path(seen).resolve().parent != here:  # a second copy (in site-packages) would show the job the specs
            return (
                f"the job imports {name} from {Path(seen).parent}, not from {here}: install one copy (pip install -e .)"
            )
    return ""


@contextmanager
def _filter() -> Iterator[int | None]:
    """An open, inheritable file descriptor of the seccomp program (None where there is none), closed after."""
    path = _filter_file()
    if path is None:
        yield None
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def sandboxed() -> bool:
    """Whether jobs run under bubblewrap here."""
    return not sandbox_problem()


def isolation() -> str:
    """One line saying which isolation the grader's children run under on this machine."""
    if sandboxed():
        who = "an unprivileged uid of its own (setpriv)" if _as_root() else "your uid"
        limit = "a cgroup" if _cgroup_roots() else "RLIMIT_NPROC and per-process limits"
        calls = "no keyrings or new namespaces (seccomp)" if seccomp.program() else "no seccomp filter here"
        return (
            f"bubblewrap: new user, pid, ipc, uts, net, mount namespaces; read-only Python, course_lib and "
            f"course_tools without the exercise specs, 64 MiB private scratch; runs as {who}; {calls}; "
            f"memory and processes held by {limit}"
        )
    return (
        f"NOT SANDBOXED ({sandbox_problem()}): process limits only; the network, the file system and other "
        "processes stay reachable"
    )


# --- a cgroup per job, where the grader may make one --------------------------------------------------------


@cache
def _cgroup_roots() -> tuple[str, ...]:
    """Where job cgroups go: the v2 tree (memory and pids enabled), or v1's memory and pids hierarchies."""
    if not _as_root() or os.environ.get("COURSE_GRADER_NO_CGROUP"):
        return ()
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        wanted = {"memory", "pids"}
        if wanted <= set((base / "cgroup.subtree_control").read_text().split()) and os.access(base, os.W_OK):
            return (str(base),)
        return ()
    roots = tuple(str(base / c) for c in ("memory", "pids"))
    if all(os.path.isdir(r) and os.access(r, os.W_OK) for r in roots):
        return roots
    return ()


class JobCgroup:
    """A memory and process-count limit for one job and everything it starts; `kill` ends them all."""

    def __init__(self, name: str) -> None:
        self.dirs: list[Path] = []
        self.procs: list[int] = []
        try:
            for root in _cgroup_roots():
                folder = Path(root) / name
                folder.mkdir()
                self.dirs.append(folder)
                for file, value in (
                    ("memory.max", MAX_JOB_MEMORY),  # v2
                    ("memory.limit_in_bytes", MAX_JOB_MEMORY),  # v1
                    ("memory.swap.max", 0),
                    ("pids.max", MAX_JOB_TASKS),
                ):
                    if (folder / file).exists():
                        (folder / file).write_text(str(value))
            self.procs = [os.open(d / "cgroup.procs", os.O_WRONLY) for d in self.dirs]
        except OSError:
            self.remove()
            self.dirs = []
            self.procs = []

    def join(self) -> None:
        """In the child, before exec: move this process (and so all it starts) into the cgroup."""
        for fd in self.procs:
            os.write(fd, str(os.getpid()).encode())

    def kill(self) -> None:
        for folder in self.dirs:
            if (folder / "cgroup.kill").exists():
                try:
                    (folder / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            for _ in range(100):
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)

    def remove(self) -> None:
        for fd in getattr(self, "procs", []):
            os.close(fd)
        self.procs = []
        for folder in self.dirs:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


_uids = itertools.cycle(JOB_UIDS)
_uid_lock = threading.Lock()


def _tasks_of(uid: int) -> int:
    """Processes and threads that run as `uid` now (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(entry / "task"))
            except OSError:
                pass
    return count


def _limits(timeout: float, tasks: int | None, cgroup: JobCgroup | None) -> None:
    """In the child, before exec: resource limits (inherited by everything it starts), and its cgroup."""
    if cgroup is not None:
        cgroup.join()
    os.umask(0o022)  # the folders bwrap makes for its mount points must be traversable by the job's uid
    cpu = int(timeout) + 2
    limits = [
        (resource.RLIMIT_AS, MAX_ADDRESS_SPACE),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
        (resource.RLIMIT_FSIZE, MAX_FILE_BYTES),
        (resource.RLIMIT_CORE, 0),
    ]
    if tasks is not None:
        limits.append((resource.RLIMIT_NPROC, tasks))
    for limit, value in limits:
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


def _drain(
    pipe: BinaryIO,
    keep: bytearray,
    cap: int,
    tail_only: bool,
    overflow: threading.Event,
    frames: list[int] | None = None,
) -> None:
    """Read a pipe to its end; keep at most `cap` bytes (the first ones, or with `tail_only` the last ones).
    With `frames` ([count, offset]), count the whole length-prefixed records as they arrive, and stop (as an
    overflow) past MAX_RECORDS."""
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
            while frames is not None and frames[1] + FRAME.size <= len(keep):
                end = frames[1] + FRAME.size + FRAME.unpack_from(keep, frames[1])[0]
                if end > len(keep):
                    break
                frames[0], frames[1] = frames[0] + 1, end
                if frames[0] > MAX_RECORDS:
                    overflow.set()
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


BUNDLE_GRACE = 3.0  # seconds a bundle's parent has, past a cell's timeout, to kill it and report


def job_limit(timeout: float, stages: int) -> float:
    """The longest a job of `stages` cells may run: a timeout per cell and one to start up, plus a bundle's grace."""
    return (stages + 1) * timeout + (BUNDLE_GRACE if stages > 1 else 0.0)


def run_job(
    job: bytes,
    timeout: float,
    *,
    unsandboxed: bool = False,
    replacements: list[tuple[str, str]] = (),
    stages: int = 1,
) -> JobOutcome:
    """Run one job (wire-encoded) in the sandbox; never raises for anything the job does.

    The job has `timeout` seconds from its start and another `timeout` from each record it sends (the first is
    "ready", once Python and torch are loaded), never more than `(stages + 1) * timeout` in all; `stages` is the
    number of cells it runs (a bundle of several gets BUNDLE_GRACE more on each, so that its parent's own timeout
    of a cell fires first). `replacements`: (copy, original) library
    files that the job sees instead of the originals. Without bubblewrap it refuses (RuntimeError) unless
    `unsandboxed`."""
    if not sandboxed() and not unsandboxed:
        raise RuntimeError(f"no sandbox: {sandbox_problem()}; pass --unsandboxed to grade without one")
    result_read, result_write = os.pipe()
    home = "/tmp" if sandboxed() else tempfile.mkdtemp(prefix="grade-job-")
    command = [sys.executable, "-I", str(RUNNER), str(result_write)]
    cgroup, tasks, filter_fd = None, None, None
    if sandboxed():
        uid = None
        if _as_root():
            with _uid_lock:
                uid = next(_uids)
        filter_fd = os.open(_filter_file(), os.O_RDONLY) if _filter_file() else None
        command = [*_bwrap(uid, replacements, filter_fd), *command]
        cgroup = JobCgroup(f"course-grader-{os.getpid()}-{uid or 0}-{time.monotonic_ns()}") if _cgroup_roots() else None
        if cgroup is None or not cgroup.dirs:
            tasks = MAX_JOB_TASKS if uid is not None else _tasks_of(os.getuid()) + MAX_JOB_TASKS
    outcome, result, log, overflow = JobOutcome(), bytearray(), bytearray(), threading.Event()
    frames = [0, 0]  # whole records so far, and where the next one starts
    try:
        with _lock:  # registered before the reaper can see it
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=home if not sandboxed() else "/",
                env=_environment(home),
                pass_fds=(result_write,) if filter_fd is None else (result_write, filter_fd),
                start_new_session=True,
                preexec_fn=lambda: _limits(timeout * (stages + 1), tasks, cgroup),
            )
            _running.add(proc.pid)
    except OSError as err:
        os.close(result_read)
        os.close(result_write)
        if cgroup is not None:
            cgroup.remove()
        outcome.problem = f"could not start the job: {err}"
        return outcome
    finally:
        if filter_fd is not None:
            os.close(filter_fd)
    os.close(result_write)
    results_pipe, log_pipe = os.fdopen(result_read, "rb"), proc.stdout
    readers = [
        threading.Thread(
            target=_drain, args=(results_pipe, result, MAX_RESULT_BYTES, False, overflow, frames), daemon=True
        ),
        threading.Thread(target=_drain, args=(log_pipe, log, MAX_LOG_BYTES, True, threading.Event()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        try:
            proc.stdin.write(job)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        started = time.monotonic()
        # A bundle's parent times each cell itself and reports the timeout: waiting exactly `timeout` here would
        # race it (the cell starts a little after the record that set this deadline) and kill the whole job.
        grace = BUNDLE_GRACE if stages > 1 else 0.0
        deadline, counted = started + timeout + grace, 0
        limit = started + job_limit(timeout, stages)
        while proc.poll() is None and time.monotonic() < min(deadline, limit) and not overflow.is_set():
            time.sleep(0.02)
            if frames[0] > counted:  # a record arrived ("ready", or a cell's end): another timeout from now
                counted, deadline = frames[0], time.monotonic() + timeout + grace
        outcome.timed_out = proc.poll() is None and not overflow.is_set()
    finally:
        if cgroup is not None:
            cgroup.kill()
        _kill_group(proc)
        if cgroup is not None:
            cgroup.remove()
        with _lock:
            _running.discard(proc.pid)
        if not sandboxed():
            reap_orphans()
        for reader in readers:
            reader.join(timeout=2)  # an escaped process that keeps a pipe open cannot hold the grader
        if home != "/tmp":
            shutil.rmtree(home, ignore_errors=True)
    outcome.returncode = proc.returncode
    outcome.log = log.decode("utf-8", "replace")
    if overflow.is_set():
        outcome.problem = f"sent back more than {MAX_RESULT_BYTES // 2**20} MiB or {MAX_RECORDS} records; stopped"
    else:
        records = split_records(bytes(result))
        if records is None:
            outcome.problem = "the result stream was malformed (written over by the cell?)"
        else:
            outcome.records = records
    return outcome


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it cannot be ignored), then reap it. Under bubblewrap the job's
    PID namespace dies with it."""
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
