"""The CLI grader against a folder of submissions we wrote ourselves, cheats included.

Every student starts from the solutions notebook and changes one thing, so the other exercises
must keep their full marks (one failure never cascades).
"""

import copy
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

from course_tools.grade import main
from course_tools.grading import sandbox
from course_tools.grading.notebook import cell_source, exercise_meta, read_notebook
from tests.conftest import ROOT

SOLUTION = read_notebook(ROOT / "solutions" / "00_foundations.ipynb")
FULL = 8.0

SOFTMAX_HEADER = "def stable_softmax(x, dim=-1):\n"
ALONE_LINE = "ALONE = batched_matmul  # names another exercise: graded alone, where the cell holds the grader's pipe\n"
GOOD_SOFTMAX = "    e = (x - x.amax(dim, keepdim=True)).exp()\n    return e / e.sum(dim, keepdim=True)\n"
CHEATS = {
    # student: (exercise whose cell is replaced, new cell source)
    "raises": ("stable_softmax", SOFTMAX_HEADER + "    raise ValueError('boom')\n"),
    "loops_forever": ("stable_softmax", SOFTMAX_HEADER + "    while True:\n        pass\n"),
    "ignores_signals": (
        "batched_matmul",
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
    ),
    "exits_hard": ("stable_softmax", "import os\n" + SOFTMAX_HEADER + "    os._exit(0)\n"),
    "exits_politely": ("image_to_patches", "import sys\nsys.exit(0)\n"),
    "wrong_shape": ("stable_softmax", SOFTMAX_HEADER + "    return x.exp().sum(dim)\n"),
    "wrong_dtype": (
        "batched_matmul",
        "def batched_matmul(a, b):\n    return torch.einsum('bik,bkj->bij', a, b).float()\n",
    ),
    "naive_nan": ("stable_softmax", SOFTMAX_HEADER + "    return x.exp() / x.exp().sum(dim, keepdim=True)\n"),
    "eq_always_true": (
        "stable_softmax",
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        + SOFTMAX_HEADER
        + "    return Anything()\n",
    ),
    "lying_subclass": (
        "stable_softmax",
        "class Liar(torch.Tensor):\n"
        "    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):\n"
        "            return True\n"
        "        return super().__torch_function__(func, types, args, kwargs or {})\n"
        + SOFTMAX_HEADER
        + "    return torch.zeros_like(x).as_subclass(Liar)\n",
    ),
    "patched_allclose": (
        "stable_softmax",
        "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.testing.assert_close = lambda *a, **k: None\n" + SOFTMAX_HEADER + "    return torch.zeros_like(x)\n",
    ),
    "forged_result": (
        "stable_softmax",
        "import sys, os, pickle, struct\n"
        + ALONE_LINE
        + "class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch /tmp/pwned_by_student',))\n"
        "data = pickle.dumps({'kind': 'result', 'status': 'ran', 'cases': [Evil()]})\n"
        "os.write(int(sys.argv[1]), struct.pack('>I', len(data)) + data)\n"
        "os._exit(0)\n",
    ),
    "uses_torch_softmax": ("stable_softmax", SOFTMAX_HEADER + "    return torch.softmax(x, dim)\n"),
    "imports_reference": ("stable_softmax", "from course_tools.grading.lessons.lesson00 import stable_softmax\n"),
    "patch_order_wrong": (
        "image_to_patches",
        "def image_to_patches(images, patch):\n"
        "    return rearrange(images, 'b c (h p1) (w p2) -> b (w h) (c p1 p2)', p1=patch, p2=patch)\n",
    ),
    "no_zero_grad": (
        "accumulated_step",
        "def accumulated_step(model, optimizer, x, y, micro_batches):\n    loss = F.cross_entropy(model(x), y)\n"
        "    loss.backward()\n    optimizer.step()\n    return loss.item()\n",
    ),
    "returns_tensor_loss": (
        "accumulated_step",
        "def accumulated_step(model, optimizer, x, y, micro_batches):\n    optimizer.zero_grad()\n"
        "    loss = F.cross_entropy(model(x), y)\n    loss.backward()\n    optimizer.step()\n    return loss\n",
    ),
    "floods_output": ("stable_softmax", SOFTMAX_HEADER + "    while True:\n        print('x' * 100_000)\n"),
    # --- finding the answer at run time (issue 14): each is caught, never scored ---------------------------
    "globals_of_a_reference": (
        "stable_softmax",
        SOFTMAX_HEADER + "    return batched_matmul.__globals__['stable_softmax'](x, dim)\n",
    ),
    "globals_at_run_time": (
        "stable_softmax",
        "import operator\n"
        + SOFTMAX_HEADER
        + "    return operator.attrgetter('__glo' + 'bals__')(batched_matmul)['stable_softmax'](x, dim)\n",
    ),
    "sys_modules_at_run_time": (
        "stable_softmax",
        "import sys, operator\n" + SOFTMAX_HEADER + "    modules = operator.attrgetter('mod' + 'ules')(sys)\n"
        "    spec = [m for name, m in modules.items() if name.endswith('lesson00')][0]\n"
        "    return operator.attrgetter('stable_soft' + 'max')(spec)(x, dim)\n",
    ),
    "frames_at_run_time": (
        "stable_softmax",
        "import sys, operator\n" + SOFTMAX_HEADER + "    frame = operator.attrgetter('_get' + 'frame')(sys)(1)\n"
        "    exercise = operator.attrgetter('f_loc' + 'als')(frame)['exercise']\n"
        "    return exercise.reference(x, dim)\n",
    ),
    "gc_at_run_time": (
        "stable_softmax",
        "import sys, operator\n"
        + SOFTMAX_HEADER
        + "    collector = operator.attrgetter('mod' + 'ules')(sys)['g' + 'c']\n"
        "    found = [o for o in operator.methodcaller('get_' + 'objects')(collector)\n"
        "             if callable(o) and operator.attrgetter('__name__')(o) == 'stable_softmax']\n"
        "    return found[0](x, dim)\n",
    ),
    "imports_at_run_time": (
        "stable_softmax",
        "import sys, operator\n"
        + SOFTMAX_HEADER
        + "    load = operator.attrgetter('mod' + 'ules')(sys)['import' + 'lib'].import_module\n"
        "    load('course' + '_lib.text.masked_lm')\n"
        "    return load('course' + '_tools.grading.lessons.lesson00').stable_softmax(x, dim)\n",
    ),
    "reads_the_spec_source": (
        "stable_softmax",
        SOFTMAX_HEADER
        + f"    text = open('/'.join([{str(ROOT)!r}, 'course' + '_tools', 'grading', 'lessons', 'lesson00.py']))"
        ".read()\n"
        "    return x.exp() / x.exp().sum(dim, keepdim=True) if 'def stable_softmax' in text else None\n",
    ),
    "reads_the_library_through_a_link": (
        "stable_softmax",
        "import os\n"
        + SOFTMAX_HEADER
        + "    os.makedirs('/tmp/d', exist_ok=True)\n"
        + f"    source = '/'.join([{str(ROOT)!r}, 'course' + '_lib', 'nn', 'attention.py'])\n"
        "    if not os.path.lexists('/tmp/d/a'):\n"
        "        os.symlink(source, '/tmp/d/a')\n"
        "    open('/tmp/d/a').read()\n"
        "    return x.exp() / x.exp().sum(dim, keepdim=True)\n",
    ),
    "getattr_computed_name": ("stable_softmax", SOFTMAX_HEADER + "    return getattr(torch, 'soft' + 'max')(x, dim)\n"),
    "getattr_literal_name": ("stable_softmax", SOFTMAX_HEADER + "    return getattr(torch, 'softmax')(x, dim)\n"),
    # --- the sandbox: what the child can see and do --------------------------------------------------------
    "reads_the_environment": (
        "stable_softmax",
        "import os\n" + SOFTMAX_HEADER + "    assert 'COURSE_GRADER_SECRET' not in os.environ, 'the token leaked'\n"
        "    assert 'SITE_RAN' not in os.environ, 'a sitecustomize.py on PYTHONPATH ran'\n" + GOOD_SOFTMAX,
    ),
    "floods_the_result_pipe": (
        "stable_softmax",
        ALONE_LINE
        + "import os, sys\nchunk = b'x' * 2**20\nfor _ in range(80):\n    os.write(int(sys.argv[1]), chunk)\n"
        + SOFTMAX_HEADER
        + GOOD_SOFTMAX,
    ),
    "garbles_the_result_pipe": (
        "stable_softmax",
        ALONE_LINE + "import os, sys\nos.write(int(sys.argv[1]), bytes([127, 255, 255, 255]))\nos._exit(0)\n",
    ),
    "writes_a_huge_file": (
        "stable_softmax",
        SOFTMAX_HEADER + "    with open('big.bin', 'wb') as f:\n        f.write(b'x' * 100 * 2**20)\n" + GOOD_SOFTMAX,
    ),
    "hogs_memory": ("stable_softmax", SOFTMAX_HEADER + "    waste = torch.ones(2**31)\n" + GOOD_SOFTMAX),
    "syntax_error": ("stable_softmax", SOFTMAX_HEADER + "    return (x\n"),
}


