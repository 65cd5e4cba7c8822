"""course_lib's browser suite: lessons and an exercise notebook opened and run in JupyterLab, as a learner would.

`make test` runs this after the notebooks (so the course cache is warm); screenshots go to build/browser/.
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import SCREENSHOTS
from tests.browser.lab_ui import (
    error_texts,
    open_notebook,
    prompts,
    rendered_images,
    run_all_cells,
    run_cell,
    screenshot,
    type_into_cell,
)

STABLE_SOFTMAX = '''def stable_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of x along `dim`, safe for very large and very small logits."""
    shifted = x - x.amax(dim=dim, keepdim=True)
    weights = shifted.exp()
    return weights / weights.sum(dim=dim, keepdim=True)
'''


def test_lesson_00_runs_all_cells(page: Page, lab) -> None:
    notebook = open_notebook(page, lab.notebook_url("notebooks/00_foundations.ipynb"))
    seconds = run_all_cells(page, notebook, timeout_s=600)
    assert error_texts(notebook) == []
    assert rendered_images(notebook) >= 1, "lesson 00 draws figures; none rendered"
    screenshot(page, SCREENSHOTS, "00_foundations")
    print(f"lesson 00: {len(prompts(notebook))} code cells run through the UI in {seconds:.1f} s")


def test_lesson_02_widget_answers_a_slider(page: Page, lab) -> None:
    notebook = open_notebook(page, lab.notebook_url("notebooks/02_attention.ipynb"))
    seconds = run_all_cells(page, notebook, timeout_s=600)
    assert error_texts(notebook) == []
    assert rendered_images(notebook) >= 1
    explorer = notebook.locator(".widget-vbox").filter(has=page.locator(".widget-slider")).first
    explorer.scroll_into_view_if_needed()
    expect(explorer).to_be_visible()
    figure = explorer.locator(".widget-output img").first
    expect(figure).to_be_visible(timeout=30_000)
    before = figure.get_attribute("src")
    head = explorer.locator(".widget-slider").filter(has_text="head")
    head.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")  # head 0 -> 1: the kernel redraws the Output widget
    expect(head.locator(".widget-readout")).to_have_text("1")
    expect(figure).not_to_have_attribute("src", before or "", timeout=30_000)
    assert figure.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, SCREENSHOTS, "02_attention_explorer")
    print(f"lesson 02: {len(prompts(notebook))} code cells in {seconds:.1f} s; the head slider redrew the map")


def test_exercise_00_typed_solution_passes_its_check(page: Page, lab) -> None:
    notebook = open_notebook(page, lab.notebook_url("exercises/00_foundations.ipynb"))
    cells = notebook.locator(".jp-Cell")
    setup, exercise, check = (cells.nth(i) for i in (1, 3, 4))
    assert "course_tools.grading import check" in setup.locator(".cm-content").inner_text()
    assert "def stable_softmax" in exercise.locator(".cm-content").inner_text()
    run_cell(page, setup)
    run_cell(page, exercise)
    run_cell(page, check)  # the stub: no points
    expect(check.locator(".jp-OutputArea-output")).to_contain_text("stable_softmax")
    assert "✓" not in check.locator(".jp-OutputArea").inner_text()
    type_into_cell(page, exercise, STABLE_SOFTMAX)
    run_cell(page, exercise)
    run_cell(page, check)
    expect(check.locator(".jp-OutputArea-output")).to_contain_text(
        re.compile(r"✓ stable_softmax: all \d+ cases pass"), timeout=60_000
    )
    check.scroll_into_view_if_needed()
    screenshot(page, SCREENSHOTS, "exercises_00_first_check")
