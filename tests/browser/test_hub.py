"""Reviewers on JupyterHub: the real hub, its real proxy, real Chromium.

``miqa-nb hub`` (:func:`miqa_nb.hub.start_hub`, with the repository's
``jupyterhub_config.py``) runs JupyterHub with configurable-http-proxy on free loopback
ports; reviewers ``hana`` and ``hugo`` (tier 1, with catalog passwords) sign in on
the hub's login form, each in a browser context of their own, and the hub starts
``miqa-nb serve`` for each. Works on project ``Iota``, made here in the browser tests'
catalog and copied, with its users, into a PostgreSQL database (the tests' real server)
that the hub and every reviewer's server share; the hub's state and log are under the
test's temporary folder and ``artifacts/browser-hub.log``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import psutil
import pytest
import requests
from widgets_dashboard.dashboard_catalog import ADMIN, DashboardCatalog

from miqa_nb.catalog import Catalog

from .conftest import ARTIFACTS, HARMLESS
from .review_site import import_project
from .test_review import OPEN_TIMEOUT, REVIEW, keys_on, wait_for_picture, wait_for_scan

PROJECT = "Iota"
#: experiment, scan, type: one experiment for each reviewer to claim
SCANS = [("I1", "K1", "T1"), ("I1", "K2", "T1"), ("I2", "K3", "T1"), ("I2", "K4", "T1")]
PASSWORDS = {"hana": "hana's long passphrase", "hugo": "hugo's long passphrase"}
#: What each reviewer types in a note, key by key, as a person does.
NOTES = {"hana": "slight motion, usable", "hugo": "clean scan"}
PERSON = 60  # milliseconds between keys
#: The hub's answer to a reviewer asking for another's server.
REFUSED = "You do not have permission to access Server at /user/hugo/"
#: Seconds for the hub to start a reviewer's server and the dashboard to show
SPAWN_TIMEOUT = 120_000


@pytest.fixture(scope="module")
def iota(site: DashboardCatalog) -> Catalog:
    """Project Iota (K1, K2 in I1; K3, K4 in I2); hana and hugo tier 1, with passwords."""
    cat = import_project(site, PROJECT, SCANS, seed=70)
    for user, password in PASSWORDS.items():
        cat.add_user(user, by=ADMIN)
        cat.set_role(PROJECT, user, "tier1", by=ADMIN)
        cat.set_password(user, password, by=ADMIN)
    return cat


@pytest.fixture(scope="module")
def shared(iota: Catalog, pg_server, tmp_path_factory) -> Iterator[Catalog]:
    """The browser tests' catalog copied into a PostgreSQL database: the one the hub, its
    authenticator and the reviewers' servers share."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIQA_NB_LOCAL_DIR", str(tmp_path_factory.mktemp("pg-local")))
    url = pg_server.new_database()
    iota.copy_to(url, by=ADMIN, check=False)
    try:
        yield Catalog(url)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def hub(shared: Catalog, chromium_path, tmp_path_factory) -> Iterator[object]:
    """``miqa-nb hub`` on free loopback ports, for the shared PostgreSQL catalog."""
    from miqa_nb.hub import start_hub
    from miqa_nb.serve import free_port

    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "browser-hub.log"
    log.unlink(missing_ok=True)
    running = start_hub(
        shared.location,
        state_dir=tmp_path_factory.mktemp("hub"),
        port=free_port(),
        hub_port=free_port(),
        proxy_api_port=free_port(),
        log=log,
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def hub_page(browser):
    """A page in a browser context of its own (its own cookies)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    return context.new_page()


def review_link(hub, user: str) -> str:
    """What a lab sends a reviewer: their server's review of Iota."""
    return f"{hub.url}user/{quote(user)}/?project={PROJECT}"


def submit_login(page, user: str, password: str) -> None:
    """Type into the hub's login form at a person's speed and submit."""
    page.locator("#username_input").wait_for()
    page.locator("#username_input").type(user, delay=PERSON)
    page.locator("#password_input").type(password, delay=PERSON)
    page.keyboard.press("Enter")


def decisions(cat: Catalog, n: int, timeout: float = 30) -> list[tuple[str, str, str, str]]:
    """(scan, creator, decision, note) of Iota's decisions once there are ``n``."""
    deadline = time.monotonic() + timeout
    while True:
        df = cat.decisions(PROJECT)
        rows = sorted(
            (r.scan, r.creator, r.decision, r.note if isinstance(r.note, str) else "")
            for r in df.itertuples(index=False)
        )
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def server_running(hub, user: str) -> bool:
    """Whether the hub's proxy routes ``user``'s server (the hub removes the route when
    it stops the server; an address without one is answered by the hub)."""
    answer = requests.get(f"{hub.url}user/{user}/miqa/ready", allow_redirects=False, timeout=30)
    return answer.status_code == 200


def kernel_of(page) -> str:
    """The id of the kernel a dashboard page talks to (in Voila's page configuration)."""
    return str(
        page.evaluate(
            "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
        )
    )


@pytest.fixture(scope="module")
def reviewers(hub, browser) -> Iterator[dict[str, object]]:
    """hana and hugo signed in through the hub, at the same time, each on Iota's review."""
    pages = {user: hub_page(browser) for user in PASSWORDS}
    errors: list[str] = []
    for page in pages.values():  # as the other browser tests' pages: errors fail the test
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and not any(h in msg.text for h in HARMLESS)
                else None
            ),
        )
    for user, page in pages.items():  # the review link asks for the hub's sign-in first
        page.goto(review_link(hub, user), timeout=OPEN_TIMEOUT)
        assert "/hub/login" in page.url, page.url
    for user, page in pages.items():  # both servers start at once
        submit_login(page, user, PASSWORDS[user])
    for user, page in pages.items():
        # the hub's redirects may add their count (&redirects=1)
        address = re.compile(re.escape(f"{hub.url}user/{user}/?project={PROJECT}") + "(&|$)")
        page.wait_for_url(address, timeout=SPAWN_TIMEOUT)
        page.locator(f"{REVIEW} .miqa-scan-info .miqa-where").wait_for(timeout=SPAWN_TIMEOUT)
        wait_for_picture(page)
    yield pages
    for page in pages.values():
        page.close(run_before_unload=True)
        page.context.close()
    assert not errors, errors


