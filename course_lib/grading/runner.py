"""Every lesson: the grader's child process, run ONE exercise cell of ONE submission on seeded cases, send back
plain results.

    python -I course_lib/grading/runner.py RESULT_FD < job.json

This process runs untrusted code, inside the sandbox that `course_lib.grading.sandbox` builds. It decides
nothing: it sends what the function returned (plain tensors and numbers, via torch.save) down the result pipe,
and the parent loads it with `torch.load(weights_only=True)` and does every comparison itself, so nothing done in
here (patching torch, lying objects, forged records) can award points.

Before the cell runs, the graded exercise's reference is made useless: its code (and that of any course_lib
function of the same name) is swapped for a trap that raises, so however the cell reaches it (the other
references' globals, frames, sys.modules, gc), calling it gives nothing. The other references the cell may use
are rebuilt with only the globals their code names. An audit hook reports run-time introspection by the cell
(frames, gc, importing course_lib, opening its files) to the parent at once, as a flag that the cell cannot take
back.
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
import io  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import re  # noqa: E402
import sysconfig  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402

from course_lib.grading import registry  # noqa: E402
from course_lib.grading.execute import NOT_IMPLEMENTED, run_cases, short_error  # noqa: E402
from course_lib.grading.sandbox import FRAME, TRAP_MARK  # noqa: E402
from course_lib.grading.spec import Exercise  # noqa: E402

CELL = "<exercise cell>"
MAX_JOB_BYTES = 2 * 2**20
_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)
_LIBRARY = os.path.dirname(_HERE)  # .../course_lib
_STDLIB = tuple({os.path.dirname(os.__file__) + os.sep, sysconfig.get_path("stdlib") + os.sep})
_FRAME_ATTRIBUTES = {"f_code", "tb_frame", "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code"}


def without_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (`%time`, `!pip ...`) so the cell is plain Python."""
    return _MAGIC.sub(r"\1pass  # \2", source)


class Channel:
    """The result pipe: length-prefixed torch.save records, written with a write function bound at start, so
    a cell that patches `os` or this module cannot stop a flag from leaving."""

    def __init__(self, fd: int) -> None:
        self._fd, self._write = fd, os.write

    def send(self, record: dict) -> None:
        buffer = io.BytesIO()
        torch.save(record, buffer)
        data = FRAME.pack(len(buffer.getvalue())) + buffer.getvalue()
        while data:
            data = data[self._write(self._fd, data) :]


def _trap_code(label: str) -> types.CodeType:
    message = f"{TRAP_MARK}: {label} is out of reach while grading; write it yourself"
    module = compile(f"def trap(*args, **kwargs):\n    raise RuntimeError({message!r})\n", "<grader>", "exec")
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


def disarm(exercise: Exercise) -> list[str]:
    """Swap the code of the exercise's reference, and of every loaded course_lib function with the same name,
    for a trap that raises. -> what was disarmed."""
    targets = {id(exercise.reference): exercise.reference}
    for name, module in list(sys.modules.items()):
        if not name.startswith("course_lib."):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, types.FunctionType) and value.__name__ == exercise.function:
                targets[id(value)] = value
    disarmed = []
    for fn in targets.values():
        if isinstance(fn, types.FunctionType) and not fn.__code__.co_freevars:
            fn.__code__ = _trap_code(exercise.function)
            disarmed.append(f"{fn.__module__}.{fn.__qualname__}")
    return disarmed


def _names(code: types.CodeType) -> set[str]:
    """Every global name a code object (and the functions nested in it) may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def sealed(fn: types.FunctionType, done: dict[int, types.FunctionType] | None = None) -> types.FunctionType:
    """A copy of `fn` whose globals hold only the names its code reads (functions among them sealed in turn), so
    nothing else of its module is reachable through it."""
    done = {} if done is None else done
    if id(fn) in done:
        return done[id(fn)]
    scope: dict = {"__builtins__": builtins, "__name__": fn.__globals__.get("__name__")}
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    done[id(fn)] = copy
    for name in _names(fn.__code__):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            scope[name] = sealed(value, done) if isinstance(value, types.FunctionType) else value
    return copy


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
    exercise = registry.get(job["exercise"])
    cases = exercise.cases(int(job["seed"]))  # made before any student code runs
    namespace: dict = {"__name__": "__exercise__", "__builtins__": builtins}
    exec(exercise.setup, namespace)
    for other in registry.for_notebook(exercise.notebook):
        if other.id != exercise.id:  # the other references, so one failure does not cascade
            ref = other.reference
            namespace[other.function] = sealed(ref) if isinstance(ref, types.FunctionType) else ref
    disarm(exercise)
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
    channel = Channel(int(sys.argv[1]))
    job = json.loads(sys.stdin.buffer.read(MAX_JOB_BYTES))
    torch.set_num_threads(1)
    result = run_job(job, channel)
    channel.send({"kind": "result", **result})
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a student's atexit handler or __del__ cannot change anything


if __name__ == "__main__":
    main()
