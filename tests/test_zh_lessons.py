"""The Chinese edition's lesson pages (docs/zh/lessons/): one per lesson, with the lesson's opening and closing,
and no number the English lesson does not have."""

import json
import re

import pytest

from tests.conftest import ROOT

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def lesson_text(path) -> str:
    """Everything the English lesson says: markdown, code and outputs."""
    parts = []
    for cell in json.loads(path.read_text())["cells"]:
        parts.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_has_a_chinese_opening_and_closing(lesson):
    page = ROOT / "docs" / "zh" / "lessons" / f"{lesson.stem}.md"
    assert page.exists(), f"{page.relative_to(ROOT)} is missing: write the lesson's opening and closing in Chinese"
    text = page.read_text()
    assert text.startswith(f"# {lesson.stem[:2]} · ")
    assert "## 你将构建" in text and "## 要记住的" in text
    english = lesson_text(lesson)
    assert re.search(r"\*\*(What )?[Yy]ou will build", english) and "## What to remember" in english
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (page.parent / link).resolve().exists(), f"{page.name}: broken link {link}"
    for number in set(NUMBER.findall(text)):
        assert number in english, f"{page.name} says {number}, which lesson {lesson.stem} never does"
