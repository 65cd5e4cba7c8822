"""course_tools.web: the web edition (`make site`) and the browser checks' readiness.

`python -m course_tools.web build/site` builds every lesson, solutions and exercise notebook, with its committed
outputs, into a static site; see `build.py`. Nothing here is imported by lessons.
"""
