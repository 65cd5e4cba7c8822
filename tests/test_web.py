"""The web edition's pieces that need no browser: the committed JavaScript checked against its manifest, the assembled
Sphinx source (home page = syllabus, language switches, Chinese pages), and Chromium discovery."""

import json
import shutil

import pytest

from course_lib.lessons import LESSONS
from course_tools.web import build, readiness, vendor
from tests.conftest import ROOT


def test_the_committed_javascript_matches_its_manifest():
    vendor.verify()
    for package in vendor.PACKAGES:
        assert (vendor.VENDOR / package.folder / package.entry).is_file()


def test_a_changed_missing_or_extra_vendored_file_is_refused(tmp_path):
    copy = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR, copy)
    (copy / vendor.MATHJAX.folder / vendor.MATHJAX.entry).write_text("// not MathJax")
    (copy / vendor.HTML_MANAGER.folder / "dist" / "embed.js").unlink()
    (copy / "extra.js").write_text("")
    with pytest.raises(ValueError) as err:
        vendor.verify(copy)
    message = str(err.value)
    assert "changed: mathjax-3.2.2/es5/tex-chtml.js" in message
    assert "missing: jupyter-widgets-html-manager-1.0.15/dist/embed.js" in message
    assert "not in the manifest: extra.js" in message


def test_the_assembled_source_has_the_syllabus_home_page_and_language_switches(tmp_path):
    counts = build.assemble(tmp_path / "src")
    lessons = build.lesson_stems()
    modules = {m for entry in LESSONS for m in entry.code}
    assert counts == {"notebooks": len(lessons), "solutions": len(lessons), "exercises": len(lessons),
                      "zh": len(lessons) + 1, "code": len(modules)}  # fmt: skip
    home = (tmp_path / "src" / "index.md").read_text()
    assert "## Syllabus" in home and "## Set up" not in home
    assert "](notebooks/15_rlhf.ipynb)" in home and "](zh/index.md)" in home
    lesson = json.loads((tmp_path / "src" / "notebooks" / "15_rlhf.ipynb").read_text())
    assert "../zh/15_rlhf.html" in lesson["cells"][0]["source"]
    original = json.loads((ROOT / "notebooks" / "15_rlhf.ipynb").read_text())
    assert lesson["cells"][1:] == original["cells"]  # committed outputs untouched
    assert "[`course_lib/alignment/ppo.py`](../code/course_lib.alignment.ppo.md)" in lesson["cells"][0]["source"]
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


def test_each_lesson_page_links_the_code_its_manifest_lists(tmp_path):
    build.assemble(tmp_path / "src")
    page = json.loads((tmp_path / "src" / "notebooks" / "01_seq2seq_attention.ipynb").read_text())
    header = page["cells"][0]["source"]
    imports, _, behind = header.partition("; behind them: ")
    assert "../code/course_lib.text.translation.md" in imports and "../code/course_lib.models.seq2seq.md" in behind
    code = (tmp_path / "src" / "code" / "course_lib.models.seq2seq.md").read_text()
    assert code.startswith("# `course_lib/models/seq2seq.py`\n")
    assert "[01 · Seq2Seq and attention](../notebooks/01_seq2seq_attention.ipynb)" in code
    assert "[03 · The Transformer](../notebooks/03_transformer.ipynb)" in code and "02_attention" not in code
    assert (ROOT / "course_lib" / "models" / "seq2seq.py").read_text() in code
    assert "code/course_lib.models.seq2seq" in (tmp_path / "src" / "index.md").read_text()
