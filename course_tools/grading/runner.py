"""Every lesson: the grader's child process, run the exercise cells of ONE submission on the grader's cases (one
cell, or all of a notebook's when the grader bundles them), send back plain results.

    python -I course_tools/grading/runner.py RESULT_FD < job.json

This process runs untrusted code, inside the sandbox that `course_tools.grading.sandbox` builds. It decides
nothing: it sends what the function returned (plain tensors and numbers, as JSON: course_tools.grading.wire) down
the result pipe, and the parent parses it and does every comparison itself, so nothing done in here (patching
torch, lying objects, forged records) can award points.

The job holds the cell, the cases (built by the grader), and as source the harness that calls the function and
the other exercises' references the cell may use (course_tools.grading.shipping): the exercise specs, where the
graded reference lives, are not mounted here, and no source sent defines the graded function. A library
function with the graded function's name (course_lib is mounted, as the harnesses build its models) is swapped
for a trap that raises. An audit hook reports run-time introspection by the cell (frames, gc, importing
course_lib, opening its files) to the parent at once, as a flag that the cell cannot take back: advice for the
instructor, not what the grade rests on.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0]) == _HERE:  # python -I puts the script's folder first: not a root
    sys.path.pop(0)
try:
    import course_lib  # noqa: F401 - installed (pip install -e .)
    import course_tools  # noqa: F401 - the same install (an older one knew only course_lib)
except ImportError:  # a checkout that is not installed: its root, last, so nothing there shadows a real package
    sys.path.append(os.path.dirname(os.path.dirname(_HERE)))

import builtins  # noqa: E402
import linecache  # noqa: E402
import re  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402

from course_lib.device import seeded  # noqa: E402
from course_tools.grading import wire  # noqa: E402
from course_tools.grading.execute import NOT_IMPLEMENTED, short_error  # noqa: E402
from course_tools.grading.sandbox import FRAME, MAX_RESULT_BYTES, become_subreaper, split_records  # noqa: E402
from course_tools.grading.scoring import trap_message  # noqa: E402
from course_tools.grading.spec import Case, plain  # noqa: E402
from course_tools.grading.verdict import JobResult  # noqa: E402

CELL = "<exercise cell>"
MAX_CELL_BYTES = MAX_RESULT_BYTES // 2  # what one cell of a bundle may send
_EXIT = os._exit  # bound at start: a cell that replaces os._exit cannot keep its process alive
MAX_JOB_BYTES = 16 * 2**20
_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)
_LIBRARY = os.path.dirname(os.path.abspath(sys.modules["course_lib"].__file__))  # .../course_lib
_TOOLS = os.path.dirname(_HERE)  # .../course_tools: the grader itself
_STDLIB = tuple({os.path.dirname(os.__file__) + os.sep, sysconfig.get_path("stdlib") + os.sep})
_FRAME_ATTRIBUTES = {"f_code", "tb_frame", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code"}


def without_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (`%time`, `!pip ...`) so the cell is plain Python."""
    return _MAGIC.sub(r"\1pass  # \2", source)


class Channel:
    """A result pipe: length-prefixed JSON records, written with functions bound at start (and `watch` keeps the
    bound `send`), so a cell that patches `os`, this class or this module cannot stop a flag from leaving."""

    def __init__(self, fd: int) -> None:
        self._fd, self._write, self._dumps, self._pack = fd, os.write, wire.dumps, FRAME.pack

    def send(self, record: dict) -> None:
        payload = self._dumps(record)
        data = self._pack(len(payload)) + payload
        while data:
            data = data[self._write(self._fd, data) :]


def _trap_code(label: str) -> types.CodeType:
    message = trap_message(label)
    module = compile(f"def trap(*args, **kwargs):\n    raise RuntimeError({message!r})\n", "<grader>", "exec")
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


def disarm(function: str) -> list[str]:
    """Swap the code of every loaded course_lib function named `function` for a trap that raises. -> what was
    disarmed."""
    targets = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("course_lib."):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, types.FunctionType) and value.__name__ == function:
                targets[id(value)] = value
    disarmed = []
    for fn in targets.values():
        while isinstance(getattr(fn, "__wrapped__", None), types.FunctionType):  # a decorated function
            fn = fn.__wrapped__
        if not fn.__code__.co_freevars:
            fn.__code__ = _trap_code(function)
            disarmed.append(f"{fn.__module__}.{fn.__qualname__}")
    return disarmed


