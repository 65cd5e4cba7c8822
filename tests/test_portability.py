"""Every lesson passes on every learner's machine: nbval compares a cell's output only where that output cannot
depend on floating-point order, and `make test-portability` recomputes everything as another CPU would.

Learners run the notebooks on Apple silicon, AMD and older Intel CPUs, with any number of threads, and on GPUs.
Their floating-point results differ in the last bits, so their trained models, samples and every number computed
from them differ slightly. A cell tagged `nbval-check-output` must therefore print only what no such difference
can move. This module is the one list of those cells, each with its reason: tagging a new cell fails here until
it is added with one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TAG = "nbval-check-output"

# Cells identified by their notebook and the start of their first line.
CHECKED_OUTPUTS = {
    ("notebooks/00_foundations.ipynb", "from course_tools.grading import check"): (
        "the naive softmax's failures on check's fixed logits: exp(1000) overflows to inf and exp(-1000) to 0 "
        "in IEEE arithmetic on every device, so the NaN counts are exact"
    ),
    ("notebooks/15_rlhf.ipynb", "examples = ["): (
        "VADER's scores of fixed sentences: pure Python arithmetic (no torch, no threads), printed to 3 decimals"
    ),
    ("notebooks/15_rlhf.ipynb", "print(true_reward("): "VADER's scores of fixed strings, as above, to 4 decimals",
}
CHECK_VERDICT = re.compile(r'check\("(\w+)", (\w+)\)')
CHECK_REASON = (
    "check()'s verdict on the reference solution: every case within the reference's tolerance, a pass/fail line "
    "with no computed value"
)


def tagged_cells() -> list[tuple[str, str, str]]:
    """(notebook, first line, whole source) of every cell whose output nbval compares."""
    found = []
    for folder in ("notebooks", "solutions"):  # exercises/ keep the tags of their solutions but nbval never runs them
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
                if TAG in cell.get("metadata", {}).get("tags", []):
                    source = "".join(cell["source"])
                    found.append((f"{folder}/{path.name}", source.split("\n", 1)[0], source))
    return found


def reason_for(notebook: str, first_line: str, source: str) -> str | None:
    """Why this tagged cell's output is the same on every machine, or None if it is not listed."""
    verdict = CHECK_VERDICT.fullmatch(source.strip())
    if notebook.startswith("solutions/") and verdict and verdict[1] == verdict[2]:
        return CHECK_REASON
    return next(
        (why for (nb, start), why in CHECKED_OUTPUTS.items() if nb == notebook and first_line.startswith(start)), None
    )


def test_every_compared_output_has_a_reason_it_is_portable():
    unlisted = [f"{nb}: {line}" for nb, line, source in tagged_cells() if reason_for(nb, line, source) is None]
    assert not unlisted, (
        f"these cells are tagged {TAG} but not listed in CHECKED_OUTPUTS with a reason their output cannot depend "
        f"on floating-point order (a trained model's or a sample's output never qualifies): {unlisted}"
    )


def test_every_listed_cell_is_still_tagged():
    tagged = tagged_cells()
    stale = [
        (nb, start)
        for nb, start in CHECKED_OUTPUTS
        if not any(n == nb and line.startswith(start) for n, line, _ in tagged)
    ]
    assert not stale, f"CHECKED_OUTPUTS lists cells that are no longer tagged: {stale}"


def test_each_solution_verdict_names_an_exercise_of_its_notebook():
    from course_tools.grading import registry

    for notebook, _, source in tagged_cells():
        verdict = CHECK_VERDICT.fullmatch(source.strip())
        if notebook.startswith("solutions/") and verdict:
            names = {e.id for e in registry.for_notebook(notebook.split("/")[1].removesuffix(".ipynb"))}
            assert verdict[1] in names, f"{notebook}: check({verdict[1]!r}) is not one of its exercises {names}"


PROBE = """
import hashlib, torch, torch.nn.functional as F
torch.manual_seed(0)
digest = lambda t: hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16]
a, b, x = torch.randn(256, 256), torch.randn(256, 256), torch.randn(64, 1000)
print(torch.backends.cpu.get_cpu_capability(), digest(a @ b), digest(x.softmax(-1)),
      digest(F.conv2d(torch.randn(4, 8, 16, 16), torch.randn(8, 8, 3, 3))))
"""


def portable_cpu_env() -> dict[str, str]:
    """The variables `make test-portability` sets, read from the Makefile."""
    line = re.search(r"^PORTABLE_CPU := (.+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    return dict(pair.split("=", 1) for pair in line.split())


def run_probe(extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in portable_cpu_env()} | extra
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the kernel switches are x86's")
def test_the_emulated_cpu_computes_other_bits():
    env = portable_cpu_env()
    assert set(env) == {"MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"}
    native, emulated = run_probe({}), run_probe(env)
    if native[0] == "DEFAULT":
        pytest.skip("this CPU has no vector kernels to switch off")
    assert emulated[0] == "DEFAULT", emulated
    assert native[2] != emulated[2], "softmax gave the same bits with ATen's vector kernels switched off"
