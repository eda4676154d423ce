"""Fixtures for the browser suite: one private JupyterLab and one headless Chromium.

The suite skips, with a one-line notice naming what to install, when Chromium or the
``playwright`` package is missing. Playwright drives the *system* Chromium; its own
browser download (``playwright install``) is never used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.lab import JupyterLabServer, find_chromium
from tests.browser.page import NotebookPage
from tests.conftest import ROOT

LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _missing() -> str | None:
    explicit = os.environ.get("FORGE_COURSE_CHROMIUM")
    if explicit and find_chromium() is None:
        return f"browser suite skipped: FORGE_COURSE_CHROMIUM={explicit} does not exist"
    if find_chromium() is None:
        return (
            "browser suite skipped: no Chromium found; install Debian's chromium "
            "(apt-get install chromium) or set FORGE_COURSE_CHROMIUM"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser suite skipped: no playwright; pip install -e '.[dev]'"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _missing()
    if reason:
        marker = pytest.mark.skip(reason=reason)
        for item in items:
            if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> Iterator[JupyterLabServer]:
    """JupyterLab on a free loopback port, serving copies of the lessons."""
    server = JupyterLabServer(tmp_path_factory.mktemp("lab"), LESSONS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=find_chromium(), headless=True, args=args)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def kept_pages(lab, browser) -> Iterator[dict[str, NotebookPage]]:
    """Executed notebooks kept open for a later test (closed at the end at the latest)."""
    kept: dict[str, NotebookPage] = {}
    yield kept
    for page in kept.values():
        page.close()


@pytest.fixture
def open_notebook(lab, browser, kept_pages) -> Iterator[Callable[..., NotebookPage]]:
    """Open notebooks in fresh tabs; on teardown shut their kernels down and close them.

    ``open_notebook(name, keep=True)`` leaves the tab open in ``kept_pages`` instead, so
    a later test can look at the same executed notebook without running it again.
    """
    pages: list[NotebookPage] = []

    def opener(name: str, *, keep: bool = False) -> NotebookPage:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = NotebookPage(context.new_page(), lab, name)
        if keep:
            kept_pages[name] = page
        else:
            pages.append(page)
        return page.open()

    yield opener
    for page in pages:
        page.close()


def failure_report(page: NotebookPage, problems: list[str], shots: Path) -> str:
    """Return a failure message: the problems, a screenshot path, Lab's log tail."""
    shot = page.screenshot(shots / f"{Path(page.name).stem}.png")
    lines = [f"{page.name} in JupyterLab:", *(f"  - {p}" for p in problems)]
    lines.append(f"screenshot: {shot}")
    return "\n".join(lines)
