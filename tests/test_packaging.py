"""Packaging: versions are pinned in one place (pyproject.toml) plus the lock (constraints.txt); environment.yml uses
both; the READMEs ask for the Python pyproject.toml requires; CI runs the README's test command."""

import re

from tests.conftest import PYPROJECT, ROOT


def pyproject_pins() -> dict[str, str]:
    meta = PYPROJECT["project"]
    reqs = meta["dependencies"] + [r for extra in meta["optional-dependencies"].values() for r in extra]
    pins = {}
    for req in reqs:
        name, _, version = req.partition("==")
        assert version, f"pyproject.toml: {req!r} is not pinned with =="
        pins[name.lower()] = version
    return pins


def test_environment_yml_installs_the_course_with_the_lock_and_pins_nothing_itself():
    text = (ROOT / "environment.yml").read_text()
    pip_lines = [line.strip()[2:] for line in text.splitlines() if line.startswith("      - ")]
    assert pip_lines == ["-c constraints.txt", "-e .[dev]"]
    assert "==" not in text


def test_requires_python_admits_only_what_the_code_and_tests_need():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"  # tomllib (tests) is 3.11+
    lines = [line.strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    dependencies = lines[lines.index("dependencies:") + 1 :]
    pythons = [line.removeprefix("- ") for line in dependencies if line.startswith("- python")]
    assert pythons == ["python=3.11"]  # the conda environment's one Python, the oldest the code supports


def test_the_readmes_ask_for_the_pythons_that_are_tested():
    from course_tools.torch_build import SUPPORTED

    names = [f"{a}.{b}" for a, b in SUPPORTED]
    english, chinese = (ROOT / "README.md").read_text(), (ROOT / "README.zh-CN.md").read_text()
    assert f"You need Python {', '.join(names[:-1])} or {names[-1]}" in english
    assert f"你需要 Python {'、'.join(names[:-1])} 或 {names[-1]}" in chinese
    for name, text in (("README.md", english), ("README.zh-CN.md", chinese)):
        others = set(re.findall(r"Python (3\.\d+)", text)) - set(names) - {"3.10"}  # 3.10: said to be refused
        assert not others, f"{name} names Python {sorted(others)}; the course supports {names}"


def make_recipe(target: str) -> list[str]:
    """The command lines of a Makefile target, tabs stripped."""
    lines = (ROOT / "Makefile").read_text().split(f"\n{target}:", 1)[1].split("\n")[1:]
    recipe = []
    for line in lines:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_ci_runs_the_readme_test_command_and_it_runs_every_test_and_notebook():
    setup = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    assert "make test" in [line.split("#")[0].strip() for line in setup.splitlines()]  # a command, not a mention
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    ci = [line for line in ci if line and not line.startswith("#")]
    assert "set -euo pipefail" in ci and ci[-1] == "make test"  # CI's last command, whose failure fails CI
    pytest_lines = [line for line in make_recipe("test") if " -m pytest " in line]
    assert len(pytest_lines) == 1 and re.search(r"--nbval-lax .* tests notebooks solutions ", pytest_lines[0])
    assert "test-browser" in make_recipe("test")[-1]  # then the browser suite


def test_the_wheel_holds_the_library_and_the_grader_but_not_the_site_builder(tmp_path):
    """What `pip install .` puts in site-packages: course_lib (with the lesson 07 checkpoint) and course_tools'
    grader with its exercise specs; not course_tools.web or its vendored JavaScript, which run from a checkout."""
    import subprocess
    import sys
    import zipfile

    build = tmp_path / "src"  # a copy of what the wheel is built from, so no build output lands in the checkout
    build.mkdir()
    for name in ("course_lib", "course_tools", "pyproject.toml", "README.md"):
        subprocess.run(["cp", "-r", str(ROOT / name), str(build / name)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=build,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("course_lib-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "course_lib/models/gpt.py" in names and "course_tools/grading/sandbox.py" in names
    assert "course_tools/grading/lessons/lesson00.py" in names, "the grader needs the specs where it is installed"
    assert any(n.startswith("course_lib/checkpoints/") and n.endswith(".pt") for n in names)
    assert not [n for n in names if n.startswith("course_tools/web")], "the site builder runs from a checkout"
    assert not [n for n in names if "vendor" in n or n.endswith(".js")]
    assert not [n for n in names if "__pycache__" in n]
