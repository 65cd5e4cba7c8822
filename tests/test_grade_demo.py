"""Every lesson's instructor: `make grade-demo` writes three sample students and grades them as it says."""

import json

from course_tools.grading.demo import main


def test_grade_demo_scores_correct_partial_and_broken(tmp_path, capsys):
    assert main([str(tmp_path), "--timeout", "5"]) == 0
    grades = json.loads((tmp_path / "grades.json").read_text())
    totals = {student: sum(s["points"] for s in nbs["00_foundations"].values()) for student, nbs in grades.items()}
    assert totals == {"ada": 8, "ben": 4, "cy": 0}
    statuses = {ex: s["status"] for ex, s in grades["cy"]["00_foundations"].items()}
    assert statuses["stable_softmax"] == "forbidden" and statuses["image_to_patches"] == "timeout"
    assert statuses["batched_matmul"] == "error"
    assert "ada" in capsys.readouterr().out and (tmp_path / "grades.csv").exists()
