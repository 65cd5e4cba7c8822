"""Every lesson: every dataset the course uses, offline, shipped by a dependency or generated here."""

from course_lib.data.digits import Digits, load_digits
from course_lib.data.number_words import Pair, is_held_out, number_words, translation_pairs
from course_lib.data.shakespeare import load_shakespeare, shakespeare_text, work_text

__all__ = [
    "Digits",
    "load_digits",
    "load_shakespeare",
    "shakespeare_text",
    "work_text",
    "Pair",
    "is_held_out",
    "number_words",
    "translation_pairs",
    "prepare_all",
]


def prepare_all(quiet: bool = False) -> None:
    """Fetch or build everything the lessons need, so they then run offline."""
    from course_lib.data import shakespeare

    path = shakespeare.prepare(quiet=quiet)
    works = load_shakespeare()
    digits = load_digits()
    pairs = translation_pairs()
    if not quiet:
        print(f"shakespeare: {len(works)} works, {sum(map(len, works.values())):,} characters ({path})")
        print(f"digits: {len(digits.train_labels)} train / {len(digits.test_labels)} test images")
        print(f"number pairs: {len(pairs['train'])} train / {len(pairs['test'])} test")
