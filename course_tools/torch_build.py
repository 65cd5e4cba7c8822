"""Every lesson (setup, `make install`): which build of torch this machine takes, and what the install downloads.

PyPI's torch for Linux is a CUDA build: with the NVIDIA libraries it pulls in it is a download of gigabytes, of
no use on a laptop without an NVIDIA GPU. So on Linux with no NVIDIA driver, `make install` first installs
PyTorch's CPU build of the pinned version from PyTorch's own wheel index, and the rest of the lock comes from
PyPI as usual. PyPI's wheels for macOS and Windows have no CUDA in them, so there nothing changes. `TORCH=cpu`
or `TORCH=pypi` (`--torch` here) overrides the choice. Where PyTorch's index cannot be reached, it says so and
pip takes PyPI's build.

Runs in the new virtual environment before the course is installed, so it uses only the standard library:
`python course_tools/torch_build.py --torch auto`. The sizes are measured (docs/experiments.md, 2026-12-06).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SUPPORTED = ((3, 11), (3, 12), (3, 13))  # each installed and tested by `make test-python`
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
# Downloads measured with `pip download -c constraints.txt ".[dev]"` on Linux x86_64, MB = 10^6 bytes: the CPU
# wheel for Python 3.11; PyPI's torch with triton and the NVIDIA libraries for 3.12 and 3.13 (the same to 1 MB);
# everything else in the lock (238 MB on both).
DOWNLOAD_MB = {"cpu": 192, "pypi": 2_730, "rest": 240}


def python_problem(version: tuple[int, int]) -> tuple[bool, str] | None:
    """None for a tested Python; else (fatal, what to say): older than the oldest is fatal, a newer one only said."""
    if version in SUPPORTED:
        return None
    names = ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)
    this = f"Python {version[0]}.{version[1]}"
    if version < SUPPORTED[0]:
        return True, (
            f"{this} is older than the course supports ({names}; pyproject.toml). "
            f"Install one of them and name it: make install PYTHON=python3.12"
        )
    return False, (
        f"{this} is newer than any the course is tested on ({names}): it may work; if pip finds no wheel "
        f"for a package, use 3.13 (make install PYTHON=python3.13)"
    )


def pinned_torch(constraints: Path = CONSTRAINTS) -> str:
    """The torch version the lock pins (constraints.txt is a checkout's file: an installed copy has none)."""
    if not constraints.is_file():
        raise FileNotFoundError(f"{constraints} not found: the install helper runs from a checkout of the course")
    for line in constraints.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == "torch" and version:
            return version.strip()
    raise ValueError(f"{constraints} pins no torch (expected a line torch==VERSION)")


def has_nvidia_driver() -> bool:
    """An NVIDIA driver is loaded (Linux) or its command-line tool is on PATH."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def choose(wanted: str, system: str, nvidia: bool) -> str:
    """'cpu' (PyTorch's CPU wheel index) or 'pypi' (PyPI's own build) for `wanted` in auto/cpu/pypi."""
    if wanted not in ("auto", "cpu", "pypi"):
        raise ValueError(f"TORCH={wanted!r}: expected auto, cpu or pypi")
    if wanted != "auto":
        return wanted
    return "cpu" if system == "Linux" and not nvidia else "pypi"


def plan(build: str, system: str, version: str) -> str:
    """What the install is about to download, in one paragraph."""
    rest = f"then about {DOWNLOAD_MB['rest']} MB of other packages from the lock (constraints.txt)"
    if build == "cpu":
        return (
            f"torch {version}: the CPU build from PyTorch's wheel index (about {DOWNLOAD_MB['cpu']} MB to "
            f"download; TORCH=pypi takes PyPI's CUDA build instead, about {DOWNLOAD_MB['pypi'] / 1000:.1f} GB), {rest}"
        )
    if system == "Linux":
        return (
            f"torch {version}: PyPI's CUDA build and the NVIDIA libraries it needs (about "
            f"{DOWNLOAD_MB['pypi'] / 1000:.1f} GB to download; TORCH=cpu takes the CPU build, about "
            f"{DOWNLOAD_MB['cpu']} MB), {rest}"
        )
    return f"torch {version} from PyPI (no CUDA in it on {system}), {rest}"


def install_cpu_build(version: str) -> bool:
    """pip-install torch==version from PyTorch's CPU index (no dependencies: the lock brings them). True if it did."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--retries", "1"]
    cmd += ["--timeout", "30", "--index-url", CPU_INDEX, f"torch=={version}"]
    print(" ".join(cmd[2:]), flush=True)
    return subprocess.run(cmd).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default="auto", help="auto (the default), cpu or pypi")
    args = parser.parse_args(argv)
    problem = python_problem(sys.version_info[:2])
    if problem:
        fatal, message = problem
        print(message, file=sys.stderr)
        if fatal:
            return 2
    system = platform.system()
    try:
        build = choose(args.torch, system, has_nvidia_driver())
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    version = pinned_torch()
    print(f"Installing for Python {platform.python_version()} on {system} {platform.machine()}:")
    print(plan(build, system, version), flush=True)
    if build == "cpu" and not install_cpu_build(version):
        print(
            f"PyTorch's CPU index ({CPU_INDEX}) could not be reached or has no torch {version} for this Python: "
            f"pip will take PyPI's build (on Linux the CUDA one, about {DOWNLOAD_MB['pypi'] / 1000:.1f} GB)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
