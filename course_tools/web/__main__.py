"""course_tools.web: `python -m course_tools.web [OUT]` builds the web edition into OUT (default build/site)."""

import json
import sys
from pathlib import Path

from course_tools.web.build import build

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/site").resolve()
    report = build(out)
    print(json.dumps(report))
    print(f"web edition: {report['pages']} pages in {report['seconds']} s -> {out}/index.html")
