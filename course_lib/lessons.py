"""course_lib.lessons: the course's map, from each lesson to its notebook, the library code it teaches from, its
exercise spec, its tests and its benchmarks. Plain data: importing it loads nothing else of the course. The
paths (notebooks, specs, tests, benches) are a checkout's, from the repository root: an installed copy of the
library has the modules only.

    >>> from course_lib.lessons import lesson
    >>> lesson(5).modules[:2]
    ('course_lib.device', 'course_lib.models.gpt')

The rules, held by tests/test_lessons_manifest.py against the notebooks and the library:
- `modules` are exactly the course_lib modules the lesson's notebook imports. A name imported from a package
  counts as the module that defines it: `from course_lib.nn import causal_mask` is course_lib.nn.attention.
- `behind` are modules the lesson explains that its notebook reaches only through those imports (lesson 01's
  GRU translator lives in course_lib.models.seq2seq, behind course_lib.text.translation).
- Each library module's docstring starts with the lessons that use it: "Lesson 05: ...", "Lessons 01-03, 05: ..."
  (two-digit numbers and inclusive ranges, joined by ", " or " and "), or "Every lesson: ...". A module that
  lessons list (in `modules` or `behind`) names exactly those lessons, not every lesson whose imports happen to
  reach it. Any other module or package names only lessons whose imports reach it.
  This manifest and `__main__` modules are exempt, and so is course_tools (the grader, `check`, the web builder,
  assign, grade, doctor): tooling, not what a lesson teaches from, so no lesson lists it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Lesson:
    """One lesson: where its notebook is and which code, exercises, tests and benchmarks belong to it."""

    number: int
    title: str  # as the notebook's heading gives it, after "NN · "
    notebook: str  # path from the repository root
    modules: tuple[str, ...]  # course_lib modules the notebook imports, dotted
    behind: tuple[str, ...] = ()  # modules it explains that its imports use in turn
    spec: str | None = None  # the exercise spec, course_tools/grading/lessons/lessonNN.py
    tests: tuple[str, ...] = ()  # tests/ files that check the library code it teaches from
    bench: tuple[str, ...] = ()  # bench/ scripts that time its training or measure its spread over seeds

    @property
    def code(self) -> tuple[str, ...]:
        """Every module this lesson points a reader to: its imports, then the modules behind them."""
        return self.modules + self.behind


def _spec(number: int) -> str:
    return f"course_tools/grading/lessons/lesson{number:02d}.py"


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        0,
        "Foundations",
        "notebooks/00_foundations.ipynb",
        modules=(
            "course_lib.data.digits",
            "course_lib.device",
            "course_lib.plots",
            "course_lib.train",
        ),
        spec=_spec(0),
        tests=("tests/test_infrastructure.py", "tests/test_data.py"),
        bench=("bench/digits_mlp.py",),
    ),
    Lesson(
        1,
        "Seq2Seq and attention",
        "notebooks/01_seq2seq_attention.ipynb",
        modules=(
            "course_lib.device",
            "course_lib.nn.attention",
            "course_lib.plots",
            "course_lib.text.translation",
            "course_lib.tokenizers.words",
        ),
        behind=("course_lib.data.number_words", "course_lib.models.seq2seq", "course_lib.nn.greedy"),
        spec=_spec(1),
        tests=("tests/test_translation.py", "tests/test_nn.py", "tests/test_tokenizers.py", "tests/test_data.py"),
    ),
    Lesson(
        2,
        "Attention from scratch",
        "notebooks/02_attention.ipynb",
        modules=(
            "course_lib.device",
            "course_lib.nn.attention",
            "course_lib.plots",
            "course_lib.text.translation",
            "course_lib.widgets",
        ),
        behind=("course_lib.models.transformer",),
        spec=_spec(2),
        tests=("tests/test_nn.py", "tests/test_translation.py"),
    ),
    Lesson(
        3,
        "The Transformer",
        "notebooks/03_transformer.ipynb",
        modules=(
            "course_lib.device",
            "course_lib.nn.attention",
            "course_lib.nn.positional",
            "course_lib.nn.transformer_layers",
            "course_lib.plots",
            "course_lib.text.translation",
            "course_lib.train",
            "course_lib.widgets",
        ),
        behind=("course_lib.models.transformer", "course_lib.models.seq2seq"),
        spec=_spec(3),
        tests=("tests/test_nn.py", "tests/test_translation.py"),
    ),
    Lesson(
        4,
        "Tokenization",
        "notebooks/04_tokenization.ipynb",
        modules=(
            "course_lib.data.shakespeare",
            "course_lib.device",
            "course_lib.tokenizers.bpe",
            "course_lib.tokenizers.chars",
        ),
        spec=_spec(4),
        tests=("tests/test_tokenizers.py", "tests/test_data.py"),
    ),
    Lesson(
        5,
        "GPT",
        "notebooks/05_gpt.ipynb",
        modules=(
            "course_lib.device",
            "course_lib.models.gpt",
            "course_lib.nn.attention",
            "course_lib.plots",
            "course_lib.text.decoding",
            "course_lib.text.language_model",
        ),
        behind=("course_lib.train",),
        spec=_spec(5),
        tests=("tests/test_gpt.py", "tests/test_decoding.py"),
        bench=("bench/gpt.py",),
    ),
    Lesson(
        6,
        "Decoding and controllable generation",
        "notebooks/06_decoding.ipynb",
        modules=(
            "course_lib.data.plays",
            "course_lib.data.shakespeare",
            "course_lib.device",
            "course_lib.models.gpt",
            "course_lib.plots",
            "course_lib.text.control",
            "course_lib.text.decoding",
            "course_lib.text.language_model",
            "course_lib.widgets",
        ),
        behind=("course_lib.nn.kv_cache",),
        spec=_spec(6),
        tests=("tests/test_decoding.py", "tests/test_control.py", "tests/test_data.py"),
    ),
    Lesson(
        7,
        "BERT",
        "notebooks/07_bert.ipynb",
        modules=(
            "course_lib.data.plays",
            "course_lib.data.shakespeare",
            "course_lib.device",
            "course_lib.models.bert",
            "course_lib.text.masked_lm",
        ),
        behind=("course_lib.tokenizers.bpe",),
        spec=_spec(7),
        tests=("tests/test_bert.py", "tests/test_data.py"),
    ),
    Lesson(
        8,
        "Variational autoencoders",
        "notebooks/08_vae.ipynb",
        modules=(
            "course_lib.data.digits",
            "course_lib.device",
            "course_lib.models.vae",
            "course_lib.plots",
            "course_lib.vision.judge_training",
            "course_lib.vision.vae_training",
        ),
        behind=("course_lib.models.judge",),
        spec=_spec(8),
        tests=("tests/test_vae.py", "tests/test_judge.py", "tests/test_data.py"),
        bench=("bench/vae.py",),
    ),
    Lesson(
        9,
        "GANs",
        "notebooks/09_gan.ipynb",
        modules=(
            "course_lib.data.digits",
            "course_lib.device",
            "course_lib.models.gan",
            "course_lib.plots",
            "course_lib.vision.gan_training",
            "course_lib.vision.judge_training",
        ),
        behind=("course_lib.models.judge",),
        spec=_spec(9),
        tests=("tests/test_gan.py", "tests/test_judge.py", "tests/test_data.py"),
        bench=("bench/gan.py",),
    ),
    Lesson(
        10,
        "Diffusion",
        "notebooks/10_diffusion.ipynb",
        modules=(
            "course_lib.data.digits",
            "course_lib.device",
            "course_lib.models.unet",
            "course_lib.plots",
            "course_lib.vision.diffusion",
            "course_lib.vision.gan_training",
            "course_lib.vision.judge_training",
            "course_lib.vision.vae_training",
        ),
        behind=("course_lib.models.judge",),
        spec=_spec(10),
        tests=("tests/test_diffusion.py", "tests/test_judge.py", "tests/test_data.py"),
        bench=("bench/diffusion.py",),
    ),
    Lesson(
        11,
        "The Vision Transformer",
        "notebooks/11_vit.ipynb",
        modules=(
            "course_lib.data.digits",
            "course_lib.data.shapes",
            "course_lib.device",
            "course_lib.models.vit",
            "course_lib.vision.vit_training",
        ),
        behind=("course_lib.models.judge", "course_lib.nn.attention"),
        spec=_spec(11),
        tests=("tests/test_vit.py", "tests/test_data.py"),
        bench=("bench/vit_vs_cnn.py",),
    ),
    Lesson(
        12,
        "CLIP",
        "notebooks/12_clip.ipynb",
        modules=(
            "course_lib.data.shapes",
            "course_lib.device",
            "course_lib.models.clip",
            "course_lib.multimodal.clip_training",
            "course_lib.plots",
        ),
        spec=_spec(12),
        tests=("tests/test_multimodal.py",),
        bench=("bench/multimodal_spread.py",),
    ),
    Lesson(
        13,
        "Text-to-image",
        "notebooks/13_text_to_image.ipynb",
        modules=(
            "course_lib.data.shapes",
            "course_lib.device",
            "course_lib.multimodal.clip_training",
            "course_lib.multimodal.reader_training",
            "course_lib.multimodal.text_to_image",
            "course_lib.models.unet",
            "course_lib.plots",
            "course_lib.vision.diffusion",
            "course_lib.widgets",
        ),
        behind=(
            "course_lib.models.prior",
            "course_lib.models.readers",
        ),
        spec=_spec(13),
        tests=("tests/test_multimodal.py",),
        bench=("bench/multimodal_spread.py",),
    ),
    Lesson(
        15,
        "Reward models and RLHF",
        "notebooks/15_rlhf.ipynb",
        modules=(
            "course_lib.alignment.policy",
            "course_lib.alignment.ppo",
            "course_lib.alignment.preferences",
            "course_lib.alignment.reward_training",
            "course_lib.device",
            "course_lib.models.reward_model",
            "course_lib.models.value_head",
            "course_lib.text.language_model",
        ),
        behind=("course_lib.models.gpt",),
        spec=_spec(15),
        tests=("tests/test_alignment.py",),
        bench=("bench/alignment.py", "bench/alignment_spread.py"),
    ),
    Lesson(
        16,
        "DPO",
        "notebooks/16_dpo.ipynb",
        modules=(
            "course_lib.alignment.dpo",
            "course_lib.alignment.policy",
            "course_lib.alignment.ppo",
            "course_lib.alignment.preferences",
            "course_lib.alignment.reward_training",
            "course_lib.device",
            "course_lib.text.language_model",
        ),
        behind=("course_lib.models.gpt", "course_lib.models.reward_model"),
        spec=_spec(16),
        tests=("tests/test_alignment.py",),
        bench=("bench/alignment.py", "bench/alignment_spread.py"),
    ),
    Lesson(
        18,
        "Responsible generative AI, measured",
        "notebooks/18_responsible.ipynb",
        modules=(
            "course_lib.alignment.dpo",
            "course_lib.alignment.ppo",
            "course_lib.alignment.preferences",
            "course_lib.alignment.reward_training",
            "course_lib.data.digits",
            "course_lib.data.shakespeare",
            "course_lib.data.shapes",
            "course_lib.device",
            "course_lib.multimodal.clip_training",
            "course_lib.multimodal.text_to_image",
            "course_lib.responsible.bias",
            "course_lib.responsible.detector_training",
            "course_lib.responsible.memorisation",
            "course_lib.responsible.watermark",
            "course_lib.text.language_model",
            "course_lib.vision.diffusion",
            "course_lib.vision.gan_training",
            "course_lib.vision.vae_training",
        ),
        behind=("course_lib.models.detector", "course_lib.models.gpt"),
        spec=_spec(18),
        tests=("tests/test_responsible.py",),
    ),
)


def lesson(number: int) -> Lesson:
    """The lesson numbered `number`; a KeyError names the lessons there are."""
    for entry in LESSONS:
        if entry.number == number:
            return entry
    known = ", ".join(f"{e.number:02d}" for e in LESSONS)
    raise KeyError(f"no lesson {number!r} in course_lib.lessons; the lessons are {known}")


def lessons_using(module: str) -> tuple[Lesson, ...]:
    """The lessons that list `module` (dotted) among their imports or the modules behind them."""
    return tuple(entry for entry in LESSONS if module in entry.code)


def span(numbers: Iterable[int]) -> str:
    """Lesson numbers as the docstrings write them: {1, 2, 3, 5} -> "01-03, 05"."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]:02d}" if len(r) == 1 else f"{r[0]:02d}-{r[-1]:02d}" for r in runs)


def source_path(module: str) -> str:
    """A dotted module's file, from the repository root: course_lib.nn.attention -> course_lib/nn/attention.py."""
    path = Path(*module.split("."))
    package = path / "__init__.py"
    return (package if (ROOT / package).is_file() else path.with_suffix(".py")).as_posix()
