"""python -m course_lib.data prepare: fill the cache so every lesson runs offline."""

import sys

from course_lib.data import prepare_all

if __name__ == "__main__":
    if sys.argv[1:] != ["prepare"]:
        sys.exit("usage: python -m course_lib.data prepare")
    prepare_all()
