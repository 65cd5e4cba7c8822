"""course_tools.web: the site's pinned JavaScript, committed in course_tools/web/vendor/ and checked by sha256.

The web edition serves these files itself, so a build needs no network and a page loads nothing from a CDN:
ipywidgets' HTML manager renders the saved widget state, MathJax the formulas. Only what a page uses is kept
(see vendor/README.md for the sources, licences and how to refresh them); MANIFEST.sha256 lists every file, and
`verify` refuses a build from a folder that differs from it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from course_lib.paths import sha256_file

VENDOR = Path(__file__).with_name("vendor")
MANIFEST = VENDOR / "MANIFEST.sha256"


@dataclass(frozen=True)
class Package:
    folder: str  # under vendor/, named <package>-<version>
    entry: str  # the script a page loads, relative to the folder


# ipywidgets 8.1 pairs with @jupyter-widgets/controls 5.0 and html-manager 1.0; embed.js bundles the standard
# widgets, so no widget module is fetched at page load.
HTML_MANAGER = Package("jupyter-widgets-html-manager-1.0.15", "dist/embed.js")
MATHJAX = Package("mathjax-3.2.2", "es5/tex-chtml.js")
PACKAGES = (HTML_MANAGER, MATHJAX)


def manifest() -> dict[str, str]:
    """{path relative to vendor/: sha256} as committed."""
    entries = {}
    for line in MANIFEST.read_text().splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def verify(vendor: Path = VENDOR) -> None:
    """Raise ValueError, naming the files, unless `vendor` holds exactly the manifest's files and contents."""
    expected = manifest()
    present = {p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if p.is_file()}
    present -= {MANIFEST.name, "README.md"}
    problems = [f"missing: {name}" for name in sorted(expected.keys() - present)]
    problems += [f"not in the manifest: {name}" for name in sorted(present - expected.keys())]
    problems += [
        f"changed: {name}" for name in sorted(expected.keys() & present) if sha256_file(vendor / name) != expected[name]
    ]
    if problems:
        raise ValueError(f"{vendor} does not match {MANIFEST.name}: " + "; ".join(problems[:10]))


def install(package: Package, static_dir: Path) -> Path:
    """Copy the package's committed files into `static_dir/<folder>/`; returns that folder."""
    target = static_dir / package.folder
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(VENDOR / package.folder, target)
    return target