# ------------------------------------------------------------------------ tests


def test_a_wrong_password_is_refused_at_the_hub(hub, browser) -> None:
    """hana's name with hugo's password: the hub's form says no, and no server starts."""
    page = hub_page(browser)
    try:
        page.goto(f"{hub.url}hub/login", timeout=OPEN_TIMEOUT)
        submit_login(page, "hana", PASSWORDS["hugo"])
        page.get_by_text("Invalid username or password").wait_for()
        assert "/hub/login" in page.url
        page.goto(review_link(hub, "hana"), timeout=OPEN_TIMEOUT)
        assert "/hub/login" in page.url  # still not signed in
        assert page.locator(".miqa-dashboard").count() == 0
    finally:
        page.context.close()


def test_two_reviewers_sign_in_through_the_hub_and_review_at_once(
    reviewers, shared: Catalog
) -> None:
    """Each lands on their own server's review of Iota, on an experiment of their own
    (the other's is claimed), and is named on the page; their keys and notes, typed in
    turns at a person's speed, and submits sent together, are stored under their
    names."""
    shown = {}
    for user, page in reviewers.items():
        header = page.locator(".miqa-dashboard-header").inner_text()
        assert f"Signed in as {user}" in header, header
        shown[user] = page.locator(f"{REVIEW} .miqa-scan-info .miqa-where").inner_text()
    hana, hugo = reviewers["hana"], reviewers["hugo"]
    first = {user: text.split(" / ")[2].split()[0] for user, text in shown.items()}
    assert sorted(first.values()) == ["K1", "K3"], shown  # one experiment each
    for page in (hana, hugo):
        page.mouse.move(1, 1)
        keys_on(page)
        page.keyboard.press("t")  # the note
    for i in range(max(map(len, NOTES.values()))):  # in turns: both pages busy at once
        for user, page in reviewers.items():
            if i < len(NOTES[user]):
                page.keyboard.type(NOTES[user][i], delay=PERSON)
    for user, page in reviewers.items():
        assert page.locator(f"{REVIEW} .miqa-note textarea").input_value() == NOTES[user]
    for page in (hana, hugo):
        page.keyboard.press("Escape")
        keys_on(page)
        page.keyboard.press("1")  # U
    for page in (hana, hugo):
        page.locator(f"{REVIEW} .miqa-decision-U.miqa-selected").wait_for()
    hana.keyboard.press("Enter")  # both submit together
    hugo.keyboard.press("Enter")
    second = {"K1": "K2", "K3": "K4"}
    for user, page in reviewers.items():
        wait_for_scan(page, second[first[user]])
    expected = sorted((first[user], user, "U", NOTES[user]) for user in reviewers)
    assert decisions(shared, 2) == expected  # in the shared PostgreSQL catalog


