"""Setup: the torch build `make install` chooses, the Pythons it accepts, and the Makefile running it first."""

import pytest

from course_tools import torch_build
from tests.conftest import PYPROJECT, ROOT


@pytest.mark.parametrize(
    ("wanted", "system", "nvidia", "build"),
    [
        ("auto", "Linux", False, "cpu"),  # a CPU-only Linux laptop: not PyPI's CUDA build
        ("auto", "Linux", True, "pypi"),
        ("auto", "Darwin", False, "pypi"),  # PyPI's macOS and Windows wheels carry no CUDA
        ("auto", "Windows", False, "pypi"),
        ("pypi", "Linux", False, "pypi"),
        ("cpu", "Linux", True, "cpu"),
    ],
)
def test_only_a_linux_machine_without_an_nvidia_driver_takes_the_cpu_build_unless_told(wanted, system, nvidia, build):
    assert torch_build.choose(wanted, system, nvidia) == build


def test_a_wrong_choice_says_what_is_expected():
    with pytest.raises(ValueError, match="expected auto, cpu or pypi"):
        torch_build.choose("gpu", "Linux", False)


def test_older_pythons_are_refused_and_newer_ones_only_warned():
    assert torch_build.python_problem((3, 12)) is None
    fatal, message = torch_build.python_problem((3, 10))
    assert fatal and "3.10 is older" in message and "3.11, 3.12, 3.13" in message
    fatal, message = torch_build.python_problem((3, 14))
    assert not fatal and "may work" in message


def test_the_supported_pythons_agree_with_pyproject_and_the_readmes():
    oldest = ".".join(map(str, torch_build.SUPPORTED[0]))
    assert PYPROJECT["project"]["requires-python"] == f">={oldest}"
    classifiers = {c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"] if "Python :: 3." in c}
    assert classifiers == {f"{a}.{b}" for a, b in torch_build.SUPPORTED}


def test_the_plan_names_the_build_and_its_download():
    cpu, cuda = torch_build.plan("cpu", "Linux", "2.13.0"), torch_build.plan("pypi", "Linux", "2.13.0")
    assert "CPU build" in cpu and "192 MB" in cpu
    assert "CUDA build" in cuda and "2.7 GB" in cuda
    assert "no CUDA" in torch_build.plan("pypi", "Darwin", "2.13.0")


def test_the_pinned_torch_is_the_locks(tmp_path):
    assert torch_build.pinned_torch() == PYPROJECT_TORCH
    empty = tmp_path / "constraints.txt"
    empty.write_text("numpy==2.0\n")
    with pytest.raises(ValueError, match="pins no torch"):
        torch_build.pinned_torch(empty)


PYPROJECT_TORCH = next(r.split("==")[1] for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch=="))


def test_make_install_chooses_torch_before_pip_installs_the_lock():
    recipe = (ROOT / "Makefile").read_text().split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines() if line.startswith("\t")]
    chooser = next(i for i, line in enumerate(lines) if "course_tools/torch_build.py --torch $(TORCH)" in line)
    installer = next(i for i, line in enumerate(lines) if "pip install" in line and "-c constraints.txt" in line)
    assert chooser < installer and "--quiet" not in lines[installer]  # pip's progress shows


def test_make_test_python_installs_another_python_in_a_venv_of_its_own_then_runs_the_library_tests():
    from tests.test_packaging import make_recipe

    (line,) = make_recipe("test-python")
    assert "test-fast" in line and "VENV=build/venv-$(notdir $(PYTHON))" in line and "PYTHON=$(PYTHON)" in line
