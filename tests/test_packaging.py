"""Versions are pinned in one place (pyproject.toml) plus the lock (constraints.txt); environment.yml uses both."""

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
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_constraints_lock_agrees_with_pyproject():
    lock = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[name.lower().replace("_", "-")] = version
    for name, version in pyproject_pins().items():
        assert lock.get(name.replace("_", "-")) == version, (
            f"constraints.txt pins {name} at {lock.get(name)}, pyproject at {version}"
        )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
