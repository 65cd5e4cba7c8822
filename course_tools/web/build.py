"""course_tools.web: assemble the web edition's source (home page, lessons, solutions, exercises, the Chinese
pages) from the repository, then build it with Sphinx and myst-nb into static HTML.

The home page is the README's introduction and syllabus (links to notebooks become links to pages); each lesson
page starts with a language switch to its Chinese page (docs/zh/lessons/), which gives the lesson's opening and
closing in Chinese and links back, and with links to the lesson's code: one page per module that
course_lib/lessons.py lists for it, showing the module's source. The build needs no network: the JavaScript it
serves is committed (vendor/).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from course_lib import lessons
from course_tools.web import vendor

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_FOLDERS = ("notebooks", "solutions", "exercises")
ZH_LESSONS = ROOT / "docs" / "zh" / "lessons"
CSS = """
.lang-switch { font-size: 0.95em; margin-bottom: 0.8em; }
.lang-switch a { font-weight: 600; }
"""
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#3465a4"/>'
    '<text x="8" y="12.5" font-size="11" text-anchor="middle" fill="white" font-family="sans-serif">G</text></svg>'
)
MATHJAX2_HUB_SHIM = """// ipywidgets typesets with MathJax 2's MathJax.Hub.Queue; MathJax 3 has no Hub.
if (window.MathJax && !window.MathJax.Hub) {
  window.MathJax.Hub = {
    Queue: (command) => {
      const element = Array.isArray(command) ? command[2] : undefined;
      const mathjax = window.MathJax;
      if (mathjax.startup && mathjax.typesetPromise) {
        mathjax.startup.promise.then(() => mathjax.typesetPromise(element ? [element] : undefined));
      }
    },
  };
}
"""


def readme_sections(text: str, keep: tuple[str, ...]) -> str:
    """The README's text before its first '## ' heading, plus the sections whose headings are in `keep`."""
    parts = re.split(r"(?m)^(?=## )", text)
    out = [parts[0]]
    out += [p for p in parts[1:] if p.splitlines()[0][3:].strip() in keep]
    return "".join(out)


def _relink(markdown: str, prefix: str = "") -> str:
    """README links -> site pages: notebooks to their pages, the other README to the other home page."""
    markdown = re.sub(r"\]\((notebooks|solutions|exercises)/([\w\-]+)\.ipynb\)", rf"]({prefix}\1/\2.ipynb)", markdown)
    markdown = markdown.replace("](README.zh-CN.md)", f"]({prefix}zh/index.md)")
    markdown = markdown.replace("](README.md)", f"]({prefix}index.md)")
    markdown = markdown.replace("](docs/glossary.zh-CN.md)", f"]({prefix}glossary.zh-CN.md)")
    return markdown


def lesson_stems() -> list[str]:
    return sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _toctree(caption: str, entries: list[str], hidden: bool = False) -> str:
    options = f":caption: {caption}\n:maxdepth: 1\n" + (":hidden:\n" if hidden else "")
    return "```{toctree}\n" + options + "\n" + "\n".join(entries) + "\n```\n"


def _code_link(module: str) -> str:
    return f"[`{lessons.source_path(module)}`](../code/{module}.md)"


def code_line(lesson: lessons.Lesson) -> str:
    """The lesson page's links to its code, as the manifest lists it: the notebook's imports, then what is behind."""
    line = "**Code for this lesson:** " + " · ".join(_code_link(m) for m in lesson.modules)
    if lesson.behind:
        line += "; behind them: " + " · ".join(_code_link(m) for m in lesson.behind)
    return line + "\n"


def _with_header(notebook: dict, lesson: lessons.Lesson | None, zh_page: str | None) -> dict:
    """The lesson notebook with a first markdown cell: a link to its Chinese page, links to its code."""
    parts = []
    if zh_page:
        parts.append(f'<div class="lang-switch">English · <a href="{zh_page}">中文导读</a></div>\n')
    if lesson:
        parts.append(code_line(lesson))
    if not parts:
        return notebook
    cell = {"cell_type": "markdown", "metadata": {}, "source": "\n".join(parts)}
    return {**notebook, "cells": [cell, *notebook["cells"]]}


def code_page(module: str) -> str:
    """A module's page: its path, the lessons that list it (linked), and its source."""
    source = (lessons.ROOT / lessons.source_path(module)).read_text(encoding="utf-8")
    users = lessons.lessons_using(module)
    links = ", ".join(f"[{e.number:02d} · {e.title}](../{e.notebook})" for e in users)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
    return (
        f"# `{lessons.source_path(module)}`\n\n"
        f"`{module}`, the code of lesson{'s' if len(users) > 1 else ''} {links}.\n\n"
        f"{fence}python\n{source}{'' if source.endswith(chr(10)) else chr(10)}{fence}\n"
    )


