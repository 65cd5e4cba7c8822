"""The lesson manifest (course_lib/lessons.py) against what is really there: each notebook's imports, the library's
docstrings, the exercise specs, tests and benchmarks, and the README's table of modules per lesson.

Imports are read from source with `ast`, never run. A name imported from a package counts as the module that
defines it; the graph behind a notebook follows every course_lib import in every module, inside functions too.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from course_lib.lessons import LESSONS, Lesson, lesson, lessons_using, source_path, span
from tests.conftest import ROOT

LIB = ROOT / "course_lib"
NUMBERS = {entry.number for entry in LESSONS}
# not held to the docstring rule: the tools, which serve every lesson's exercises or the site, the manifest itself
EXEMPT = ("course_tools",)
EXEMPT_TOO = ("course_lib", "course_lib.lessons")
PREFIX = re.compile(r"(?P<word>Lessons?) (?P<list>\d\d(?:-\d\d)?(?:(?:, | and )\d\d(?:-\d\d)?)*):")


def module_file(module: str) -> Path | None:
    """The file of a dotted course_lib module or package, or None if there is none."""
    path = ROOT / Path(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def defines(path: Path, name: str) -> bool:
    """Whether the file binds `name` at its top level (def, class or assignment; imports do not count)."""
    for node in tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if name in {t.id for t in ast.walk(target) if isinstance(t, ast.Name)}:
                return True
    return False


def resolve(module: str, name: str) -> str:
    """The module that `from module import name` reaches: module.name if that is a module; else the module itself,
    unless it is a package that only re-exports the name, then the submodule it comes from."""
    if module_file(f"{module}.{name}"):
        return f"{module}.{name}"
    path = module_file(module)
    if path is None:
        raise ValueError(f"{module} is not a course_lib module")
    if path.name != "__init__.py" or defines(path, name):
        return module
    for node in ast.walk(tree(path)):  # `from course_lib.nn.attention import causal_mask`, at any depth
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return resolve(node.module, name)
    owners = [module_name(p) for p in sorted(path.parent.glob("*.py")) if p.name != "__init__.py" and defines(p, name)]
    if len(owners) != 1:  # a lazy `__getattr__` hands out a submodule's name; it must be exactly one's
        raise ValueError(f"from {module} import {name}: defined in {owners or 'none of its modules'}")
    return owners[0]


def course_lib_imports(source: str) -> set[str]:
    """Every course_lib module a piece of Python imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "course_lib"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "course_lib":
            found |= {resolve(node.module, alias.name) for alias in node.names}
    return found


def notebook_imports(path: Path) -> set[str]:
    """The course_lib modules a notebook's code cells import (IPython's % and ! lines left out)."""
    found = set()
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        try:
            found |= course_lib_imports(source)
        except SyntaxError as err:
            raise AssertionError(f"{path.name}, code cell {index}: {err}") from err
    return found


@cache
def graph() -> dict[str, frozenset[str]]:
    """Each course_lib module -> the course_lib modules it imports."""
    files = [p for root in (LIB, ROOT / "course_tools") for p in root.rglob("*.py") if "vendor" not in p.parts]
    return {module_name(p): frozenset(course_lib_imports(p.read_text(encoding="utf-8"))) for p in files}


def reached(modules: tuple[str, ...]) -> set[str]:
    """The modules given and every module they import, directly or not."""
    seen: set[str] = set()
    stack = list(modules)
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack += graph().get(module, ())
    return seen


def docstring_lessons(doc: str) -> set[int] | str:
    """The lessons a docstring starts with, or what is wrong with its start."""
    if doc.startswith("Every lesson:"):
        return set(NUMBERS)
    match = PREFIX.match(doc)
    if not match:
        return 'does not start with "Lesson NN:", "Lessons NN-NN, NN:" or "Every lesson:"'
    numbers: set[int] = set()
    for item in re.split(r", | and ", match["list"]):
        first, _, last = item.partition("-")
        if last and int(last) <= int(first):
            return f"has a backward range {item}"
        numbers |= set(range(int(first), int(last or first) + 1))
    if (match["word"] == "Lesson") != (len(numbers) == 1):
        return f'says "{match["word"]}" for {len(numbers)} lesson(s)'
    return numbers


