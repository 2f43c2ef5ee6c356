"""Signing in and out in a real browser, against the real server.

Works on project ``Eta``, made here, reviewed by ``rita`` (tier 1, with a password),
so the other browser tests' projects and users stay as they expect them.
"""

from __future__ import annotations

import time

import pytest
from widgets_dashboard.dashboard_catalog import ADMIN, DashboardCatalog

from miqa_nb.catalog import Catalog

from .review_site import import_project
from .test_review import OPEN_TIMEOUT, REVIEW, keys_on, wait_for_picture, wait_for_scan

PROJECT = "Eta"
USER = "rita"
PASSWORD = "rita's long passphrase"


@pytest.fixture(scope="module")
def eta(site: DashboardCatalog) -> Catalog:
    """Project Eta (J1, J2), rita tier 1 there, with a password."""
    cat = import_project(site, PROJECT, [("Y1", "J1", "T1"), ("Y2", "J2", "T1")], seed=60)
    cat.add_user(USER, by=ADMIN)
    cat.set_role(PROJECT, USER, "tier1", by=ADMIN)
    cat.set_password(USER, PASSWORD, by=ADMIN)
    return cat


def sign_in_with_the_form(page, server, address: str) -> None:
    page.goto(address, timeout=OPEN_TIMEOUT)
    page.wait_for_selector("input#user")  # asked to sign in first
    page.locator("input#user").type(USER, delay=0)
    page.locator("input#password").type(PASSWORD, delay=0)
    page.keyboard.press("Enter")


def stored(cat: Catalog, timeout: float = 20) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        df = cat.decisions(PROJECT)
        rows = [(r.scan, r.creator) for r in df.itertuples(index=False)]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_sign_in_review_sign_out(page, server, eta: Catalog, shoot) -> None:
    """rita opens a link that names the superuser, signs in with her password, and is
    rita: her decision is stored as hers. After signing out the dashboard's pages are
    closed to her: the address asks for a sign-in again, and her old cookie opens
    nothing."""
    sign_in_with_the_form(page, server, f"{server.url}?user={ADMIN}&project={PROJECT}")
    wait_for_scan(page, "J1")
    wait_for_picture(page)
    header = page.locator(".miqa-dashboard-header").inner_text()
    assert USER in header and ADMIN not in header
    cookies = {c["name"]: c for c in page.context.cookies()}
    login = cookies["miqa-nb-signin"]
    assert login["httpOnly"] and login["sameSite"] == "Lax"
    shoot("signed-in")
    keys_on(page)
    page.keyboard.press("1")  # U
    page.locator(f"{REVIEW} .miqa-decision-U.miqa-selected").wait_for()
    page.keyboard.press("Enter")
    wait_for_scan(page, "J2")
    assert stored(eta) == [("J1", USER)]

    page.locator(".miqa-dashboard-header a.miqa-signout").click()  # the header's link
    page.wait_for_url(server.url + "logout")
    assert "signed out" in page.locator("body").inner_text()
    page.goto(f"{server.url}?project={PROJECT}", timeout=OPEN_TIMEOUT)
    page.wait_for_selector("input#user")
    assert page.locator(".miqa-dashboard").count() == 0
    # the old cookie, put back, opens nothing either: the session has ended
    page.context.add_cookies([login])
    page.goto(f"{server.url}?project={PROJECT}", timeout=OPEN_TIMEOUT)
    page.wait_for_selector("input#user")
    assert page.locator(".miqa-dashboard").count() == 0


def test_a_forged_cookie_opens_nothing(page, server, eta: Catalog) -> None:
    host = server.url.split("//")[1].split(":")[0]
    page.context.add_cookies(
        [
            {
                "name": "miqa-nb-signin",
                "value": "2|1:0|10:1|14:miqa-nb-signin|4:YWRtaW4=|ab",
                "domain": host,
                "path": "/",
            }
        ]
    )
    page.goto(f"{server.url}?user={ADMIN}", timeout=OPEN_TIMEOUT)
    page.wait_for_selector("input#user")
    assert page.locator(".miqa-dashboard").count() == 0
