"""Every lesson: `python -m course_lib.grade SUBMISSIONS_DIR`, the CLI grader (see course_lib.grading.grade)."""

import sys

from course_lib.grading.grade import main

if __name__ == "__main__":
    sys.exit(main())