def docstring_problems(docstrings: dict[str, str]) -> list[str]:
    """What disagrees between each module's docstring (module -> docstring) and the manifest."""
    problems = []
    for module, doc in sorted(docstrings.items()):
        if module in EXEMPT_TOO or module.endswith(".__main__") or module.startswith(EXEMPT):
            continue
        named = docstring_lessons(doc)
        if isinstance(named, str):
            problems.append(f"{module}: its docstring {named}: {doc.splitlines()[0][:70]!r}")
            continue
        taught = {entry.number for entry in lessons_using(module)}
        inside = (module, module + ".") if module_file(module).name == "__init__.py" else (module,)
        reaching = {e.number for e in LESSONS if any(m.startswith(inside) for m in reached(e.modules))}
        if taught and named != taught:
            problems.append(
                f"{module}: the manifest lists it for lessons {span(taught)}; its docstring names {span(named)}"
            )
        elif not taught and not named <= reaching:
            problems.append(
                f"{module}: its docstring names lessons {span(named - reaching)}, whose imports never reach it"
                f" (lessons {span(reaching) or 'none'} do)"
            )
    return problems


def library_docstrings() -> dict[str, str]:
    files = [p for root in (LIB, ROOT / "course_tools") for p in root.rglob("*.py") if "vendor" not in p.parts]
    return {module_name(p): ast.get_docstring(tree(p)) or "" for p in files}


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_exactly_one_entry_and_every_entry_a_notebook():
    listed = [entry.notebook for entry in LESSONS]
    assert len(listed) == len(set(listed)), "a notebook listed twice"
    assert sorted(listed) == [p.relative_to(ROOT).as_posix() for p in NOTEBOOKS]
    assert [e.number for e in LESSONS] == sorted(NUMBERS), "LESSONS in lesson order, each number once"


@pytest.mark.parametrize("entry", LESSONS, ids=lambda e: f"{e.number:02d}")
def test_number_and_title_are_the_notebooks(entry: Lesson):
    path = ROOT / entry.notebook
    assert path.name.startswith(f"{entry.number:02d}_")
    heading = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]).splitlines()[0]
    assert heading.startswith(f"# {entry.number:02d} · {entry.title}"), heading


@pytest.mark.parametrize("entry", LESSONS, ids=lambda e: f"{e.number:02d}")
def test_modules_are_exactly_what_the_notebook_imports(entry: Lesson):
    imported, listed = notebook_imports(ROOT / entry.notebook), set(entry.modules)
    assert not imported - listed, f"imported, but not in course_lib/lessons.py: {sorted(imported - listed)}"
    assert not listed - imported, f"in course_lib/lessons.py, but never imported: {sorted(listed - imported)}"
    assert len(entry.modules) == len(set(entry.modules))


@pytest.mark.parametrize("entry", LESSONS, ids=lambda e: f"{e.number:02d}")
def test_the_modules_behind_are_reached_through_the_imports(entry: Lesson):
    assert not set(entry.behind) & set(entry.modules), "a module is either imported or behind, not both"
    for module in entry.behind:
        assert module_file(module), f"{module} does not exist"
        assert module in reached(entry.modules), f"{module}: none of the lesson's imports lead to it"


def test_module_docstrings_name_the_lessons_that_use_them():
    problems = docstring_problems(library_docstrings())
    assert not problems, "module docstrings against course_lib/lessons.py (its docstring says the rule):\n" + "\n".join(
        problems
    )


def exempt_docstring_problems(docstrings: dict[str, str]) -> list[str]:
    """What is wrong with the docstrings that the lesson rule exempts: an exercise spec names its own lesson
    ("Lesson 05 exercises: ..."), a tool names every lesson or its own package ("course_tools.web: ...")."""
    problems = []
    for module, doc in sorted(docstrings.items()):
        spec = re.fullmatch(r"course_tools\.grading\.lessons\.lesson(\d\d)", module)
        if spec:
            start = f"Lesson {spec[1]} exercises: "
            if int(spec[1]) not in NUMBERS or not doc.startswith(start):
                problems.append(f"{module}: its docstring should start with {start!r}: {doc[:50]!r}")
        elif module in EXEMPT_TOO or module.endswith(".__main__") or module.startswith(EXEMPT):
            if module == "course_tools.grading.lessons":  # the specs' package, which says it holds one per lesson
                continue
            own = module.removesuffix(".__main__")
            names = (own, own.rpartition(".")[0])
            named = any(re.match(rf"(python -m )?{re.escape(n)}\b", doc) for n in names)
            if not doc.startswith("Every lesson") and not named:
                problems.append(f"{module}: its docstring names neither every lesson nor its package: {doc[:50]!r}")
    return problems


def test_exercise_specs_and_tools_docstrings_say_whom_they_serve():
    problems = exempt_docstring_problems(library_docstrings())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "module,doc",
    [
        ("course_tools.grading.lessons.lesson05", "Lesson 06 exercises: sampling."),
        ("course_tools.grading.lessons.lesson14", "Lesson 14 exercises: none."),
        ("course_tools.grading.feedback", "Lesson 00: check."),
        ("course_tools.web.build", "course_tools.grading: the site."),
        ("course_tools.doctor", ""),
    ],
)
def test_the_exempt_docstring_check_catches_a_wrong_start(module: str, doc: str):
    assert exempt_docstring_problems({module: doc})


