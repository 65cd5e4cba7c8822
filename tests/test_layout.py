"""course_lib's imports run one way: infrastructure <- data, tokenizers <- blocks <- models <- task code <- UI, tools;
the tooling (course_tools) uses the library and never the reverse; networks live in models/, and no two modules
share a file name.

Every import in every module counts, including those inside functions and under TYPE_CHECKING.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LIB = ROOT / "course_lib"
# the layer of each top-level module or folder of course_lib; a module may import only its own layer or lower ones
LAYERS = {
    "__init__": 0,
    "cores": 0,
    "device": 0,
    "paths": 0,
    "lessons": 0,
    "artifacts": 1,
    "train": 1,
    "plots": 1,
    "data": 2,
    "tokenizers": 2,
    "nn": 3,
    "models": 4,
    "text": 5,
    "vision": 5,
    "multimodal": 5,
    "alignment": 5,
    "scale": 5,
    "responsible": 5,
    "widgets": 6,
}
NAMES = {
    0: "infrastructure",
    1: "infrastructure",
    2: "data",
    3: "blocks",
    4: "models",
    5: "task code",
    6: "UI",
    7: "tools",
}


def part(module: str) -> str:
    """course_lib.text.control -> "text"; course_lib -> "__init__"."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every course_lib import in a file's source; `from course_lib import x` counts as
    course_lib.x when x is a module or package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "course_lib"]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "course_lib"
            and node.level == 0
        ):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*sub.split("."))
                ).is_dir()
                found.append((node.lineno, sub if is_module else node.module))
    return found


def wrong_way_edges(extra: dict[Path, str] | None = None) -> list[str]:
    """Every import that runs the wrong way, in course_lib's files and in `extra` ({path: source}, for tests)."""
    problems = []
    files = {path: path.read_text(encoding="utf-8") for path in sorted(LIB.rglob("*.py"))} | (extra or {})
    for path, text in files.items():
        source = module_name(path)
        here = part(source)
        if here not in LAYERS:
            problems.append(f"{path.relative_to(ROOT)}: course_lib.{here} has no layer in tests/test_layout.py")
            continue
        for line, target in imports(text):
            there = part(target)
            if there not in LAYERS:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target}, which has no layer")
            elif LAYERS[there] > LAYERS[here]:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line}: {NAMES[LAYERS[here]]} ({source}) imports "
                    f"{NAMES[LAYERS[there]]} ({target})"
                )
            elif there == "widgets" and here != "widgets":
                problems.append(f"{path.relative_to(ROOT)}:{line}: only notebooks import the UI ({target})")
    return problems


def test_imports_only_run_downward():
    problems = wrong_way_edges()
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source,target,caught",
    [
        (
            "course_lib/models/fake.py",
            "from course_lib.text.decoding import generate",
            "models (course_lib.models.fake) imports task code",
        ),
        (
            "course_lib/text/fake.py",
            "def f():\n    from course_lib import widgets",
            "task code (course_lib.text.fake) imports UI",
        ),
        ("course_lib/nn/fake.py", "import course_lib.models.gpt", "blocks (course_lib.nn.fake) imports models"),
    ],
)
def test_the_check_catches_a_wrong_way_import(source, target, caught):
    problems = wrong_way_edges({ROOT / source: target + "\n"})
    assert any(caught in p for p in problems), problems


def test_the_library_never_imports_the_tools():
    """course_lib is what the lessons teach from; the grader and the web builder (course_tools) sit on top of it."""
    problems = []
    for path in sorted(LIB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            problems += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n.startswith("course_tools")
            ]
    assert not problems, problems


def test_every_network_lives_in_models_or_nn():
    """Task code trains and evaluates networks; the nn.Modules themselves are in models/ (whole networks) or nn/
    (blocks), so a reader finds every architecture in one place."""
    outside = []
    for path in sorted(LIB.rglob("*.py")):
        if path.parent.name in ("models", "nn"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(b).endswith(("nn.Module", "nn.Sequential")) for b in node.bases
            ):
                outside.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not outside, f"networks outside models/ and nn/: {outside}"


def test_no_two_modules_share_a_file_name():
    """`vision/gan.py` beside `models/gan.py` made notebooks alias both; each file name now says one thing."""
    seen: dict[str, list[str]] = {}
    for root in (LIB, ROOT / "course_tools"):
        for path in sorted(root.rglob("*.py")):
            if path.name not in ("__init__.py", "__main__.py") and "lessons" not in path.relative_to(ROOT).parts:
                seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not twice, twice