def watch(channel: Channel, exercise: str) -> None:
    """Report the cell's run-time introspection: an audit hook (it cannot be removed) sends one flag per kind,
    naming the exercise. Everything it uses is bound here, out of the cell's reach by name."""
    sent: set[str] = set()
    busy = [False]
    getframe, send, realpath, relpath, fsdecode = (
        sys._getframe,
        channel.send,
        os.path.realpath,
        os.path.relpath,
        os.fsdecode,
    )
    stdlib, frame_attributes, cell, sep = _STDLIB, frozenset(_FRAME_ATTRIBUTES), CELL, os.sep
    sources = (_LIBRARY + sep, _TOOLS + sep)
    top = os.path.dirname(_LIBRARY)

    def from_the_cell(frame: types.FrameType | None) -> bool:
        """Whether the nearest frame outside the standard library is the exercise cell's."""
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename == cell:
                return True
            standard = filename.startswith(stdlib) and "-packages" not in filename
            if not (standard or filename.startswith("<frozen")):
                return False
            frame = frame.f_back
        return False

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            what = None
            if event in ("sys._getframe", "sys._current_frames"):
                what = "looked at the call stack (frames)"
            elif event.startswith("gc.get_"):
                what = f"searched the garbage collector ({event})"
            elif event == "object.__getattr__" and len(args) > 1 and args[1] in frame_attributes:
                what = f"read a frame or code object ({args[1]})"
            elif event == "import" and str(args[0]).split(".")[0] in ("course_lib", "course_tools"):
                what = f"imported {args[0]} at run time"
            elif event == "open" and isinstance(args[0], (str, bytes)):
                path = realpath(fsdecode(args[0]))  # through any symbolic link the cell made
                if path.startswith(sources):
                    what = f"opened the course's source ({relpath(path, top)})"
            elif event.startswith("ctypes."):
                what = "used ctypes (raw memory)"
            kind = what.split(" (")[0] if what else None  # one flag per kind of access, with its first example
            if kind and kind not in sent and from_the_cell(getframe(1)):
                sent.add(kind)
                send({"kind": "flag", "exercise": exercise, "what": what})
        finally:
            busy[0] = False

    sys.addaudithook(hook)


class Prepared:
    """One exercise of a job, ready to run: its cases, the cell's namespace, the harness's call."""

    def __init__(self, job: dict) -> None:
        self.job, self.exercise, self.function = job, job["exercise"], job["function"]
        self.cases = [Case(f"case {i}", tuple(c["args"]), c["kwargs"]) for i, c in enumerate(job["cases"])]
        # The other exercises' references live in a scope of their own; the cell gets the functions alone (not the
        # modules their source imports), and after the cell runs, the graded name there is the student's function.
        self.helpers: dict = {"__name__": "__helpers__", "__builtins__": builtins}
        exec(job["setup"], self.helpers)
        exec(compile(job["helpers"], "<helpers>", "exec"), self.helpers)
        self.namespace: dict = {"__name__": "__exercise__", "__builtins__": builtins}
        exec(job["setup"], self.namespace)
        for name in job["helper_names"]:
            self.namespace[name] = self.helpers[name]
        harness_scope: dict = {"__name__": "__harness__", "__builtins__": builtins}
        exec(compile(job["harness"], "<harness>", "exec"), harness_scope)
        self.call = harness_scope[job["harness_name"]]
        for module in job.get("preload", []):  # what the harness imports lazily, loaded before disarming
            __import__(module)

    def run(self) -> dict:
        """Run the cell, then its function on each case through the harness. -> {status, message, cases}."""
        source = without_magics(self.job["source"])
        linecache.cache[CELL] = (len(source), None, source.splitlines(keepends=True), CELL)
        try:
            exec(compile(source, CELL, "exec"), self.namespace)
        except NotImplementedError:
            return {"status": NOT_IMPLEMENTED, "message": "the cell still raises NotImplementedError", "cases": []}
        except BaseException as err:  # noqa: BLE001 - SystemExit included
            return {"status": "error", "message": f"running the cell raised {short_error(err)}", "cases": []}
        fn = self.namespace.get(self.function)
        if not callable(fn):
            message = f"the cell does not define a function named {self.function}"
            return {"status": "error", "message": message, "cases": []}
        self.helpers[self.function] = fn
        results = []
        try:
            for case in self.cases:
                case = case.fresh()
                try:
                    with seeded(0):  # a function that samples gets the same numbers as the reference did
                        results.append({"value": plain(self.call(fn, case)), "error": None})
                except NotImplementedError:
                    results.append({"value": None, "error": NOT_IMPLEMENTED})
                except Exception as err:  # noqa: BLE001 - a student's code may raise anything
                    results.append({"value": None, "error": short_error(err)})
        except BaseException as err:  # noqa: BLE001
            return {"status": "error", "message": f"stopped the run: {short_error(err)}", "cases": []}
        return {"status": "ran", "message": "", "cases": results}