def test_a_reviewer_cannot_open_another_reviewers_server(hub, reviewers) -> None:
    """With both servers running, hana's browser, signed in at the hub, asks for hugo's
    dashboard: the hub refuses her; and for his page's kernel: his server refuses her."""
    hana = reviewers["hana"]
    page = hana.context.new_page()
    try:
        answer = page.goto(review_link(hub, "hugo"), timeout=OPEN_TIMEOUT)
        assert answer is not None and answer.status == 403, (answer and answer.status, page.url)
        assert page.url.startswith(f"{hub.url}hub/api/oauth2/authorize"), page.url
        assert page.locator(".miqa-dashboard").count() == 0
        assert REFUSED in page.locator("body").inner_text()
        # his page's kernel, in his server's API: his server refuses her itself
        his = f"{hub.url}user/hugo/api/kernels/{kernel_of(reviewers['hugo'])}"
        answer = page.goto(his, timeout=OPEN_TIMEOUT)
        assert answer is not None and answer.status == 403, (answer and answer.status, page.url)
        assert page.url == his
        assert answer.json() == {"message": "Forbidden", "reason": None}
        # while her own page's kernel answers her
        own = kernel_of(hana)
        answer = page.goto(f"{hub.url}user/hana/api/kernels/{own}", timeout=OPEN_TIMEOUT)
        assert answer is not None and answer.status == 200 and answer.json()["id"] == own
    finally:
        page.close()


def test_the_kernels_do_not_hold_the_hubs_api_token(hub, reviewers) -> None:
    """The hub gives each server an API token; the servers keep it from their pages'
    kernels (a page's kernel runs what the page sends)."""
    servers, kernels = {}, {}
    for process in psutil.Process(hub.process.pid).children(recursive=True):
        try:
            env, command = process.environ(), " ".join(process.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
        user = env.get("JUPYTERHUB_USER")
        if user in PASSWORDS and "miqa_nb.server" in command:
            servers[user] = "JUPYTERHUB_API_TOKEN" in env
        elif user in PASSWORDS and "MIQA_NB_KERNEL_KEY" in env:
            kernels.setdefault(user, []).append("JUPYTERHUB_API_TOKEN" in env)
    assert servers == {"hana": True, "hugo": True}
    assert set(kernels) == {"hana", "hugo"}
    assert not any(any(held) for held in kernels.values()), kernels


def test_scripts_sign_in_to_their_own_server_through_the_hub(hub, reviewers) -> None:
    """XNAT's session call on hana's server, through the hub's proxy: her catalog
    password opens it; hugo's password, on her server, does not."""
    url = f"{hub.url}user/hana/data/JSESSION"
    mine = requests.get(url, auth=("hana", PASSWORDS["hana"]), timeout=60)
    assert mine.status_code == 200 and mine.text.strip(), mine.status_code
    his = requests.get(url, auth=("hugo", PASSWORDS["hugo"]), timeout=60)
    assert his.status_code == 401


def test_signing_out_stops_the_reviewers_server(hub, reviewers) -> None:
    """hana's Sign out (the dashboard's header) signs her out of the hub, which stops
    her server; her review link then asks for the hub's sign-in again."""
    hana = reviewers["hana"]
    hana.locator(".miqa-dashboard-header a.miqa-signout").click()
    hana.wait_for_url(re.compile(re.escape(f"{hub.url}hub/login")))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server_running(hub, "hana"):
        time.sleep(0.2)
    assert not server_running(hub, "hana")
    hana.goto(review_link(hub, "hana"), timeout=OPEN_TIMEOUT)
    assert "/hub/login" in hana.url
    assert server_running(hub, "hugo")  # his goes on