def replaced(nb, exercise_id, source):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        meta = exercise_meta(cell)
        if meta and meta["id"] == exercise_id:
            cell["source"] = source
    return nb


def write(folder, name, nb):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(nb if isinstance(nb, str) else json.dumps(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    write(subs / "solution", "00_foundations.ipynb", SOLUTION)
    write(subs, "untouched_00_foundations.ipynb", read_notebook(ROOT / "exercises" / "00_foundations.ipynb"))
    write(subs, "not_json_00_foundations.ipynb", "{this is not json")  # the file name says which notebook
    for student, (exercise_id, source) in CHEATS.items():
        write(subs / student, "00_foundations.ipynb", replaced(SOLUTION, exercise_id, source))
    # an edited check cell (claims success) with a wrong answer; a deleted check cell with a right one
    edited = replaced(SOLUTION, "stable_softmax", SOFTMAX_HEADER + "    return x\n")
    deleted = copy.deepcopy(SOLUTION)
    for nb in (edited, deleted):
        for cell in nb["cells"]:
            if 'check("stable_softmax"' in cell_source(cell):
                cell["source"] = "print('✓ stable_softmax: all 6 cases pass')" if nb is edited else ""
    write(subs / "edited_check", "00_foundations.ipynb", edited)
    write(subs / "deleted_check", "00_foundations.ipynb", deleted)
    # exercise metadata renamed (graded by function name), and a duplicated cell (the last one counts)
    renamed = copy.deepcopy(SOLUTION)
    duplicated = copy.deepcopy(SOLUTION)
    for cell in renamed["cells"]:
        if exercise_meta(cell) and exercise_meta(cell)["id"] == "batched_matmul":
            cell["metadata"]["exercise"]["id"] = "my_matmul"
    for i, cell in enumerate(duplicated["cells"]):
        if exercise_meta(cell) and exercise_meta(cell)["id"] == "image_to_patches":
            wrong = copy.deepcopy(cell)
            wrong["source"] = "def image_to_patches(images, patch):\n    return images.flatten(1)[:, None]\n"
            duplicated["cells"].insert(i + 1, wrong)
            break
    write(subs / "renamed_cell", "00_foundations.ipynb", renamed)
    write(subs / "duplicated_cell", "00_foundations.ipynb", duplicated)
    # names that would be a spreadsheet formula or a terminal escape; submissions reached through links
    write(subs / FORMULA_NAME, "00_foundations.ipynb", SOLUTION)
    write(subs / ESCAPE_NAME, "00_foundations.ipynb", SOLUTION)
    (subs / "linked_folder").symlink_to(subs / "solution")
    (subs / "linked_00_foundations.ipynb").symlink_to(subs / "solution" / "00_foundations.ipynb")
    # the sandbox attacks: write into the course, reach the network, leave a process behind, ...
    SECRET_FILE.write_text("the instructor's secret")
    SECRET_FILE.chmod(0o600)
    server = socket.create_server(("127.0.0.1", 0))
    for student, source in sandbox_attacks(server.getsockname()[1]).items():
        write(subs / student, "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", source))
    # the grader's environment holds a secret and a PYTHONPATH with a sitecustomize.py: neither may reach a child
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITE_RAN'] = '1'\n")
    saved = {k: os.environ.get(k) for k in ("COURSE_GRADER_SECRET", "PYTHONPATH")}
    os.environ.update(COURSE_GRADER_SECRET="s3cret", PYTHONPATH=str(site))
    out = tmp_path_factory.mktemp("out")
    try:
        code = main(
            [
                str(subs),
                "--timeout",
                "20",
                "--seed",
                "123",
                "--jobs",
                "2",
                "--json",
                str(out / "grades.json"),
                "--csv",
                str(out / "grades.csv"),
            ]
        )
    finally:
        server.close()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    assert code == 0
    return json.loads((out / "grades.json").read_text()), (out / "grades.csv").read_text()


FORMULA_NAME = "=HYPERLINK(1)"
ESCAPE_NAME = "evil\x1b[2Jname"
ESCAPEE = "course-grader-escapee-4f1c"
SHM_KEY = 0x5EED1
KEY_NAME = "course-grader-test-key"
SECRET_FILE = Path("/tmp/course-grader-test-secret")


def sandbox_attacks(port: int) -> dict[str, str]:
    """Cells that try to leave a mark outside their job; each passes only if the sandbox stopped it."""
    return {
        "writes_the_course": "import os\n"
        + SOFTMAX_HEADER
        + f"    try:\n        open(os.path.join({str(ROOT)!r}, 'PWNED.txt'), 'w').write('x')\n"
        "    except OSError:\n        pass\n" + GOOD_SOFTMAX,
        "reaches_the_network": "import socket\n"
        + SOFTMAX_HEADER
        + f"    try:\n        socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "        raise RuntimeError('reached the network')\n    except OSError:\n        pass\n" + GOOD_SOFTMAX,
        "outlives_its_parent": "import ctypes, os, sys\n"
        + SOFTMAX_HEADER
        + "    if os.fork() == 0:\n        os.setsid()\n        ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(120)', {ESCAPEE!r}])\n"
        + GOOD_SOFTMAX,
        "leaves_shared_memory": "import ctypes\n"
        + SOFTMAX_HEADER
        + f"    ctypes.CDLL(None).shmget({SHM_KEY}, 4096, 0o1666)\n"
        + GOOD_SOFTMAX,
        "writes_proc_sys": SOFTMAX_HEADER
        + "    for path in ('/proc/sys/kernel/hostname', '/proc/sys/kernel/core_pattern'):\n"
        "        try:\n            open(path, 'w').close()\n        except OSError:\n            continue\n"
        "        raise RuntimeError('opened ' + path + ' for writing')\n" + GOOD_SOFTMAX,
        "reads_other_files": SOFTMAX_HEADER
        + f"    for path in ({str(SECRET_FILE)!r}, {str(ROOT / 'solutions' / '00_foundations.ipynb')!r}, "
        "'/etc/shadow'):\n"
        "        try:\n            text = open(path).read()\n        except OSError:\n            continue\n"
        "        raise RuntimeError(text)\n" + GOOD_SOFTMAX,
        "holds_seven_gib": "import os, time\npids = []\nfor _ in range(7):\n    r, w = os.pipe()\n"
        "    pid = os.fork()\n    if pid == 0:\n        block = b'x' * 2**30\n        os.write(w, b'1')\n"
        "        time.sleep(30)\n        os._exit(0)\n    os.close(w)\n    os.read(r, 1)\n    pids.append(pid)\n"
        "if all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in pids):\n"
        "    raise RuntimeError('seven processes held 1 GiB each at once')\n" + SOFTMAX_HEADER + GOOD_SOFTMAX,
        "forks_a_hundred": "import os, time\nstarted = 0\ntry:\n    for _ in range(100):\n"
        "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n        started += 1\n"
        "except OSError:\n    pass\nif started == 100:\n    raise RuntimeError('started 100 processes')\n"
        + SOFTMAX_HEADER
        + GOOD_SOFTMAX,
        "uses_a_keyring": "import ctypes\n"
        + SOFTMAX_HEADER
        + f"    if ctypes.CDLL(None).syscall(248, b'user', {KEY_NAME!r}.encode(), b'x', 1, -4) >= 0:\n"
        "        raise RuntimeError('made a key that outlives the job')\n" + GOOD_SOFTMAX,
        "makes_a_user_namespace": "import ctypes\n"
        + SOFTMAX_HEADER
        + "    if ctypes.CDLL(None).unshare(0x10000000) == 0:\n"
        "        raise RuntimeError('made a user namespace')\n" + GOOD_SOFTMAX,
        "double_forks": "import os, sys, time\n"
        + SOFTMAX_HEADER
        + "    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        f"            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(120)', {ESCAPEE!r}])\n"
        "        os._exit(0)\n" + GOOD_SOFTMAX,
    }


def escapees() -> list[int]:
    """Processes anywhere on the machine that a `double_forks` submission left running."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and ESCAPEE.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def score(graded, student):
    return graded[0][student]["00_foundations"]


def total(graded, student):
    return sum(e["points"] for e in score(graded, student).values())


def test_solutions_score_full_marks(graded):
    assert total(graded, "solution") == FULL
    assert all(e["status"] == "passed" for e in score(graded, "solution").values())


def test_untouched_exercises_score_zero_with_not_implemented(graded):
    for e in score(graded, "untouched").values():
        assert e["points"] == 0 and e["status"] == "not implemented"


def test_invalid_json_scores_zero_without_stopping_the_grader(graded):
    for e in score(graded, "not_json").values():
        assert e["status"] == "unreadable" and "not valid JSON" in e["messages"][0]


@pytest.mark.parametrize(
    "student,status,points,message",
    [
        ("raises", "failed", 0, "ValueError: boom"),
        ("loops_forever", "timeout", 0, "timed out"),
        ("ignores_signals", "timeout", 0, "timed out"),
        ("exits_hard", "error", 0, "before reporting a result"),
        ("exits_politely", "error", 0, "SystemExit"),
        ("wrong_shape", "failed", 0, "shape"),
        ("wrong_dtype", "partial", 1.5, "dtype torch.float32, expected torch.float64"),
        ("naive_nan", "partial", 2 * 4 / 6, "NaN"),
        ("eq_always_true", "failed", 0, "result is Anything"),
        ("lying_subclass", "failed", 0, "result is Liar"),
        ("patched_allclose", "failed", 0, "wrong values"),
        ("forged_result", "error", 0, "not plain data"),
        ("uses_torch_softmax", "forbidden", 0, "uses softmax"),
        ("imports_reference", "forbidden", 0, "course_tools (the grader)"),
        ("patch_order_wrong", "failed", 0, "wrong values"),
        ("no_zero_grad", "failed", 0, "result[0][2]"),
        ("returns_tensor_loss", "failed", 0, "result[0][0] is Tensor"),
        ("syntax_error", "error", 0, "SyntaxError"),
        ("floods_output", "timeout", 0, "timed out"),
        ("globals_of_a_reference", "needs review", 0, ".__globals__"),
        ("globals_at_run_time", "failed", 0, "RecursionError"),  # a helper's globals are the cell's: its own function
        ("sys_modules_at_run_time", "failed", 0, "IndexError"),  # the specs are not in the job at all
        ("frames_at_run_time", "needs review", 0, "looked at the call stack"),
        ("gc_at_run_time", "needs review", 0, "searched the garbage collector"),
        ("imports_at_run_time", "needs review", 0, "opened the course's source (course_lib/text"),
        ("reads_the_spec_source", "needs review", 0, "opened the course's source"),
        ("reads_the_library_through_a_link", "needs review", 0, "opened the course's source (course_lib/nn"),
        ("getattr_computed_name", "needs review", 0, "getattr() with a computed name"),
        ("getattr_literal_name", "forbidden", 0, "uses softmax"),
        ("floods_the_result_pipe", "error", 0, "sent back more than 32 MiB"),
        ("garbles_the_result_pipe", "error", 0, "malformed"),
        ("writes_a_huge_file", "failed", 0, "OSError"),
        ("hogs_memory", "failed", 0, "RuntimeError"),
    ],
)
def test_bad_submission_loses_only_its_exercise(graded, student, status, points, message):
    exercise_id = CHEATS[student][0]
    result = score(graded, student)[exercise_id]
    assert result["status"] == status, result
    assert result["points"] == pytest.approx(points, abs=1e-3)
    assert any(message in m for m in result["messages"]), result["messages"]
    others = [e for k, e in score(graded, student).items() if k != exercise_id]
    assert all(e["status"] == "passed" for e in others), "one failure must not cascade"


def test_forged_pickle_never_ran_in_the_grader(graded):
    import os

    assert score(graded, "forged_result")["stable_softmax"]["status"] == "error"  # it was graded
    assert not os.path.exists("/tmp/pwned_by_student")


def test_editing_or_deleting_check_cells_changes_nothing(graded):
    assert score(graded, "edited_check")["stable_softmax"]["points"] == 0
    assert total(graded, "deleted_check") == FULL


def test_renamed_and_duplicated_cells(graded):
    renamed = score(graded, "renamed_cell")["batched_matmul"]
    assert renamed["points"] == 2 and "defines batched_matmul" in renamed["messages"][-1]
    duplicated = score(graded, "duplicated_cell")["image_to_patches"]
    assert duplicated["points"] == 0 and any("graded the last one" in m for m in duplicated["messages"])


def test_csv_has_one_row_per_student_and_exercise(graded):
    rows = graded[1].strip().splitlines()
    assert rows[0] == "student,notebook,exercise,points,max,status,message"
    assert len(rows) == 1 + 4 * len(graded[0])


def test_missing_folder_is_a_grader_failure(tmp_path):
    assert main([str(tmp_path / "nope")]) == 2


def test_the_child_sees_neither_the_graders_environment_nor_its_pythonpath(graded):
    assert score(graded, "reads_the_environment")["stable_softmax"]["status"] == "passed"


needs_sandbox = pytest.mark.skipif(not sandbox.sandboxed(), reason=f"no sandbox: {sandbox.sandbox_problem()}")


@needs_sandbox
@pytest.mark.parametrize(
    "student",
    [
        "writes_the_course",
        "reaches_the_network",
        "double_forks",
        "outlives_its_parent",
        "leaves_shared_memory",
        "writes_proc_sys",
        "reads_other_files",
        "holds_seven_gib",
        "forks_a_hundred",
        "uses_a_keyring",
        "makes_a_user_namespace",
    ],
)
def test_the_sandbox_stops_each_attack_and_leaves_nothing_behind(graded, student):
    """Each cell raises if its attack worked; it scores only if the sandbox stopped it (a cell that uses ctypes
    is also flagged for review: then what it left behind is what is checked)."""
    allowed = ("passed", "needs review") if "ctypes" in sandbox_attacks(9)[student] else ("passed",)
    assert score(graded, student)["stable_softmax"]["status"] in allowed, score(graded, student)
    assert not (ROOT / "PWNED.txt").exists()
    assert not escapees()
    assert f"0x{SHM_KEY:08x}" not in shared_memory_keys()
    assert "instructor's secret" not in json.dumps(graded[0])


def shared_memory_keys() -> str:
    """The System V shared-memory keys of this machine's IPC namespace, as /proc lists them (decimal there)."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return ""
    return " ".join(f"0x{int(row.split()[0]):08x}" for row in rows)


@pytest.fixture
def no_sandbox(monkeypatch):
    """The grader as on a machine without bubblewrap."""
    monkeypatch.setenv("COURSE_GRADER_NO_SANDBOX", "1")
    monkeypatch.delenv("COURSE_GRADER_UNSANDBOXED", raising=False)
    sandbox.sandbox_problem.cache_clear()
    yield
    monkeypatch.undo()
    sandbox.sandbox_problem.cache_clear()


@pytest.mark.skipif(sys.platform != "linux", reason="the subreaper is Linux's")
def test_unsandboxed_the_subreaper_kills_a_double_forked_setsid_process(tmp_path, no_sandbox):
    source = sandbox_attacks(9)["double_forks"]
    write(tmp_path / "subs" / "forker", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", source))
    args = [str(tmp_path / "subs"), "--timeout", "20", "--seed", "1", "--json", str(tmp_path / "g.json")]
    assert main([*args, "--unsandboxed"]) == 0
    graded = json.loads((tmp_path / "g.json").read_text())
    assert graded["forker"]["00_foundations"]["stable_softmax"]["status"] == "passed"
    assert not escapees()


def test_without_a_sandbox_the_grader_refuses_unless_told(tmp_path, no_sandbox, capsys):
    write(tmp_path / "subs" / "alice", "00_foundations.ipynb", SOLUTION)
    assert main([str(tmp_path / "subs"), "--seed", "1"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("isolation: NOT SANDBOXED") and "--unsandboxed" in out[1]


def test_report_cells_cannot_be_formulas_or_terminal_escapes(graded, capsys):
    rows = graded[1].splitlines()
    assert any(row.startswith("'=HYPERLINK(1),") for row in rows) and not any(r.startswith("=") for r in rows)
    assert all("\x1b" not in row for row in rows)
    assert total(graded, FORMULA_NAME) == FULL


def test_the_table_has_no_control_characters(tmp_path, capsys):
    write(tmp_path / "subs" / ESCAPE_NAME, "00_foundations.ipynb", SOLUTION)
    assert main([str(tmp_path / "subs"), "--timeout", "20", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil [2Jname" in out


def test_symlinked_submissions_are_skipped(graded):
    assert "linked_folder" not in graded[0] and "linked" not in graded[0]


def test_one_job_that_breaks_the_grader_is_that_exercises_error_only(tmp_path, monkeypatch):
    real = sandbox.run_job

    def broken(job, timeout, **kwargs):
        if b'"function":"batched_matmul"' in job:
            raise OSError("no more processes")
        return real(job, timeout, **kwargs)

    monkeypatch.setattr(sandbox, "run_job", broken)
    write(tmp_path / "subs" / "alice", "00_foundations.ipynb", SOLUTION)
    assert main([str(tmp_path / "subs"), "--timeout", "20", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    scores = json.loads((tmp_path / "g.json").read_text())["alice"]["00_foundations"]
    assert (
        scores["batched_matmul"]["status"] == "error" and "no more processes" in scores["batched_matmul"]["messages"][0]
    )
    assert [s["status"] for k, s in scores.items() if k != "batched_matmul"] == ["passed"] * 3


def test_the_grader_says_which_isolation_is_in_force(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    assert main([str(tmp_path / "subs")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("isolation: ") and line.startswith("isolation: bubblewrap") == sandbox.sandboxed()


def test_a_result_with_many_keys_is_refused_at_once(tmp_path):
    """The old pickled result let 64k colliding keys keep the grader busy for 25 s; JSON objects are capped."""
    source = (
        ALONE_LINE + "import os, sys, struct\n"
        "keys = ','.join(f'\"k{i}\":0' for i in range(70_000))\n"
        'data = (\'{"kind":"result","status":"ran","cases":[],"x":{\' + keys + \'}}\').encode()\n'
        "os.write(int(sys.argv[1]), struct.pack('>I', len(data)) + data)\nos._exit(0)\n"
    )
    write(tmp_path / "subs" / "mallory", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", source))
    started = time.monotonic()
    assert main([str(tmp_path / "subs"), "--timeout", "20", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    result = json.loads((tmp_path / "g.json").read_text())["mallory"]["00_foundations"]["stable_softmax"]
    assert result["status"] == "error" and "not plain data" in result["messages"][0], result
    assert time.monotonic() - started < 60


MATMUL_HEADER = "def batched_matmul(a, b):\n"
WRONG_MATMUL = MATMUL_HEADER + "    return a  # wrong\n"
FORGES_A_RESULT = (  # a record for the next exercise, written to every descriptor the cell can find
    "import os, struct, json\n"
    "record = {'kind': 'result', 'exercise': 'batched_' + 'matmul', 'status': 'ran', 'message': '',\n"
    "          'cases': [{'value': 0.0, 'error': None}]}\n"
    "data = json.dumps(record).encode()\n"
    "for fd in range(3, 40):\n"
    "    try:\n"
    "        os.write(fd, struct.pack('>I', len(data)) + data)\n"
    "    except OSError:\n"
    "        pass\n"
)
RIGHT_MATMUL = "'def batched_' + 'matmul(a, b):\\n    return torch.einsum(\"bik,bkj->bij\", a, b)\\n'"
HIJACKS = {  # the first cell rewrites how the next exercise runs (attacker review): the next cell is wrong
    "patches_the_runner": "import __main__ as runner\n"
    "real = runner.Prepared.run\n"
    "def hijacked(self):\n"
    "    if self.exercise.startswith('batched'):\n"
    "        self.job = dict(self.job, source=" + RIGHT_MATMUL + ")\n"
    "    return real(self)\n"
    "runner.Prepared.run = hijacked\n",
    "rewrites_the_next_job": "import timeit, concurrent.futures\n"  # gc by a door the screen does not see
    "collector = timeit.gc\n"
    "found = concurrent.futures.ThreadPoolExecutor(1).submit(collector.get_objects).result()\n"
    "hits = [p for p in found if type(p).__name__ == 'Prepared' and p.exercise.startswith('batched')]\n"
    "assert hits, 'the next cell was not found'  # the attack reaches its target, in this cell's process\n"
    "for p in hits:\n"
    "    p.job = dict(p.job, source=" + RIGHT_MATMUL + ")\n",
}


def grade_bundles(subs, timeout=20):
    from course_tools.grade import grade_folder

    results, _, alone = grade_folder(subs, seed=1, timeout=timeout, jobs=2)
    statuses = {st: {e: str(s.status) for e, s in nbs["00_foundations"].items()} for st, nbs in results.items()}
    return statuses, alone


@needs_sandbox
def test_a_notebooks_cells_share_one_job_and_a_cell_that_hangs_costs_only_its_own_points(tmp_path):
    """Lesson 00's four cells run in one job, each in a process of its own; a cell that never returns is killed
    after its timeout and the cells after it still run in the same job."""
    subs = tmp_path / "subs"
    write(subs / "alice", "00_foundations.ipynb", SOLUTION)
    hangs = MATMUL_HEADER + "    while True:\n        pass\n"
    write(subs / "hangs", "00_foundations.ipynb", replaced(SOLUTION, "batched_matmul", hangs))
    big = SOFTMAX_HEADER + "    open('big.bin', 'wb').write(b'x' * 60 * 2**20)\n" + GOOD_SOFTMAX  # fills the scratch
    write(subs / "fills_the_scratch", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", big))
    started = time.monotonic()
    statuses, alone = grade_bundles(subs, timeout=8)
    assert statuses["alice"] == dict.fromkeys(statuses["alice"], "passed")
    assert statuses["fills_the_scratch"] == dict.fromkeys(statuses["alice"], "passed")  # emptied between cells
    assert statuses["hangs"] == {
        "stable_softmax": "passed",
        "batched_matmul": "timeout",
        "image_to_patches": "passed",
        "accumulated_step": "passed",
    }
    assert alone == 0
    assert time.monotonic() - started < 60


@needs_sandbox
def test_a_flag_in_a_bundle_is_that_cells_alone(tmp_path):
    looks = "import sys, operator\n" + MATMUL_HEADER + "    operator.attrgetter('_get' + 'frame')(sys)(0)\n"
    looks += "    return torch.einsum('bik,bkj->bij', a, b)\n"
    write(tmp_path / "subs" / "peeks", "00_foundations.ipynb", replaced(SOLUTION, "batched_matmul", looks))
    statuses, alone = grade_bundles(tmp_path / "subs")
    assert statuses["peeks"]["batched_matmul"] == "needs review"
    assert [statuses["peeks"][e] for e in ("stable_softmax", "image_to_patches", "accumulated_step")] == ["passed"] * 3
    assert alone == 0


@needs_sandbox
def test_a_result_forged_for_another_exercise_counts_for_the_forger_only(tmp_path):
    """In a bundle a cell has only its own pipe, and the job's parent labels what comes down it: a record that
    names the next exercise is taken as the forger's own (wrong) answer."""
    forger = FORGES_A_RESULT + SOFTMAX_HEADER + GOOD_SOFTMAX
    nb = replaced(replaced(SOLUTION, "stable_softmax", forger), "batched_matmul", WRONG_MATMUL)
    write(tmp_path / "subs" / "forger", "00_foundations.ipynb", nb)
    statuses, alone = grade_bundles(tmp_path / "subs")
    assert statuses["forger"] == {
        "stable_softmax": "error",  # its first result is the forged one, with the wrong number of cases
        "batched_matmul": "failed",
        "image_to_patches": "passed",
        "accumulated_step": "passed",
    }
    assert alone == 0


@needs_sandbox
def test_a_cell_that_garbles_its_own_pipe_in_a_bundle_loses_only_its_own_points(tmp_path):
    garbles = "import os\nfor fd in range(3, 40):\n    try:\n        os.write(fd, bytes([127, 255, 255, 255]))\n"
    garbles += "    except OSError:\n        pass\n" + SOFTMAX_HEADER + GOOD_SOFTMAX
    write(tmp_path / "subs" / "garbler", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", garbles))
    statuses, alone = grade_bundles(tmp_path / "subs")
    assert statuses["garbler"] == {
        "stable_softmax": "error",
        "batched_matmul": "passed",
        "image_to_patches": "passed",
        "accumulated_step": "passed",
    }
    assert alone == 0


IN_A_BUNDLE = (  # alone, a cell holds the grader's pipe; in a bundle, only a pipe of its own
    "import os, sys, stat\n"
    "def in_a_bundle():\n"
    "    try:\n"
    "        os.fstat(int(sys.argv[1]))\n"
    "        return False\n"
    "    except OSError:\n"
    "        return True\n"
)


@needs_sandbox
def test_what_a_bundled_cell_sends_is_checked_before_it_counts(tmp_path):
    """A result that does not parse as one (attacker review: it made the grader set the whole bundle aside and run
    every cell again) is that cell's error; the other cells stay settled by the bundle."""
    bogus = (
        IN_A_BUNDLE
        + (
            "import struct\n"
            "if in_a_bundle():\n"
            "    own = [f for f in range(3, 64) if os.path.exists(f'/proc/self/fd/{f}') and "
            "stat.S_ISFIFO(os.fstat(f).st_mode)][0]\n"
            '    bad = b\'{"kind":"result","status":"bogus","message":"","cases":[]}\'\n'
            "    os.write(own, struct.pack('>I', len(bad)) + bad)\n"
        )
        + SOFTMAX_HEADER
        + GOOD_SOFTMAX
    )
    write(tmp_path / "subs" / "bogus", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", bogus))
    statuses, alone = grade_bundles(tmp_path / "subs")
    assert statuses["bogus"]["stable_softmax"] == "error"
    assert [statuses["bogus"][e] for e in ("batched_matmul", "image_to_patches", "accumulated_step")] == ["passed"] * 3
    assert alone == 0


@needs_sandbox
def test_the_next_cell_finds_nothing_of_the_last(tmp_path):
    """Shared memory, a folder without permissions and a process left running by one cell are gone before the
    next cell starts."""
    leaves = (
        (
            "import ctypes, os, subprocess\n"
            "assert ctypes.CDLL(None).shmget(4242, 1 << 20, 0o1600) >= 0, 'no segment made'\n"
            "os.makedirs('/tmp/locked/inner')\nos.chmod('/tmp/locked', 0)\n"
            "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        )
        + SOFTMAX_HEADER
        + GOOD_SOFTMAX
    )
    checks = (
        "import os\n"
        "assert open('/proc/sysvipc/shm').read().count('\\n') == 1, 'shared memory left'\n"
        "assert os.listdir('/tmp') == [], os.listdir('/tmp')\n"
        "assert not any(open(f'/proc/{p}/cmdline').read().startswith('sleep') for p in os.listdir('/proc')"
        " if p.isdigit()), 'a process left'\n"
    ) + "def batched_matmul(a, b):\n    return torch.einsum('bik,bkj->bij', a, b)\n"
    nb = replaced(replaced(SOLUTION, "stable_softmax", leaves), "batched_matmul", checks)
    write(tmp_path / "subs" / "leaves", "00_foundations.ipynb", nb)
    statuses, alone = grade_bundles(tmp_path / "subs")
    assert statuses["leaves"]["batched_matmul"] == "passed"
    assert alone == 0


@needs_sandbox
def test_a_cell_that_stops_the_jobs_parent_costs_time_not_points(tmp_path):
    """A cell can stop the job's parent (the same uid): the bundle ends a timeout after its last record and the
    cells it did not settle run alone, so the wrong cell after it still fails."""
    stops = IN_A_BUNDLE + "import signal\nif in_a_bundle():\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
    stops += "def batched_matmul(a, b):\n    return torch.einsum('bik,bkj->bij', a, b)\n"
    wrong_patches = "def image_to_patches(images, patch):\n    return images\n"
    nb = replaced(replaced(SOLUTION, "batched_matmul", stops), "image_to_patches", wrong_patches)
    write(tmp_path / "subs" / "stopper", "00_foundations.ipynb", nb)
    started = time.monotonic()
    statuses, alone = grade_bundles(tmp_path / "subs", timeout=8)
    assert statuses["stopper"] == {
        "stable_softmax": "passed",
        "batched_matmul": "passed",
        "image_to_patches": "failed",
        "accumulated_step": "passed",
    }
    assert alone == 3
    assert time.monotonic() - started < 5 * 8 + 20  # (n + 1) timeouts, and start-ups


def test_a_result_of_millions_of_tiny_objects_is_refused_before_parsing():
    from course_tools.grading import wire

    started = time.monotonic()
    with pytest.raises(wire.WireError, match="objects and lists"):
        wire.loads(b"[" + b"{}," * 10_000_000 + b"{}]", max_bytes=64 * 2**20)
    assert time.monotonic() - started < 5


@needs_sandbox
@pytest.mark.parametrize("attack", sorted(HIJACKS))
def test_one_cell_cannot_change_how_another_is_graded(tmp_path, attack):
    """Each cell of a bundle runs in a process forked after the cells before it ended: what a cell patches or
    rewrites in its own process never reaches the next cell's."""
    nb = replaced(SOLUTION, "stable_softmax", HIJACKS[attack] + SOFTMAX_HEADER + GOOD_SOFTMAX)
    write(tmp_path / "subs" / "hijacker", "00_foundations.ipynb", replaced(nb, "batched_matmul", WRONG_MATMUL))
    statuses, _ = grade_bundles(tmp_path / "subs")
    # the runner's own module is out of reach (a stub `__main__`); the next cell's job is found, but in a copy
    assert (
        statuses["hijacker"]["stable_softmax"]
        == {"patches_the_runner": "error", "rewrites_the_next_job": "passed"}[attack]
    )
    assert statuses["hijacker"]["batched_matmul"] == "failed"
    assert statuses["hijacker"]["image_to_patches"] == "passed"


@needs_sandbox
def test_a_cell_that_calls_another_exercises_function_is_never_bundled():
    from course_tools.grade import bundled
    from course_tools.grading import registry

    exercises = registry.for_notebook("00_foundations")
    sources = {e.id: f"def {e.function}(*args):\n    pass\n" for e in exercises}
    assert bundled(exercises, sources)
    sources["image_to_patches"] += "y = batched_matmul\n"  # would need the reference, which a bundle never ships
    assert not bundled(exercises, sources)
    assert not bundled(exercises[:1], sources)
    # the exercise it names may not be in the bundle at all (its own cell missing or screened out)
    assert not bundled([e for e in exercises if e.id != "batched_matmul"], sources)
    sources["image_to_patches"] = "def image_to_patches(*args):\n    return 'batched_matmul'\n"  # text is no call
    assert bundled(exercises, sources)


def test_files_that_are_not_notebooks_never_stop_the_run(tmp_path):
    subs = tmp_path / "subs"
    write(subs / "alice", "00_foundations.ipynb", SOLUTION)
    write(subs / "deep", "00_foundations.ipynb", "[" * 100_000 + "]" * 100_000)  # nested past the parser
    (subs / "folder_00_foundations.ipynb").mkdir()  # a folder with a notebook's name
    os.mkfifo(subs / "fifo_00_foundations.ipynb")  # would block a reader forever
    (subs / "pipe").mkdir()
    os.mkfifo(subs / "pipe" / "00_foundations.ipynb")
    write(subs, "bob_00_foundations.ipynb", SOLUTION)  # two files that both say bob's lesson 00
    write(subs, "bob_00_foundations_.ipynb", SOLUTION)
    assert main([str(subs), "--timeout", "20", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    graded = json.loads((tmp_path / "g.json").read_text())
    assert {s["status"] for s in graded["alice"]["00_foundations"].values()} == {"passed"}
    assert {s["status"] for s in graded["deep"]["00_foundations"].values()} == {"unreadable"}
    bob = graded["bob"]["00_foundations"]
    assert {s["status"] for s in bob.values()} == {"error"}
    assert "two submissions" in bob["stable_softmax"]["messages"][0]
    assert "fifo" not in graded and "pipe" not in graded and "folder" not in graded


def test_a_helper_reference_never_computes_the_graded_answer(tmp_path):
    """Lesson 04: `train_merges` and `bpe_encode` are handed to the other cells; both call `most_frequent_pair` or
    `merge` by name, which in the job is the student's own function, never the reference."""
    solution = read_notebook(ROOT / "solutions" / "04_tokenization.ipynb")
    routes = {
        "most_frequent_pair": "def most_frequent_pair(ids):\n"
        "    return tuple(train_merges(bytes(i % 256 for i in ids).decode('latin-1'), 1)[0])\n",
        "merge": "def merge(ids, pair, new_id):\n    return bpe_encode(bytes(ids).decode('latin-1'), [pair])\n",
    }
    for exercise_id, source in routes.items():
        write(tmp_path / "subs" / exercise_id, "04_tokenization.ipynb", replaced(solution, exercise_id, source))
    assert main([str(tmp_path / "subs"), "--timeout", "30", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    graded = json.loads((tmp_path / "g.json").read_text())
    for exercise_id in routes:
        result = graded[exercise_id]["04_tokenization"][exercise_id]
        assert result["status"] in ("failed", "partial", "error") and result["points"] <= 0.2, result
    # merge: only the case with nothing to merge comes back right (bpe_encode returns before calling merge)
    assert "RecursionError" in graded["merge"]["04_tokenization"]["merge"]["messages"][0]


def test_the_job_gets_no_source_that_defines_the_graded_function():
    """For every exercise: the helpers and harness sent to the sandbox never define the graded function."""
    import ast

    from course_tools.grade import _shipped
    from course_tools.grading import registry

    for exercise_id in registry.catalog():
        exercise = registry.get(exercise_id)
        helpers, harness, _ = _shipped(exercise_id)
        for text in (helpers, harness):
            defined = {n.name for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            assert exercise.function not in defined, exercise_id
            assert "course_tools.grading.lessons" not in text, exercise_id


def test_the_librarys_own_version_is_not_in_the_job(tmp_path):
    """Lesson 06: course_lib.text.decoding holds a beam_search and a distinct_n; loaded fresh by a route the
    screen does not see (in a thread, by a computed name), it is the sandbox's copy, in which both raise."""
    solution = read_notebook(ROOT / "solutions" / "06_decoding.ipynb")
    fresh = (
        "import runpy, pkgutil\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "module = pkgutil.resolve_name('course' + '_lib.text.decoding').__name__\n"
        "library = ThreadPoolExecutor(1).submit(runpy.run_module, module).result()\n"
    )
    source = fresh + "def distinct_n(tokens, n):\n    return library['distinct_n'](tokens, n)\n"
    write(tmp_path / "subs" / "eve", "06_decoding.ipynb", replaced(solution, "distinct_n", source))
    assert main([str(tmp_path / "subs"), "--timeout", "30", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    result = json.loads((tmp_path / "g.json").read_text())["eve"]["06_decoding"]["distinct_n"]
    assert result["points"] == 0 and result["status"] == "needs review", result


def test_a_tensor_record_with_an_impossible_shape_is_refused():
    from course_tools.grading import wire

    record = b'{"$tensor":"float32","shape":[0,4611686018427387904,4611686018427387904],"data":""}'
    with pytest.raises(wire.WireError):
        wire.loads(record, max_bytes=1000)


def test_a_huge_cell_is_not_parsed_by_the_grader(tmp_path):
    huge = SOFTMAX_HEADER + "    return x\n" + "y = [" + "1," * 400_000 + "]\n"
    write(tmp_path / "subs" / "big", "00_foundations.ipynb", replaced(SOLUTION, "stable_softmax", huge))
    assert main([str(tmp_path / "subs"), "--timeout", "20", "--seed", "1", "--json", str(tmp_path / "g.json")]) == 0
    result = json.loads((tmp_path / "g.json").read_text())["big"]["00_foundations"]["stable_softmax"]
    assert result["status"] == "error" and "longer than" in result["messages"][0], result


def run_in_a_bare_job(probe: str, uid: int | None):
    """`python -I -c probe` in the job's sandbox (its mounts, uid and seccomp filter), with no runner."""
    import subprocess

    with sandbox._filter() as fd:
        return subprocess.run(
            [*sandbox._bwrap(uid, seccomp_fd=fd), sys.executable, "-I", "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=() if fd is None else (fd,),
            preexec_fn=lambda: os.umask(0o022),
        )


@needs_sandbox
def test_inside_the_sandbox_keyrings_and_new_namespaces_are_refused():
    """The attack cells above use ctypes, so they are flagged for review whatever happens; this runs the same
    calls in a bare job and reads their answers: EPERM from the seccomp filter, and threads still work. The job
    is in a user namespace of its own (whoever runs the grader, root included) that maps only its own uid."""

    probe = (
        "import ctypes, os, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "key = libc.syscall(248, b'user', b'course-grader-probe', b'x', 1, -4)\n"
        "err_key = ctypes.get_errno()\n"
        "userns = libc.unshare(0x10000000)\n"
        "err_ns = ctypes.get_errno()\n"
        "t = threading.Thread(target=lambda: None)\nt.start()\nt.join()\n"
        "print(key, err_key, userns, err_ns, os.getuid())\n"
        "print(open('/proc/self/uid_map').read().strip())\n"
    )
    uid = sandbox.JOB_UIDS[-2] if sandbox._as_root() else None
    done = run_in_a_bare_job(probe, uid)
    assert done.returncode == 0, done.stderr
    answers, uid_map = done.stdout.strip().splitlines()
    key, err_key, userns, err_ns, uid_inside = map(int, answers.split())
    assert (key, err_key, userns, err_ns) == (-1, 1, -1, 1)
    assert uid_inside != 0
    assert uid_map.split() == [str(uid_inside), str(os.getuid() if uid is None else uid), "1"]  # not the host's


def test_the_report_says_when_exercises_ran_alone(tmp_path, monkeypatch, capsys):
    from course_tools import grade

    monkeypatch.setattr(grade, "grade_folder", lambda *a, **k: ({}, [], 3))
    (tmp_path / "subs").mkdir()
    assert main([str(tmp_path / "subs"), "--seed", "1", "--unsandboxed"]) == 0
    assert "warning: 3 exercises ran in jobs of their own" in capsys.readouterr().out


@needs_sandbox
def test_bytecode_left_behind_by_a_moved_module_is_empty_inside_the_job():
    """An update that moves the specs (course_lib/grading/lessons -> course_tools/grading/lessons) leaves their
    compiled `__pycache__/*.pyc` behind, untracked: a job that finds one could unmarshal a reference. Every
    compiled module whose source is gone is covered by /dev/null inside the job: nothing to read, through a
    symbolic link too."""

    stale = sandbox.LIBRARY / "grading" / "lessons" / "__pycache__" / "lesson00.cpython-311.pyc"
    made = not stale.parent.exists()
    stale.parent.mkdir(parents=True, exist_ok=True)
    try:
        stale.write_bytes(b"the old layout's compiled spec")
        stale.chmod(0o644)
        for folder in (stale.parent, stale.parent.parent, stale.parent.parent.parent):
            folder.chmod(0o755)
        assert stale in sandbox.orphaned_bytecode()
        probe = (
            "import os\n"
            "os.mkdir('/tmp/d')\n"  # a folder of the job's own: /tmp is sticky, where links are not followed
            f"os.symlink({str(stale)!r}, '/tmp/d/link')\n"
            "def read(path):\n"
            "    try:\n"
            "        return open(path, 'rb').read()\n"
            "    except PermissionError:\n"  # /dev/null on a nodev mount cannot be opened: as hidden as empty
            "        return b''\n"
            f"print(len(read('/tmp/d/link')), len(read({str(stale)!r})))\n"
        )
        done = run_in_a_bare_job(probe, sandbox.JOB_UIDS[-3] if sandbox._as_root() else None)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0", "0"]
    finally:
        stale.unlink(missing_ok=True)
        if made:
            shutil.rmtree(sandbox.LIBRARY / "grading")