@pytest.mark.parametrize(
    "module,doc,caught",
    [
        (
            "course_lib.models.gpt",
            "Lessons 05, 06, 14-16: GPT.",
            "for lessons 05-06, 15-16, 18; its docstring names 05-06, 14",
        ),
        ("course_lib.nn.kv_cache", "Lessons 06-07: a cache.", "lessons 06; its docstring names 06-07"),
        ("course_lib.models.seq2seq", "The recurrent encoder-decoder.", "does not start with"),
        ("course_lib.models.vae", "Lessons 08: a VAE.", 'says "Lessons" for 1 lesson'),
        ("course_lib.models", "Lessons 01-07: whole networks.", "names lessons 04, whose imports never reach it"),
        ("course_lib.paths", "Every lesson: where the cache is.", "names lessons 00, whose imports never reach it"),
    ],
)
def test_the_docstring_check_catches_a_wrong_list(module: str, doc: str, caught: str):
    problems = docstring_problems({module: doc})
    assert any(caught in p for p in problems), problems


@pytest.mark.parametrize("entry", LESSONS, ids=lambda e: f"{e.number:02d}")
def test_spec_tests_and_bench_exist_and_belong_to_the_lesson(entry: Lesson):
    spec = f"course_tools/grading/lessons/lesson{entry.number:02d}.py"
    assert entry.spec == (spec if (ROOT / spec).is_file() else None)
    own = set(entry.code) - set.intersection(*(set(e.modules) for e in LESSONS))
    for path in entry.tests + entry.bench:
        assert (ROOT / path).is_file(), f"{path} does not exist"
        assert course_lib_imports((ROOT / path).read_text()) & own, f"{path} imports none of the lesson's modules"


def test_every_test_and_benchmark_of_teaching_code_belongs_to_a_lesson():
    listed = {path for entry in LESSONS for path in entry.tests + entry.bench}
    teaching = {m for entry in LESSONS for m in entry.code if not m.startswith(EXEMPT)} - {"course_lib.device"}
    for path in sorted((ROOT / "tests").glob("test_*.py")) + sorted((ROOT / "bench").glob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if course_lib_imports(path.read_text()) & teaching:
            assert relative in listed, (
                f"{relative} checks a lesson's code; list it with that lesson in course_lib/lessons.py"
            )


def test_source_paths_and_lookup():
    for entry in LESSONS:
        for module in entry.code:
            assert (ROOT / source_path(module)).is_file(), module
    assert lesson(5).notebook == "notebooks/05_gpt.ipynb"
    with pytest.raises(KeyError, match="the lessons are 00, 01, .*13, 15, 16"):
        lesson(14)
    assert span([1, 2, 3, 5, 13, 15, 16]) == "01-03, 05, 13, 15-16"


def test_the_manifest_is_plain_data():
    code = "import sys, course_lib.lessons; print(sorted(m for m in sys.modules if m.startswith(('torch', 'numpy'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def readme_rows() -> dict[int, str]:
    """The README's table of modules per lesson: lesson number -> the row's modules cell."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("\n| lesson | modules it teaches or uses |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    return {int(line.split(" | ")[0][2:]): line.split(" | ", 1)[1].rstrip(" |") for line in table.splitlines()}


def readme_modules(cell: str) -> set[str]:
    """The modules a row names outside parentheses: `nn.attention.AdditiveAttention` is course_lib.nn.attention;
    a folder (`checkpoints/`) is not a module."""
    while re.search(r"\([^()]*\)", cell):
        cell = re.sub(r"\([^()]*\)", "", cell)
    modules = set()
    for token in re.findall(r"`([^`]+)`", cell):
        if token.endswith("/"):
            continue
        parts = f"course_lib.{token}".split(".")
        found = next((".".join(parts[:n]) for n in range(len(parts), 1, -1) if module_file(".".join(parts[:n]))), None)
        assert found, f"README.md names `{token}`, which is not a course_lib module"
        modules.add(found)
    return modules


def test_the_readme_table_lists_each_lessons_code():
    rows = readme_rows()
    assert sorted(rows) == sorted(NUMBERS)
    everywhere = set.intersection(*(set(e.modules) for e in LESSONS))  # said once, above the table
    problems = []
    for entry in LESSONS:
        named, expected = readme_modules(rows[entry.number]), set(entry.code) - everywhere
        if named != expected:
            missing, extra = sorted(expected - named), sorted(named - expected)
            problems.append(f"lesson {entry.number:02d}: missing {missing}, not the lesson's {extra}")
    assert not problems, "README.md's table against course_lib/lessons.py:\n" + "\n".join(problems)
