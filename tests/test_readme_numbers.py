"""The README's syllabus (and README.zh-CN.md's) quotes each lesson's results; every such number must be one the
lesson printed.

A number here is a decimal or a percentage in a lesson's "builds" cell ("99.8%", "1.647", "3.4x"); it must occur
in the text outputs that the committed notebook holds, so a re-run that changes a result fails until the README
is updated from the new outputs.
"""

import json
import re

import pytest

from tests.conftest import ROOT

ROW = re.compile(r"^\| (\d\d) \| \[[^\]]+\]\((notebooks/[^)]+\.ipynb)\) \| ([^|]*) \|", re.MULTILINE)
NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?:%|x\b)|(?<![\w.])\d+\.\d+(?![\w.])")


def syllabus_rows(readme: str = "README.md") -> list[tuple[str, str, str]]:
    return ROW.findall((ROOT / readme).read_text(encoding="utf-8"))


def printed(path: str) -> str:
    nb = json.loads((ROOT / path).read_text(encoding="utf-8"))
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def test_the_syllabus_lists_every_lesson():
    lessons = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [number for number, _, _ in syllabus_rows()] == lessons


@pytest.mark.parametrize(
    "number,path,builds",
    syllabus_rows() + syllabus_rows("README.zh-CN.md"),
    ids=lambda v: v if len(v) == 2 else "",
)
def test_syllabus_numbers_come_from_the_lessons_outputs(number, path, builds):
    outputs = printed(path)
    missing = [n for n in NUMBER.findall(builds) if n.replace("x", "×") not in outputs and n not in outputs]
    assert not missing, f"lesson {number}: the README quotes {missing}, which {path} does not print"


def test_the_exercise_table_gives_each_lessons_points():
    from course_tools.grading import registry

    table = re.findall(
        r"^\| (\d\d) \| (?!\[)[^\n]*\| (\d+) \|$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M
    )
    stems = {p.stem[:2]: p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    assert len(table) == len(stems)
    for number, points in table:
        assert int(points) == sum(e.points for e in registry.for_notebook(stems[number])), number
