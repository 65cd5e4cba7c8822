"""Every widget a lesson has, driven as a learner drives it, and an exercise notebook of lessons 08-16 completed
in JupyterLab. Lesson 02's attention explorer is in test_lab.py.

Each test runs its notebook from the top through the UI (the course cache is warm under `make test`), then moves
a control and asserts that the kernel answered with something new: text or a picture it had not shown before.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from course_tools.grading.notebook import cell_source, exercise_meta, read_notebook
from tests.browser.conftest import ROOT, SCREENSHOTS
from tests.browser.lab_ui import error_texts, open_notebook, prompts, run_all_cells, screenshot, type_into_cell


def slider(box: Locator, label: str) -> Locator:
    return box.locator(".widget-slider").filter(has_text=label)


def press(page: Page, control: Locator, key: str, readout: str) -> None:
    """Focus a slider's handle, press a key, and wait for the readout the kernel will be called with."""
    control.locator(".noUi-handle").first.focus()
    page.keyboard.press(key)
    expect(control.locator(".widget-readout")).to_have_text(readout)


def settled_text(output: Locator, before: str | None = None) -> str:
    """The Output widget's text once it is non-empty and differs from `before` (None: any text)."""
    expect(output).not_to_have_text(re.compile(r"^\s*$"), timeout=60_000)
    if before is not None:
        expect(output).not_to_have_text(before, timeout=60_000)
    return output.inner_text()


def run_lesson_to_widget(page: Page, lab, lesson: str, control: str) -> tuple[Locator, Locator, float]:
    """Run every cell of a lesson through the UI; returns the notebook, the first widget box holding a `control`
    (a CSS class such as ".widget-slider"), scrolled into view, and the seconds the run took."""
    notebook = open_notebook(page, lab.notebook_url(f"notebooks/{lesson}.ipynb"))
    seconds = run_all_cells(page, notebook, timeout_s=900)
    assert error_texts(notebook) == []
    box = notebook.locator(".widget-vbox").filter(has=page.locator(control)).first
    box.scroll_into_view_if_needed()
    return notebook, box, seconds


def test_lesson_06_sampling_controls_change_what_the_kernel_draws(page: Page, lab) -> None:
    notebook, explorer, seconds = run_lesson_to_widget(page, lab, "06_decoding", ".widget-slider")
    output = explorer.locator(".widget-output")
    seed, top_k = slider(explorer, "seed"), slider(explorer, "top-k")
    press(page, seed, "ArrowRight", "1")  # the Output widget is empty until a control moves
    first = settled_text(output)
    press(page, seed, "ArrowRight", "2")
    second = settled_text(output, before=first)
    assert first.strip() and second.strip() and first != second, "another seed should draw another sample"
    press(page, top_k, "ArrowRight", "1")  # top-k 1 is greedy decoding: the seed no longer matters
    greedy = settled_text(output, before=second)
    press(page, seed, "ArrowRight", "3")
    page.wait_for_timeout(3_000)  # time for a redraw that would change the text
    expect(output).to_have_text(greedy, timeout=60_000)
    screenshot(page, SCREENSHOTS, "06_sampling_explorer")
    print(
        f"lesson 06: {len(prompts(notebook))} code cells in {seconds:.1f} s; seeds 1 and 2 drew different text, "
        "top-k 1 drew the same text for seeds 2 and 3"
    )


def test_lesson_13_prompt_box_draws_the_caption_typed(page: Page, lab) -> None:
    notebook, box, seconds = run_lesson_to_widget(page, lab, "13_text_to_image", ".widget-text")
    output, caption = box.locator(".widget-output"), box.locator(".widget-text input")
    caption.fill("a large red circle")
    caption.press("Enter")
    picture = output.locator("img").first
    expect(picture).to_be_visible(timeout=60_000)
    first = picture.get_attribute("src")
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0")
    press(page, slider(box, "seed"), "ArrowRight", "1")
    expect(picture).not_to_have_attribute("src", first or "", timeout=60_000)
    caption.fill("a purple circle")  # not in the world's vocabulary: the kernel says so instead of drawing
    caption.press("Enter")
    expect(output).to_contain_text("purple", timeout=60_000)
    expect(output.locator("img")).to_have_count(0)
    screenshot(page, SCREENSHOTS, "13_prompt_box")
    print(
        f"lesson 13: {len(prompts(notebook))} code cells in {seconds:.1f} s; the caption and the seed redrew the "
        "pictures, an unknown word was refused"
    )


def solution_sources(lesson: str) -> dict[int, str]:
    """The solution notebook's exercise cells by index, as written there (the solution markers are comments)."""
    cells = read_notebook(ROOT / "solutions" / f"{lesson}.ipynb")["cells"]
    return {i: cell_source(cell) for i, cell in enumerate(cells) if exercise_meta(cell)}


def test_exercise_08_completed_in_the_lab_passes_every_check(page: Page, lab) -> None:
    notebook = open_notebook(page, lab.notebook_url("exercises/08_vae.ipynb"))
    cells = notebook.locator(".jp-Cell")
    answers = solution_sources("08_vae")
    assert len(answers) == 5
    for index, source in answers.items():
        cell = cells.nth(index)
        assert "NotImplementedError" in cell.locator(".cm-content").inner_text(), f"cell {index} is not a stub"
        type_into_cell(page, cell, source)
    seconds = run_all_cells(page, notebook, timeout_s=600)
    for index in answers:  # each answer's check is the next cell; JupyterLab renders only cells near the view
        verdict = cells.nth(index + 1).locator(".jp-OutputArea")
        verdict.scroll_into_view_if_needed()
        expect(verdict).to_contain_text(re.compile(r"✓ \w+: all \d+ cases pass"), timeout=30_000)
        assert "✗" not in verdict.inner_text()
    last = cells.last.locator(".jp-OutputArea")
    last.scroll_into_view_if_needed()
    expect(last).to_contain_text("your discretised logistics")  # the last cell fits exercise 3's likelihood
    assert error_texts(notebook) == []
    screenshot(page, SCREENSHOTS, "exercises_08_completed")
    print(f"exercises 08: five answers typed, five checks passed, the VAE measured in {seconds:.1f} s")
