"""course_lib's browser suite: every page of the web edition (`make site`) opened in Chromium.

Each page must load with no console error, no failed request and no request leaving 127.0.0.1 (the widget
renderer and MathJax are served by the site itself), and every image on it must decode. Pages whose notebook
saved widget state must show the widgets, rendered statically.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from course_tools.web.readiness import chromium_path
from tests.browser.conftest import ROOT, SCREENSHOTS

SITE = ROOT / "build" / "site"


def site_pages() -> list[str]:
    """Every page of the built site; built first if missing (and Chromium is here to test it)."""
    if not (SITE / "index.html").exists():
        if chromium_path() is None:
            return []
        from course_tools.web.build import build

        build(SITE)
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_site_has_every_notebook_and_a_chinese_page_per_lesson(site_url: str) -> None:
    pages = set(site_pages())
    for folder in ("notebooks", "solutions", "exercises"):
        for notebook in (ROOT / folder).glob("[0-9][0-9]_*.ipynb"):
            assert f"{folder}/{notebook.stem}.html" in pages
    for notebook in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert f"zh/{notebook.stem}.html" in pages
    assert {"index.html", "search.html", "zh/index.html", "glossary.zh-CN.html"} <= pages


def _visit(page: Page, url: str) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

    def on_request(request) -> None:
        if not request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            problems.append(f"off-site request: {request.url}")

    page.on("request", on_request)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="networkidle")
    return problems


@pytest.mark.parametrize("relative", site_pages())
def test_page_loads_cleanly(page: Page, site_url: str, relative: str) -> None:
    problems = _visit(page, f"{site_url}/{relative}")
    images = page.locator("main img")
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        if not image.evaluate("img => img.complete && img.naturalWidth > 0"):
            problems.append(f"image not decoded: {image.get_attribute('src')[:80]}")
    prose = page.locator("main").first.evaluate(
        """article => { const copy = article.cloneNode(true);
            copy.querySelectorAll('pre, code, script, .cell_output, mjx-container, nav, form')
                .forEach(e => e.remove());
            return copy.textContent; }"""
    )
    if "$" in prose:
        at = prose.index("$")
        problems.append(f"formula left unrendered: ...{prose[max(0, at - 60) : at + 60]}...")
    notebook = ROOT / Path(relative).with_suffix(".ipynb")
    if notebook.exists() and '"application/vnd.jupyter.widget-view+json"' in notebook.read_text():
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        widgets = page.locator(".jupyter-widgets")  # attached: finished progress bars are rendered hidden
        widgets.first.wait_for(state="attached", timeout=15_000)
        if views == 0 or widgets.count() < views:
            problems.append(f"{views} saved widget views, {widgets.count()} rendered widgets")
    assert problems == [], "\n".join(problems[:20])


def test_the_widget_explorer_renders_statically_with_its_slider(page: Page, site_url: str) -> None:
    assert _visit(page, f"{site_url}/notebooks/02_attention.html") == []
    slider = page.locator(".widget-slider").filter(has_text="head").first
    slider.scroll_into_view_if_needed()
    slider.wait_for(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "site_02_attention_explorer.png"))


def test_search_finds_a_lesson(page: Page, site_url: str) -> None:
    assert _visit(page, f"{site_url}/search.html?q=Bradley-Terry") == []
    results = page.locator("#search-results a")
    results.first.wait_for(timeout=15_000)
    assert any("15_rlhf" in (results.nth(i).get_attribute("href") or "") for i in range(results.count()))
    page.screenshot(path=str(SCREENSHOTS / "site_search.png"))


def test_home_page_is_the_syllabus_with_a_language_switch(page: Page, site_url: str) -> None:
    assert _visit(page, f"{site_url}/index.html") == []
    assert page.get_by_role("link", name="Seq2Seq and attention").count() >= 1
    page.locator("article").get_by_role("link", name="中文", exact=True).first.click()
    page.wait_for_url("**/zh/index.html")
    assert page.get_by_text("课程大纲").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "site_home_zh.png"))


def test_each_lesson_page_switches_to_its_chinese_page_and_back(page: Page, site_url: str) -> None:
    assert _visit(page, f"{site_url}/notebooks/15_rlhf.html") == []
    page.locator(".lang-switch").get_by_role("link", name="中文导读").click()
    page.wait_for_url("**/zh/15_rlhf.html")
    assert page.get_by_role("heading", name="你将构建").count() == 1
    assert page.get_by_role("heading", name="要记住的").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "site_zh_15_rlhf.png"))
    page.locator(".lang-switch").get_by_role("link", name="English").click()
    page.wait_for_url("**/notebooks/15_rlhf.html")
