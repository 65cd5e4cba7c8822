"""Lessons 06-07: the plays' structure, parsed from the works' text: speaker headings, casts, speeches, sentences.

A speech in the corpus is a heading on a line of its own ("Ham." or "LADY MACBETH."), after a blank line,
then the speech. Lesson 06 reads which play's cast a generated heading names; lesson 07 takes the sentences
of the speeches that end in "?" or "." as a task the corpus labels itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from course_lib.data.shakespeare import load_shakespeare, work_text

HEADING = r"([A-Z][A-Za-z' ]{0,24})\."  # "Ham." or "LADY MACBETH."
# a heading is a line of its own after a blank line (or at the start), with the speech on the next line
SPEAKER_LINE = re.compile(r"(?:\A|(?<=\n\n))" + HEADING + r"\n(?=\S)")
NOT_SPEAKERS = re.compile(r"^(ACT|SCENE|Scene|Act|PERSONS|Persons)\b|^(Exit|Exeunt|Enter)")


def is_heading(line: str) -> bool:
    """Whether a line is a speaker heading ("Ham.") rather than an act or scene title."""
    match = re.fullmatch(HEADING, line.strip())
    return match is not None and not NOT_SPEAKERS.match(match.group(1))


def speaker_names(text: str) -> list[str]:
    """The speakers of a play's speeches, in order ("Ham", "LADY MACBETH"); act and scene titles excluded."""
    return [name for name in SPEAKER_LINE.findall(text) if not NOT_SPEAKERS.match(name)]


def casts(texts: dict[str, str], min_lines: int = 3) -> dict[str, set[str]]:
    """For each play, the speaker headings that occur at least `min_lines` times in it and in no other play."""
    counts = {title: Counter(speaker_names(text)) for title, text in texts.items()}
    cast = {title: {n for n, c in count.items() if c >= min_lines} for title, count in counts.items()}
    return {
        title: {n for n in names if not any(n in cast[o] for o in cast if o != title)} for title, names in cast.items()
    }


def cast_shares(text: str, cast: dict[str, set[str]]) -> dict[str, float]:
    """Of the speaker headings in `text`, the fraction that belong to each play's cast (the rest: to none)."""
    names = speaker_names(text)
    return {title: sum(n in members for n in names) / max(len(names), 1) for title, members in cast.items()}


def speech_starts(text: str) -> torch.Tensor:
    """Character offsets where a speaker heading begins (each example of the fine-tuning starts at one)."""
    return torch.tensor([m.start() for m in SPEAKER_LINE.finditer(text) if not NOT_SPEAKERS.match(m.group(1))])


@dataclass
class Speech:
    text: str
    label: int  # index into the plays
    speaker: str


def speeches(split: str, plays: tuple[str, ...], min_chars: int = 40) -> list[Speech]:
    """Every speech of at least `min_chars` characters in the plays' "train" or "val" part, stage directions removed."""
    out = []
    for label, play in enumerate(plays):
        for block in re.split(r"\n\s*\n", work_text(play, split)):
            heading, _, body = block.partition("\n")
            if not is_heading(heading):
                continue
            body = " ".join(re.sub(r"\[.*?\]", "", body).split())
            if len(body) >= min_chars:
                out.append(Speech(body, label, heading.rstrip(".")))
    return out


POEMS = (
    "A Lover's Complaint",
    "The Passionate Pilgrim",
    "The Phoenix and the Turtle",
    "The Rape of Lucrece",
    "Sonnets",
)
CAST_LIST = re.compile(r"[A-Z]{2,}\b")  # "BERTRAM, Count of Rousillon": a cast list, not a line
SENTENCE = re.compile(r"(.+?)([?!.])(?=\s+[A-Z'\"]|$)")  # up to a mark followed by a capital, or the end


@dataclass
class Line:
    text: str  # a sentence, its final mark removed
    label: int  # 1: it ends in "?", 0: it ends in "."
    play: str


def plays() -> tuple[str, ...]:
    """The titles of the 37 plays among the corpus's works (the poems have no speeches)."""
    return tuple(title for title in load_shakespeare() if title not in POEMS)


def questions(split: str, min_words: int = 4, max_words: int = 30) -> list[Line]:
    """Every sentence of `min_words`-`max_words` words in the plays' speeches that ends in "?" or ".", without that
    mark. The corpus labels the task itself: does the line ask a question? Exclamations are left out."""
    titles, out = plays(), []
    for speech in speeches(split, titles):
        for match in SENTENCE.finditer(speech.text):
            body, mark = match.group(1).strip(" -'\""), match.group(2)
            keep = (
                mark != "!"
                and min_words <= len(body.split()) <= max_words
                and not CAST_LIST.match(body)
                and not re.search(r"[?!]", body)
            )  # one mark, at the end
            if keep:
                out.append(Line(body, int(mark == "?"), titles[speech.label]))
    return out
