"""Every lesson (setup): `python -m course_tools.doctor`, OK/FAIL for Python, each pinned package, the device,
the data cache, the annotator's lexicon, the browser (Chromium, for the browser suite) and the web edition.

The first thing to run on a workshop laptop. Exit status 1 if anything FAILs.
"""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path

from course_tools.torch_build import python_problem


def _pins() -> list[tuple[str, str]]:
    """(package, pinned version) for every requirement course_lib declares, dev extra included."""
    pins = []
    for req in metadata.requires("course_lib") or []:
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^;\s]+)", req)
        if m:
            pins.append((m.group(1), m.group(2)))
    return pins


def cuda_without_gpu(cuda: str | None, gpu: bool, site: Path) -> str | None:
    """What to say when torch is a CUDA build (`cuda`, torch.version.cuda) on a machine with no usable GPU: how much
    disk that build and the CUDA libraries it pulled in take under `site` (site-packages). None otherwise."""
    if cuda is None or gpu:
        return None
    folders = [site / "torch", site / "triton", *sorted(site.glob("nvidia*"))]
    size = sum(f.stat().st_size for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file())
    return (
        f"torch is a CUDA {cuda} build but no GPU is usable here: it and the CUDA libraries (torch, triton, nvidia-*) "
        f"take {size / 2**30:.1f} GiB in {site}; the lessons run on the CPU either way"
    )


def run() -> int:
    """Print one line per check; return the number of failures."""
    failures = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'OK  ' if ok else 'FAIL'}  {what:<16} {detail}")

    problem = python_problem(sys.version_info[:2])
    report(problem is None or not problem[0], "python", f"{platform.python_version()} ({sys.executable})")
    if problem and not problem[0]:
        print(f"NOTE  {'python':<16} {problem[1]}")
    for name, wanted in _pins():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            report(False, name, f"not installed (want {wanted}): run `make install`")
            continue
        same = have.split("+")[0] == wanted
        report(same, name, have if same else f"{have}, but the course pins {wanted}")

    import torch

    from course_lib.device import pick_device

    try:
        device = pick_device()
        x = torch.randn(64, 64, device=device)
        ok = torch.isfinite(x @ x).all().item()
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        report(bool(ok), "device", f"{device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    except Exception as err:  # noqa: BLE001 - report, don't crash: the doctor must finish its list
        report(False, "device", str(err))
    note = cuda_without_gpu(torch.version.cuda, torch.cuda.is_available(), Path(torch.__file__).resolve().parents[1])
    if note:  # not a failure: everything works, it only costs disk
        print(f"NOTE  {'torch build':<16} {note}")

    from course_lib.data import shakespeare
    from course_lib.paths import cache_dir

    try:
        works = shakespeare.load_shakespeare()
        report(True, "data: shakespeare", f"{len(works)} works, sha256 verified, in {cache_dir()}")
    except Exception as err:  # noqa: BLE001
        report(False, "data: shakespeare", str(err))
    try:
        from course_lib.data import load_digits

        report(len(load_digits().test_labels) == 300, "data: digits", "scikit-learn's bundled digits")
    except Exception as err:  # noqa: BLE001
        report(False, "data: digits", str(err))
    try:
        from course_lib.alignment.preferences import true_reward

        score = true_reward(["I love thee"]).item()
        report(score > 0, "data: VADER", f"the annotator of lessons 15-16 scores 'I love thee' {score:+.3f}")
    except Exception as err:  # noqa: BLE001
        report(False, "data: VADER", str(err))
    from course_tools.grading import sandbox

    if sandbox.sandboxed():
        report(True, "grader sandbox", sandbox.isolation())
    else:  # only instructors who grade need it: said, not counted as a failure
        print(f"NOTE  {'grader sandbox':<16} {sandbox.sandbox_problem()}; the grader refuses without --unsandboxed")
    try:
        from course_tools.web.readiness import checks as web_checks

        web_lines = web_checks()
    except ImportError:  # an installed copy: the web edition is built from a checkout (make site)
        web_lines = [("NOTE", "web edition", "built from a checkout of the course (make site), not an installed copy")]
    for status, what, detail in web_lines:
        if status == "NOTE":  # optional (the browser suite): said, not counted as a failure
            print(f"NOTE  {what:<16} {detail}")
        else:
            report(status == "OK", what, detail)
    print("all good" if failures == 0 else f"{failures} problem(s): fix the FAIL lines above")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
