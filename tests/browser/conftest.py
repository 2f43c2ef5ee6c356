"""Browser tests: the real ``miqa-nb serve`` server, driven by Playwright + Chromium.

One server serves the whole session (starting Voila costs seconds); each test gets a
browser context of its own, so pages never share cookies or kernels. Chromium is
Debian's (``/usr/bin/chromium``, installed by ``scripts/system-packages.sh``): the
tests skip with that reason when it is missing. Screenshots go to
``artifacts/screenshots/`` and the server's log to ``artifacts/browser-voila.log``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from widgets_dashboard.dashboard_catalog import DashboardCatalog, build

from .chromium import CHROMIUM, CHROMIUM_ARGS
from .review_site import add_claims_project, add_review_project

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
#: Console messages that are expected offline (Voila asks a CDN for a font).
HARMLESS = ("ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "Failed to load resource")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: run `sudo bash scripts/system-packages.sh` "
            "(Debian's chromium package) to run the browser tests"
        )
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> DashboardCatalog:
    """The served catalog: projects Alpha and Beta<script> (the dashboard tests'),
    Gamma (the review tests') and Delta (the claims tests', see :mod:`review_site`),
    users in every role."""
    built = build(tmp_path_factory.mktemp("site"))
    add_review_project(built)
    add_claims_project(built)
    return built


@pytest.fixture(scope="session")
def server(site: DashboardCatalog, chromium_path: Path) -> Iterator[object]:
    """``miqa-nb serve`` on a free port with private Jupyter folders, once per session."""
    from miqa_nb.serve import start

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "browser-voila.log"
    log.unlink(missing_ok=True)
    private = site.root / "jupyter"
    running = start(
        site.catalog_path,
        private_dir=private,
        upload_dir=site.root / "uploads",
        log=log,
        pool_size=2,
    )
    try:
        running.wait_ready(timeout=180)
        _wait_for_pool(log, timeout=60)
        yield running
    finally:
        running.stop()


def _wait_for_pool(log: Path, timeout: float) -> None:
    """Wait until Voila says its pre-heated kernels are ready (the first page is then
    as fast as the others); carry on after ``timeout`` regardless."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "is filled with" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh context and page; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(30_000)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    new_page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not any(h in msg.text for h in HARMLESS)
            else None
        ),
    )
    yield new_page
    for opened in context.pages:  # as a person closes a tab: the kernel and its claims end
        opened.close(run_before_unload=True)
    context.close()
    assert not errors, errors


class Screenshots(NamedTuple):
    folder: Path
    cleared_at: float  # the folder's mtime when it was emptied


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    """artifacts/screenshots/, emptied once per session before its first screenshot, so
    it holds this run's pictures only. (A ``pytest_sessionstart`` hook here would not
    run: pytest calls that hook only in the conftest files it loads at start-up.)"""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return Screenshots(SCREENSHOTS, SCREENSHOTS.stat().st_mtime)


@pytest.fixture
def shoot(page: object, request: pytest.FixtureRequest, screenshots: Screenshots):
    """``shoot(name)`` saves the whole dashboard as artifacts/screenshots/<test>-<name>.png.

    Voila scrolls inside an element, not the document, so ``full_page`` alone would stop
    at the viewport: the viewport is made as tall as the tallest scrolling content for
    the shot, then put back (callers hover again if they rely on the mouse).
    """

    def take(name: str) -> Path:
        path = screenshots.folder / f"{request.node.name}-{name}.png"
        viewport = page.viewport_size  # type: ignore[attr-defined]
        tallest = page.evaluate(  # type: ignore[attr-defined]
            "() => Math.max(document.documentElement.scrollHeight, "
            "...[...document.querySelectorAll('body *')].map(e => e.scrollHeight))"
        )
        page.set_viewport_size(  # type: ignore[attr-defined]
            {"width": viewport["width"], "height": min(max(int(tallest) + 40, 300), 6000)}
        )
        try:
            page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        finally:
            page.set_viewport_size(viewport)  # type: ignore[attr-defined]
        return path

    return take