def run_alone(job: dict, channel: Channel) -> None:
    """One exercise in this process: prepare, disarm, then `run_cell`."""
    prepared = Prepared(job)
    for function in (prepared.function, *job.get("trap", ())):
        disarm(function)
    run_cell(prepared, channel)


def run_cell(prepared: Prepared, channel: Channel) -> None:
    """Watch, run the cell and its cases, send the result."""
    sys.modules["__main__"] = types.ModuleType("__main__")  # `import __main__` does not reach this module
    watch(channel, prepared.exercise)
    channel.send({"kind": "result", "exercise": prepared.exercise, **prepared.run()})


# --- a bundle: one process per cell, the cells' records relabelled by this (trusted) parent ----------------------

_PR_SET_DUMPABLE = 4
MAX_CELL_RECORDS = 1000  # records one cell may send (flags and its result)


def _prctl(option: int, value: int) -> None:
    import ctypes

    ctypes.CDLL(None).prctl(option, value, 0, 0, 0)


def _ancestors() -> set[int]:
    """This process, its parents up to the PID namespace's first process."""
    found, pid = {1}, os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/status") as f:
                pid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            break
    return found


def _end_the_rest(keep: set[int]) -> None:
    """Kill every process of the job's PID namespace but `keep` (what a cell left running), reap them, and empty
    the scratch folder: the next cell starts with nothing of the last one's."""
    for _ in range(1000):
        others = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in keep]
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except PermissionError:
                keep.add(pid)  # not the job's (bubblewrap's own)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not others:
            break
        time.sleep(0.005)

    def writable(function, path, _) -> None:  # a folder left without permissions: open it, try again
        os.chmod(os.path.dirname(path), 0o700)
        os.chmod(path, 0o700) if os.path.isdir(path) and not os.path.islink(path) else None
        function(path)

    for entry in os.listdir("/tmp"):
        path = os.path.join("/tmp", entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                shutil.rmtree(path, onerror=writable)
            else:
                os.unlink(path)
        except OSError:
            pass


def _child(prepared: Prepared, write_fd: int, closing: list[int]) -> None:
    """In the forked child: drop every other descriptor to the grader, run one cell, send its records down this
    cell's own pipe, exit. Never returns."""
    try:
        for fd in closing:
            os.close(fd)
        _prctl(_PR_SET_DUMPABLE, 1)
        run_cell(prepared, Channel(write_fd))
    except BaseException:  # noqa: BLE001 - whatever happens, the parent reports how this process ended
        pass
    finally:
        _EXIT(0)


def _read_available(fd: int, data: bytearray) -> bool:
    """Append what the pipe holds now (at most MAX_CELL_BYTES in all). -> False once it is closed and empty."""
    try:
        while len(data) <= MAX_CELL_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return False
            data += chunk
    except BlockingIOError:
        pass
    return True


def _collect(read_fd: int, pid: int, timeout: float, data: bytearray) -> int | None:
    """Read one cell's pipe into `data` until its process ends or `timeout` passes (or it sends too much). -> its
    exit status, or None when it was killed for time."""
    deadline, is_open = time.monotonic() + timeout, True
    os.set_blocking(read_fd, False)
    while True:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(code)
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > MAX_CELL_BYTES:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None if left <= 0 else -signal.SIGKILL
        if is_open and select.select([read_fd], [], [], min(left, 0.05))[0]:
            is_open = _read_available(read_fd, data)
        elif not is_open:
            time.sleep(min(left, 0.02))


def run_bundle(jobs: list[dict], channel: Channel, timeout: float) -> None:
    """Every cell of one student's notebook, one after another, each in a process of its own forked from this
    one (Python and torch are loaded once, here). This parent runs no student code, cannot be traced by its
    children (not dumpable), and is the only writer of the grader's pipe: it reads each cell's records from that
    cell's own pipe and relabels them with the cell's exercise, so no cell can speak for another. Between cells
    it kills whatever the last one left running and empties the scratch folder. Each cell has `timeout` seconds;
    after it, one "timeout" or "ended" record says how its process finished."""
    prepared = [Prepared(job) for job in jobs]
    for function in sorted({name for p in prepared for name in (p.function, *p.job.get("trap", ()))}):
        disarm(function)
    _prctl(_PR_SET_DUMPABLE, 0)
    become_subreaper(True)  # what a cell's processes leave behind becomes this parent's, to end
    keep = _ancestors()
    for p in prepared:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            _child(p, write_fd, [read_fd, channel._fd])
        os.close(write_fd)
        data = bytearray()
        status = _collect(read_fd, pid, timeout, data)
        _end_the_rest(keep)  # the cell's pipe now has no writer left
        _read_available(read_fd, data)
        os.close(read_fd)
        records = split_records(bytes(data)) if len(data) <= MAX_CELL_BYTES else None
        if records is None or len(records) > MAX_CELL_RECORDS:
            why = "it sent too much, or records that were malformed or too many"
            channel.send({"kind": "ended", "exercise": p.exercise, "why": why})
            continue
        forwarded, why = _checked(records, p.exercise, time.monotonic() + timeout)
        for record in forwarded:
            channel.send(record)
        if why:
            channel.send({"kind": "ended", "exercise": p.exercise, "why": why})
        elif status is None:
            channel.send({"kind": "timeout", "exercise": p.exercise})
        else:
            channel.send({"kind": "ended", "exercise": p.exercise, "why": f"exit status {status}"})
        _empty_ipc()


def _checked(records: list[bytes], exercise: str, deadline: float) -> tuple[list[dict], str]:
    """A cell's records as the grader will take them: parsed, its flags and its first result, each checked field by
    field and labelled with the cell's exercise, within a share of the result cap. -> (records, why they stop)."""
    out, size, answered = [], 0, False
    for raw in records:
        try:
            record = wire.loads(raw, max_bytes=MAX_CELL_BYTES, deadline=deadline)
        except wire.WireError as err:
            return out, f"it sent a record that is not plain data ({str(err)[:80]})"
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind == "flag":
            checked = {"kind": "flag", "exercise": exercise, "what": str(record.get("what"))[:200]}
        elif kind == "result" and not answered:  # the first result a cell sends is its answer
            fields = {k: record.get(k) for k in ("status", "message", "cases")}
            try:
                JobResult.parse({"kind": "result", "exercise": exercise, **fields})
            except ValueError as err:
                return out, f"its result does not fit ({err})"
            checked, answered = {"kind": "result", "exercise": exercise, **fields}, True
        elif kind == "result":
            continue
        else:
            return out, "it sent a record the grader does not know"
        size += len(wire.dumps(checked))
        if size > MAX_CELL_BYTES:
            return out, f"it sent more than {MAX_CELL_BYTES // 2**20} MiB"
        out.append(checked)
    return out, ""


def _empty_ipc() -> None:
    """Remove the System V shared memory, queues and semaphores a cell made (the job has an IPC namespace of its
    own, so all of them are the job's)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for kind, remove in (("shm", libc.shmctl), ("msg", libc.msgctl), ("sem", libc.semctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.readlines()[1:] if len(line.split()) > 1]
        except (OSError, ValueError):
            continue
        for ident in ids:
            if kind == "sem":
                remove(ident, 0, 0, None)  # IPC_RMID is 0
            else:
                remove(ident, 0, None)


def main() -> None:
    channel = Channel(int(sys.argv[1]))
    job = wire.loads(sys.stdin.buffer.read(MAX_JOB_BYTES + 1), max_bytes=MAX_JOB_BYTES)
    torch.set_num_threads(1)
    channel.send({"kind": "ready"})  # the cells' time starts now, not at Python's start
    if job.get("bundle"):
        run_bundle(job["jobs"], channel, float(job["timeout"]))
    else:
        run_alone(job["jobs"][0], channel)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a student's atexit handler or __del__ cannot change anything


if __name__ == "__main__":
    main()
