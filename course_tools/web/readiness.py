"""course_tools.web: is this machine ready for the browser suite and the web edition? (used by `make doctor`
and `make test`).

`python -m course_tools.web.readiness chromium` exits 0 when a Chromium binary is found, 1 otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from course_tools.web import vendor


def chromium_path() -> str | None:
    """The system Chromium: $CHROMIUM if it exists, else `chromium` or `chromium-browser` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"does not run: {err}"


def checks() -> list[tuple[str, str, str]]:
    """(status, what, detail) for the browser and the web edition; status is OK, FAIL or NOTE (optional, missing)."""
    results = []
    chromium = chromium_path()
    if chromium:
        results.append(("OK", "browser", f"{chromium_version(chromium)} at {chromium} (the browser suite runs)"))
    else:
        hint = "`apt install chromium` (or set CHROMIUM) to run the browser suite; lessons do not need it"
        results.append(("NOTE", "browser", f"no Chromium: {hint}"))
    for name in ("playwright", "sphinx", "myst-nb", "sphinx-book-theme"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            results.append(("FAIL", "web edition", f"{name} is not installed: run `make install`"))
            return results
    try:
        vendor.verify()
    except ValueError as err:
        results.append(("FAIL", "web edition", str(err)))
        return results
    detail = "Sphinx, myst-nb and the pinned widget renderer and MathJax are here: `make site` builds offline"
    results.append(("OK", "web edition", detail))
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["chromium"]:
        path = chromium_path()
        print(path or "no Chromium found")
        sys.exit(0 if path else 1)
    for status, what, detail in checks():
        print(f"{status:<4}  {what:<16} {detail}")
