"""Every lesson: the grader's child process, run ONE exercise cell of ONE submission on the grader's cases, send
back plain results.

    python -I course_lib/grading/runner.py RESULT_FD < job.json

This process runs untrusted code, inside the sandbox that `course_lib.grading.sandbox` builds. It decides
nothing: it sends what the function returned (plain tensors and numbers, as JSON: course_lib.grading.wire) down
the result pipe, and the parent parses it and does every comparison itself, so nothing done in here (patching
torch, lying objects, forged records) can award points.

The job holds the cell, the cases (built by the grader), and as source the harness that calls the function and
the other exercises' references the cell may use (course_lib.grading.shipping): the exercise specs, where the
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
except ImportError:  # a checkout that is not installed: its root, last, so nothing there shadows a real package
    sys.path.append(os.path.dirname(os.path.dirname(_HERE)))

import builtins  # noqa: E402
import linecache  # noqa: E402
import re  # noqa: E402
import sysconfig  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402

from course_lib.device import seeded  # noqa: E402
from course_lib.grading import wire  # noqa: E402
from course_lib.grading.execute import NOT_IMPLEMENTED, short_error  # noqa: E402
from course_lib.grading.judge import trap_message  # noqa: E402
from course_lib.grading.sandbox import FRAME  # noqa: E402
from course_lib.grading.spec import Case, plain  # noqa: E402

CELL = "<exercise cell>"
MAX_JOB_BYTES = 16 * 2**20
_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)
_LIBRARY = os.path.dirname(_HERE)  # .../course_lib
_STDLIB = tuple({os.path.dirname(os.__file__) + os.sep, sysconfig.get_path("stdlib") + os.sep})
_FRAME_ATTRIBUTES = {"f_code", "tb_frame", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code"}


def without_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (`%time`, `!pip ...`) so the cell is plain Python."""
    return _MAGIC.sub(r"\1pass  # \2", source)


class Channel:
    """The result pipe: length-prefixed JSON records, written with functions bound at start, so a cell that
    patches `os` or this module cannot stop a flag from leaving."""

    def __init__(self, fd: int) -> None:
        self._fd, self._write, self._dumps = fd, os.write, wire.dumps

    def send(self, record: dict) -> None:
        payload = self._dumps(record)
        data = FRAME.pack(len(payload)) + payload
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


def watch(channel: Channel) -> None:
    """Report the cell's run-time introspection: an audit hook (it cannot be removed) sends one flag per kind."""
    sent: set[str] = set()
    busy = [False]
    getframe = sys._getframe

    def from_the_cell(frame: types.FrameType | None) -> bool:
        """Whether the nearest frame outside the standard library is the exercise cell's."""
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename == CELL:
                return True
            standard = filename.startswith(_STDLIB) and "-packages" not in filename
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
            elif event == "object.__getattr__" and len(args) > 1 and args[1] in _FRAME_ATTRIBUTES:
                what = f"read a frame or code object ({args[1]})"
            elif event == "import" and str(args[0]).split(".")[0] == "course_lib":
                what = f"imported {args[0]} at run time"
            elif event == "open" and isinstance(args[0], (str, bytes)):
                path = os.path.abspath(os.fsdecode(args[0]))
                if path.startswith(_LIBRARY + os.sep):
                    what = f"opened the course's source ({os.path.relpath(path, os.path.dirname(_LIBRARY))})"
            elif event.startswith("ctypes."):
                what = "used ctypes (raw memory)"
            kind = what.split(" (")[0] if what else None  # one flag per kind of access, with its first example
            if kind and kind not in sent and from_the_cell(getframe(1)):
                sent.add(kind)
                channel.send({"kind": "flag", "what": what})
        finally:
            busy[0] = False

    sys.addaudithook(hook)


def run_job(job: dict, channel: Channel | None = None) -> dict:
    """Run the cell, then its function on each case through the harness. -> {status, message, cases}."""
    function = job["function"]
    cases = [Case(f"case {i}", tuple(c["args"]), c["kwargs"]) for i, c in enumerate(job["cases"])]
    # The other exercises' references live in a scope of their own; the cell gets the functions alone (not the
    # modules their source imports), and after the cell runs, the graded name there is the student's function.
    helpers: dict = {"__name__": "__helpers__", "__builtins__": builtins}
    exec(job["setup"], helpers)
    exec(compile(job["helpers"], "<helpers>", "exec"), helpers)
    namespace: dict = {"__name__": "__exercise__", "__builtins__": builtins}
    exec(job["setup"], namespace)
    for name in job["helper_names"]:
        namespace[name] = helpers[name]
    harness_scope: dict = {"__name__": "__harness__", "__builtins__": builtins}
    exec(compile(job["harness"], "<harness>", "exec"), harness_scope)
    call = harness_scope[job["harness_name"]]
    for module in job.get("preload", []):  # what the harness imports lazily, loaded before disarming
        __import__(module)
    disarm(function)
    source = without_magics(job["source"])
    linecache.cache[CELL] = (len(source), None, source.splitlines(keepends=True), CELL)
    if channel is not None:
        watch(channel)
    try:
        exec(compile(source, CELL, "exec"), namespace)
    except NotImplementedError:
        return {"status": NOT_IMPLEMENTED, "message": "the cell still raises NotImplementedError", "cases": []}
    except BaseException as err:  # noqa: BLE001 - SystemExit included
        return {"status": "error", "message": f"running the cell raised {short_error(err)}", "cases": []}
    fn = namespace.get(function)
    if not callable(fn):
        return {"status": "error", "message": f"the cell does not define a function named {function}", "cases": []}
    helpers[function] = fn
    results = []
    try:
        for case in cases:
            case = case.fresh()
            try:
                with seeded(0):  # a function that samples gets the same numbers as the reference did
                    results.append({"value": plain(call(fn, case)), "error": None})
            except NotImplementedError:
                results.append({"value": None, "error": NOT_IMPLEMENTED})
            except Exception as err:  # noqa: BLE001 - a student's code may raise anything
                results.append({"value": None, "error": short_error(err)})
    except BaseException as err:  # noqa: BLE001
        return {"status": "error", "message": f"stopped the run: {short_error(err)}", "cases": []}
    return {"status": "ran", "message": "", "cases": results}


def main() -> None:
    channel = Channel(int(sys.argv[1]))
    job = wire.loads(sys.stdin.buffer.read(MAX_JOB_BYTES + 1), max_bytes=MAX_JOB_BYTES)
    torch.set_num_threads(1)
    result = run_job(job, channel)
    channel.send({"kind": "result", **result})
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a student's atexit handler or __del__ cannot change anything


if __name__ == "__main__":
    main()
