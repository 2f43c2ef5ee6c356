"""The served administration's sign-in section, in a real browser: a superuser makes a
one-time sign-in link that opens the served dashboard for its user in another
browser, and sets that user's password, typed twice, which the page then forgets."""

from __future__ import annotations

import pytest
from widgets_dashboard.dashboard_catalog import ADMIN, DashboardCatalog

from miqa_nb.catalog import Catalog

from .test_admin_paths import _open_admin

PASSWORD = "correct-horse-42"


@pytest.mark.parametrize("delay", [0, 80])
def test_served_admin_makes_a_working_link_and_sets_a_password(
    page, browser, server, site: DashboardCatalog, shoot, delay: float
) -> None:
    catalog = Catalog(site.catalog_path, retry_seconds=30)
    newcomer = f"dora{delay}"
    catalog.add_user(newcomer, by=ADMIN)
    _open_admin(page, server)
    page.select_option(".miqa-credential-user select", newcomer)
    page.click(".miqa-signin-link")
    shown = page.locator(".miqa-credential-secret pre")
    shown.wait_for(timeout=30_000)
    link = shown.inner_text().strip()
    assert link.startswith(server.url + "signin?link="), link
    status = page.locator(".miqa-dashboard-status")
    assert link not in status.inner_text() and newcomer in status.inner_text()

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        theirs = other.new_page()
        theirs.goto(link, timeout=60_000)
        if "/login/password" in theirs.url:
            theirs.get_by_text("Not now").click()
        theirs.locator(".miqa-user").wait_for(timeout=60_000)
        assert theirs.locator(".miqa-user").inner_text() == newcomer
        theirs.close(run_before_unload=True)
    finally:
        other.close()

    for css in ("miqa-password", "miqa-password-again"):
        field = page.locator(f".{css} input")
        field.click()
        page.keyboard.type(PASSWORD, delay=delay)
    page.click(".miqa-set-password")
    page.wait_for_function(
        "document.querySelector('.miqa-dashboard-status')?.innerText"
        f".includes('Set the password of {newcomer}.')",
        timeout=30_000,
    )
    assert catalog.check_password(newcomer, PASSWORD)
    for css in ("miqa-password", "miqa-password-again"):
        page.wait_for_function(
            f"document.querySelector('.{css} input')?.value === ''", timeout=30_000
        )
    assert page.locator(".miqa-credential-secret pre").count() == 0  # the link is gone
    assert PASSWORD not in page.content()
    shoot(f"admin-credentials-{delay}")
