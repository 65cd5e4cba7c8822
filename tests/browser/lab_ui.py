"""course_lib's browser suite: what a learner does in JupyterLab, as Playwright steps.

Selectors are JupyterLab 4's own (roles where the UI has them: menus, the status bar's text otherwise).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
IDLE = re.compile(r"\|\s*Idle")


def open_notebook(page: Page, url: str) -> Locator:
    """Open a notebook and wait until its kernel is idle; returns the notebook's locator."""
    page.goto(url)
    notebook = page.locator(NOTEBOOK)
    expect(notebook.locator(".jp-Cell").first).to_be_visible(timeout=60_000)
    wait_for_idle(page, timeout_s=120)
    return notebook


def wait_for_idle(page: Page, timeout_s: float) -> None:
    """The status bar's kernel status reads '| Idle' (the toolbar's circle can lag behind)."""
    expect(page.locator("#jp-main-statusbar").get_by_text(IDLE)).to_be_visible(timeout=timeout_s * 1000)


def prompts(notebook: Locator) -> list[str]:
    """Every code cell's input prompt: '[3]:' once run, '[*]:' while queued or running, '[ ]:' never run."""
    return [p.strip() for p in notebook.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()]


def clear_all_outputs(page: Page, notebook: Locator) -> None:
    """Edit > Clear Outputs of All Cells: what is asserted afterwards was produced in this browser session."""
    page.get_by_role("menuitem", name="Edit", exact=True).click()
    page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
    expect(notebook.locator(".jp-OutputArea-output")).to_have_count(0)
    assert all(p == "[ ]:" for p in prompts(notebook)), prompts(notebook)


def run_all_cells(page: Page, notebook: Locator, timeout_s: float) -> float:
    """Clear every output, then Run > Run All Cells from the menu bar; wait until every code cell shows an
    execution count, in increasing order (top to bottom), and the kernel is idle. Returns the seconds taken."""
    clear_all_outputs(page, notebook)
    start = time.monotonic()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        current = prompts(notebook)
        if current and "[*]:" not in current and all(re.fullmatch(r"\[\d+\]:", p) for p in current):
            wait_for_idle(page, timeout_s=30)
            counts = [int(p[1:-2]) for p in current]
            assert counts == sorted(counts), f"cells ran out of order: {counts}"
            return time.monotonic() - start
        if current and "[*]:" not in current and time.monotonic() - start > 10:
            break  # stopped before the end: an error cleared the queue
        time.sleep(1.0)
    unrun = [i for i, p in enumerate(current) if not re.fullmatch(r"\[\d+\]:", p)]
    raise AssertionError(
        f"code cells not run after {time.monotonic() - start:.0f} s: {unrun[:10]}\n{error_texts(notebook)}"
    )


def error_texts(notebook: Locator) -> list[str]:
    """The text of every output that shows a Python traceback."""
    texts = notebook.locator(".jp-OutputArea-output").all_text_contents()
    return [t[:2000] for t in texts if "Traceback" in t or re.search(r"^\w+Error\b", t, re.M)]


def rendered_images(notebook: Locator) -> int:
    """Scroll each output image into view (cells render lazily) and count those the browser decoded."""
    images = notebook.locator(".jp-OutputArea-output img")
    decoded = 0
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        if image.evaluate("img => img.complete && img.naturalWidth > 0"):
            decoded += 1
    return decoded


def type_into_cell(page: Page, cell: Locator, source: str) -> None:
    """Replace a cell's text through its editor, as pasted text (no auto-indent or bracket closing)."""
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)


def run_cell(page: Page, cell: Locator) -> None:
    """Select the cell's editor and press Shift+Enter; waits until its prompt shows an execution count."""
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=120_000)


def screenshot(page: Page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path
