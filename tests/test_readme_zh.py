"""The Chinese README is maintained with the English one: the same lessons, the same commands, the same links."""

import re

from tests.conftest import ROOT

LESSON = re.compile(r"^\| (\d\d(?:-\d\d)?) \| ", re.MULTILINE)
FENCE = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def syllabus(text: str) -> list[str]:
    section = text.split("\n## ")[2]  # the title, set up, then the syllabus
    return LESSON.findall(section.split("\n\n| lesson |")[0].split("\n\n| 课 |")[0])


def commands(text: str) -> list[str]:
    return [line.strip() for block in FENCE.findall(text) for line in block.splitlines() if line.strip()]


def test_both_readmes_list_the_same_lessons():
    english, chinese = syllabus(read("README.md")), syllabus(read("README.zh-CN.md"))
    assert english and english == chinese


def test_both_readmes_give_the_same_commands():
    english, chinese = commands(read("README.md")), commands(read("README.zh-CN.md"))
    missing = [c for c in english if c not in chinese]
    assert not missing, f"README.zh-CN.md lacks these commands of README.md: {missing}"
    assert not [c for c in chinese if c not in english]


def test_notebook_links_point_at_existing_lessons():
    for link in re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", read("README.zh-CN.md")):
        assert (ROOT / link).exists(), link
    assert (ROOT / "docs" / "glossary.zh-CN.md").exists()
