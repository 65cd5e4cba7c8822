"""course_lib: the reference version of every building block the course teaches.

Lessons write each block in the open, then import it from here in later lessons. Importing this package is
cheap: submodules, and torch with them, are imported on demand.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "pick_device", "seed_everything", "set_threads"]


def __getattr__(name: str) -> Any:
    if name in ("pick_device", "seed_everything", "set_threads"):
        from course_lib import device

        return getattr(device, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
