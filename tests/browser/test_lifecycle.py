"""A page's kernel and claims end with the page: closed, reloaded, abandoned or idle.

These tests run servers of their own (the same site as the other browser tests, in a
folder of its own), so that the pages they open and close, and the short idle time of
the last test, touch no other test's kernels, claims or resume places. Kernels are
counted in the server's process tree and asked for by id (``api/kernels/<id>``);
claims are read from the catalog file.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from widgets_dashboard.dashboard_catalog import TIER2, DashboardCatalog, build

from miqa_nb.catalog import Catalog
from miqa_nb.serve import Server, start

from .conftest import ARTIFACTS
from .review_site import REVIEW_PROJECT, add_review_project, sign_in

POOL = 2
PLANE = ".miqa-review img.miqa-plane-axial"


@pytest.fixture(scope="module")
def own_site(tmp_path_factory: pytest.TempPathFactory, chromium_path: Path) -> DashboardCatalog:
    built = build(tmp_path_factory.mktemp("lifecycle"))
    add_review_project(built)
    return built


def serve(site: DashboardCatalog, name: str, **options: object) -> Server:
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"browser-voila-{name}.log"
    log.unlink(missing_ok=True)
    running = start(
        site.catalog_path,
        private_dir=site.root / f"jupyter-{name}",
        log=log,
        pool_size=POOL,
        **options,  # type: ignore[arg-type]
    )
    running.wait_ready(timeout=180)
    return running


@pytest.fixture(scope="module")
def own_server(own_site: DashboardCatalog) -> Iterator[Server]:
    running = serve(own_site, "lifecycle")
    try:
        yield running
    finally:
        running.stop()


def kernel_processes(server: Server) -> list[int]:
    """Kernel processes under the server."""
    found = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


_TOKENS: dict[str, str] = {}


def kernel_alive(server: Server, kernel: str) -> bool:
    """Whether ``kernel`` runs, asked as its user (tom, with an API token): the server
    answers 403 for a kernel that serves no page of tom's -- once it has ended."""
    if str(server.catalog) not in _TOKENS:
        _, token = Catalog(server.catalog).create_token(TIER2, by=TIER2)
        _TOKENS[str(server.catalog)] = token
    url = f"http://127.0.0.1:{server.port}{server.base_url}api/kernels/{kernel}"
    headers = {"Authorization": f"token {_TOKENS[str(server.catalog)]}"}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bool(json.load(answer).get("id") == kernel)
    except urllib.error.HTTPError as exc:
        if exc.code in (403, 404):
            return False
        raise


def claims(site: DashboardCatalog) -> dict[str, str]:
    held = Catalog(site.catalog_path, retry_seconds=30).claims(REVIEW_PROJECT)
    return held.set_index("experiment")["user"].to_dict()


def wait_until(condition: Callable[[], object], seconds: float, what: str) -> float:
    """Seconds until ``condition()`` is true; fail with ``what`` after ``seconds``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > seconds:
            pytest.fail(f"{what}: not within {seconds:g} s")
        time.sleep(0.1)
    return time.monotonic() - began


def open_review(browser: object, server: Server) -> tuple[object, object, str]:
    """(context, page, kernel id) of tom's review of Gamma, its first plane painted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(90_000)
    page = context.new_page()
    sign_in(page, server, TIER2, project=REVIEW_PROJECT)
    page.locator(PLANE).wait_for()
    found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page.content())
    assert found, "the page names no kernel"
    return context, page, found.group(1)


def test_twenty_closed_pages_leave_no_kernel_and_no_claim(browser, own_site, own_server):
    wait_until(lambda: len(kernel_processes(own_server)) >= POOL, 90, "the pool filled")
    used: list[str] = []
    for n in range(20):
        context, page, kernel = open_review(browser, own_server)
        used.append(kernel)
        wait_until(lambda: claims(own_site) != {}, 30, f"page {n} claimed its scan")
        assert set(claims(own_site).values()) == {TIER2}
        page.close(run_before_unload=True)  # as a person closing the tab
        context.close()
        took = wait_until(
            lambda k=kernel: not kernel_alive(own_server, k), 10, f"page {n}'s kernel ended"
        )
        assert took < 10
        wait_until(lambda: claims(own_site) == {}, 5, f"page {n}'s claim was given up")
    assert len(set(used)) == 20  # every page had a kernel of its own
    # nothing left over: the pool's kernels, and no page's
    wait_until(
        lambda: len(kernel_processes(own_server)) <= POOL, 60, "only the pool's kernels remain"
    )
    assert not any(kernel_alive(own_server, k) for k in used)
    assert claims(own_site) == {}


def test_a_reload_ends_the_old_kernel(browser, own_site, own_server):
    context, page, old = open_review(browser, own_server)
    try:
        page.reload()
        page.locator(PLANE).wait_for()
        new = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', page.content())
        assert new and new.group(1) != old
        wait_until(lambda: not kernel_alive(own_server, old), 10, "the old kernel ended")
        assert kernel_alive(own_server, new.group(1))
        wait_until(lambda: claims(own_site) != {}, 30, "the new page holds the claim")
        assert set(claims(own_site).values()) == {TIER2}
    finally:
        page.close(run_before_unload=True)
        context.close()


def test_an_abandoned_page_ends_its_kernel_and_claim(browser, own_site, own_server):
    """A page that never says goodbye (a crashed browser): no shutdown request."""
    wait_until(lambda: claims(own_site) == {}, 30, "the tests before gave their claims up")
    context, page, kernel = open_review(browser, own_server)
    wait_until(lambda: claims(own_site) != {}, 30, "the page claimed its scan")
    # the reviewer looks at the scan a moment (a page closed within a second of opening
    # is given the first grace, 60 s, as one still loading on a busy machine would be)
    page.wait_for_timeout(3000)
    page.close(run_before_unload=False)
    context.close()
    # the server sees the page's websocket go; the kernel lets go after its grace (10 s)
    wait_until(lambda: claims(own_site) == {}, 30, "the abandoned page's claim was given up")
    wait_until(lambda: not kernel_alive(own_server, kernel), 30, "the kernel ended")


def test_an_idle_page_gives_its_claim_up_says_so_and_claims_again(browser, own_site):
    running = serve(own_site, "idle", idle_minutes=0.1)  # 6 seconds
    try:
        context, page, _kernel = open_review(browser, running)
        try:
            wait_until(lambda: claims(own_site) != {}, 30, "the page claimed its scan")
            experiment = next(iter(claims(own_site)))
            status = page.locator(".miqa-review .miqa-message")
            status.filter(has_text="no action for").wait_for(timeout=60_000)
            assert repr(experiment) in status.inner_text()
            assert claims(own_site) == {}
            page.mouse.click(5, 5)  # focus the page: its keys reach the review
            page.locator(".miqa-next").first.click()  # take up work again
            wait_until(lambda: claims(own_site) != {}, 30, "working again claimed a scan")
        finally:
            context.close()
    finally:
        running.stop()


def test_the_log_has_no_warning_nobody_can_act_on(own_server):
    log = (ARTIFACTS / "browser-voila-lifecycle.log").read_text(errors="replace")
    assert "Kernel started" in log  # the log is the server's
    for harmless in ("is not trusted", "without encryption", "'_xsrf' argument missing"):
        assert harmless not in log
