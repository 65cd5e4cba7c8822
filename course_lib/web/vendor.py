"""course_lib.web: the site's pinned JavaScript, fetched once from the npm registry and checked by its integrity.

The web edition serves these files itself (never a CDN at page load): ipywidgets' HTML manager renders the
saved widget state, MathJax the formulas. Each tarball is verified against npm's sha512 before use and cached
under the course cache, so a second build is offline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from course_lib.paths import atomic_write_bytes, cache_dir

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # npm's "sha512-<base64>" of the tarball
    keep: tuple[str, ...]  # path prefixes inside the package to copy into the site

    @property
    def tarball_url(self) -> str:
        base = self.name.split("/")[-1]
        return f"{REGISTRY}/{self.name}/-/{base}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        return f"{self.name.replace('/', '-').lstrip('@')}-{self.version}"


# ipywidgets 8.1 pairs with @jupyter-widgets/controls 5.0 and html-manager 1.0; embed.js bundles the
# standard widgets, so no widget module is fetched from a CDN at page load.
HTML_MANAGER = NpmPackage(
    "@jupyter-widgets/html-manager",
    "1.0.15",
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
    keep=("package/dist/embed.js", "package/dist/embed.js.LICENSE.txt", "package/dist/*.woff", "package/dist/*.woff2",
          "package/dist/*.ttf", "package/dist/*.eot", "package/dist/*.svg", "package/LICENSE"),
)  # fmt: skip
MATHJAX = NpmPackage(
    "mathjax",
    "3.2.2",
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
    keep=("package/es5/tex-chtml.js", "package/es5/output/chtml/fonts/woff-v2/", "package/es5/input/tex/extensions/",
          "package/es5/ui/", "package/es5/a11y/", "package/LICENSE"),
)  # fmt: skip
PACKAGES = (HTML_MANAGER, MATHJAX)


def _verify(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise ValueError(f"tarball integrity mismatch: expected {integrity}, got {algorithm}-{got}")


def tarball(package: NpmPackage, *, download: bool = True) -> Path:
    """The verified tarball in the cache, downloaded from the npm registry the first time."""
    path = cache_dir() / "web" / f"{package.folder}.tgz"
    if path.exists():
        _verify(path.read_bytes(), package.integrity)
        return path
    if not download:
        raise FileNotFoundError(f"{package.name}@{package.version} is not cached ({path}); `make site` fetches it")
    with urllib.request.urlopen(package.tarball_url, timeout=120) as response:
        data = response.read()
    _verify(data, package.integrity)
    atomic_write_bytes(path, data)
    return path


def _kept(name: str, keep: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(name.startswith(k) if k.endswith("/") else fnmatch(name, k) for k in keep)


def install(package: NpmPackage, static_dir: Path) -> Path:
    """Copy the package's kept files into `static_dir/<name>-<version>/`; returns that folder."""
    target = static_dir / package.folder
    if target.exists():
        shutil.rmtree(target)
    with tarfile.open(fileobj=io.BytesIO(tarball(package).read_bytes()), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile() and _kept(member.name, package.keep):
                relative = member.name.removeprefix("package/")
                out = target / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
    return target
