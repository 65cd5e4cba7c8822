"""course_lib: the reference version of every building block the course teaches.

Lessons write each block in the open, then import it from here in later lessons.
Importing this package is cheap: submodules are imported on demand.
"""
from course_lib.device import pick_device, seed_everything, set_threads

__version__ = "0.1.0"
__all__ = ["pick_device", "seed_everything", "set_threads", "__version__"]
