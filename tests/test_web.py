"""The web edition's pieces that need no browser: pinned JavaScript checked by its integrity, the assembled
Sphinx source (home page = syllabus, language switches, Chinese pages), and Chromium discovery."""

import json

import pytest

from course_lib.web import build, readiness, vendor
from tests.conftest import ROOT


def test_a_tarball_that_does_not_match_its_pinned_integrity_is_refused():
    with pytest.raises(ValueError, match="integrity mismatch"):
        vendor._verify(b"not the package", vendor.HTML_MANAGER.integrity)


def test_a_missing_tarball_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make site"):
        vendor.tarball(vendor.MATHJAX, download=False)


def test_every_pinned_package_is_exact_and_served_from_the_registry():
    for package in vendor.PACKAGES:
        assert package.version.count(".") == 2 and package.integrity.startswith("sha512-")
        assert package.tarball_url.startswith("https://registry.npmjs.org/")


def test_the_assembled_source_has_the_syllabus_home_page_and_language_switches(tmp_path):
    counts = build.assemble(tmp_path / "src")
    lessons = build.lesson_stems()
    assert counts == {"notebooks": len(lessons), "solutions": len(lessons), "exercises": len(lessons),
                      "zh": len(lessons) + 1}  # fmt: skip
    home = (tmp_path / "src" / "index.md").read_text()
    assert "## Syllabus" in home and "## Set up" not in home
    assert "](notebooks/15_rlhf.ipynb)" in home and "](zh/index.md)" in home
    lesson = json.loads((tmp_path / "src" / "notebooks" / "15_rlhf.ipynb").read_text())
    assert "../zh/15_rlhf.html" in lesson["cells"][0]["source"]
    original = json.loads((ROOT / "notebooks" / "15_rlhf.ipynb").read_text())
    assert lesson["cells"][1:] == original["cells"]  # committed outputs untouched
    zh = (tmp_path / "src" / "zh" / "15_rlhf.md").read_text()
    assert "](../notebooks/15_rlhf.ipynb)" in zh and "../../../" not in zh
    assert "## 课程大纲" in (tmp_path / "src" / "zh" / "index.md").read_text()
    solutions = json.loads((tmp_path / "src" / "solutions" / "00_foundations.ipynb").read_text())
    assert "".join(solutions["cells"][0]["source"]).startswith("# 00 · Foundations: solutions\n")


def test_chromium_is_found_only_where_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "missing"))
    assert readiness.chromium_path() is None
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho Chromium 1.2.3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(fake))
    assert readiness.chromium_path() == str(fake)
    assert readiness.checks()[0][:2] == ("OK", "browser")
