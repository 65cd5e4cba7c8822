"""Every lesson: `python -m course_lib.assign [--check]`, the exercise generator (see course_lib.grading.assign)."""

import sys

from course_lib.grading.assign import main

if __name__ == "__main__":
    sys.exit(main())
