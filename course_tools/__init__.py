"""course_tools: the course's tooling, kept apart from the teaching library (course_lib) that the lessons read.

- `grading/`: `check` in the notebooks, the exercise specs and the sandboxed grader;
- `assign.py`: `python -m course_tools.assign [--check]` turns solutions/ into exercises/;
- `grade.py`: `python -m course_tools.grade SUBMISSIONS` grades a folder of student notebooks;
- `web/`: `python -m course_tools.web` builds the web edition from a checkout (not installed by pip).
"""