def _titled_solutions(notebook: dict) -> dict:
    """A solutions notebook shares its exercises' title; on the site its title says which one it is."""
    first, *rest = notebook["cells"]
    source = "".join(first["source"])
    title, _, body = source.partition("\n")
    if title.startswith("# ") and title.endswith(": exercises"):
        title = title.removesuffix(": exercises") + ": solutions"
    return {**notebook, "cells": [{**first, "source": f"{title}\n{body}"}, *rest]}


def assemble(source: Path) -> dict[str, int]:
    """Write the Sphinx source tree under `source`; returns page counts by section."""
    if source.exists():
        shutil.rmtree(source)
    (source / "_static").mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("sphinx_conf.py"), source / "conf.py")
    (source / "_static" / "course.css").write_text(CSS)
    (source / "_static" / "favicon.svg").write_text(FAVICON)
    (source / "_static" / "mathjax2-hub-shim.js").write_text(MATHJAX2_HUB_SHIM)
    stems = lesson_stems()
    by_notebook = {entry.notebook: entry for entry in lessons.LESSONS}
    counts = {}
    for folder in NOTEBOOK_FOLDERS:
        (source / folder).mkdir()
        for path in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
            notebook = json.loads(path.read_text())
            if folder == "notebooks":
                zh = (ZH_LESSONS / f"{path.stem}.md").exists()
                lesson = by_notebook.get(f"notebooks/{path.name}")
                notebook = _with_header(notebook, lesson, f"../zh/{path.stem}.html" if zh else None)
            if folder == "solutions":
                notebook = _titled_solutions(notebook)
            (source / folder / path.name).write_text(json.dumps(notebook, ensure_ascii=False))
        counts[folder] = len(list((source / folder).glob("*.ipynb")))

    (source / "code").mkdir()
    modules = sorted({module for entry in lessons.LESSONS for module in entry.code})
    for module in modules:
        (source / "code" / f"{module}.md").write_text(code_page(module))
    counts["code"] = len(modules)

    readme = readme_sections((ROOT / "README.md").read_text(), ("Syllabus",))
    (source / "index.md").write_text(
        _relink(readme)
        + "\n"
        + _toctree("Lessons", [f"notebooks/{s}" for s in stems], hidden=True)
        + _toctree("Exercises (student versions)", [f"exercises/{s}" for s in stems], hidden=True)
        + _toctree("Solutions", [f"solutions/{s}" for s in stems], hidden=True)
        + _toctree("Library code", [f"code/{m}" for m in modules], hidden=True)
        + _toctree("中文", ["zh/index", "glossary.zh-CN"], hidden=True)
    )
    shutil.copy(ROOT / "docs" / "glossary.zh-CN.md", source / "glossary.zh-CN.md")

    (source / "zh").mkdir()
    zh_pages = []
    for stem in stems:
        page = ZH_LESSONS / f"{stem}.md"
        if page.exists():
            text = page.read_text().replace("](../../../", "](../")  # repository-relative -> site-relative
            switch = f'<div class="lang-switch"><a href="../notebooks/{stem}.html">English</a> · 中文导读</div>\n\n'
            (source / "zh" / f"{stem}.md").write_text(switch + text)
            zh_pages.append(stem)
    zh_readme = readme_sections((ROOT / "README.zh-CN.md").read_text(), ("课程大纲",))
    zh_links = "\n".join(f"- [{s[:2]} · 中文导读]({s}.md)" for s in zh_pages)
    (source / "zh" / "index.md").write_text(
        _relink(zh_readme, prefix="../").replace("](../zh/index.md)", "](index.md)")
        + "\n## 各课中文导读\n\n每课的开篇（你将构建什么）和结尾（要记住的）译成中文；完整的课程正文是英文。\n\n"
        + zh_links
        + "\n\n"
        + _toctree("各课中文导读", zh_pages, hidden=True)
    )
    counts["zh"] = len(zh_pages) + 1
    return counts


def build(out: Path, source: Path | None = None) -> dict[str, object]:
    """Assemble and build the site into `out`; returns what was built and how long it took."""
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    source = source or out.parent / "site-src"
    counts = assemble(source)
    vendor.verify()
    for package in vendor.PACKAGES:
        vendor.install(package, source / "_static")
    if out.exists():
        shutil.rmtree(out)
    status = build_main(["-b", "html", "-q", "-j", "auto", str(source), str(out)])
    if status != 0:
        raise RuntimeError(f"sphinx-build failed with status {status}")
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html") if not p.name.startswith("_"))
    return {"seconds": round(time.perf_counter() - start, 1), "pages": len(pages), "sections": counts}
