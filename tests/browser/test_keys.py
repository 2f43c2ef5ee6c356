"""The review page's keys in a real browser: nothing typed is lost, cut or moved.

Works on project ``Epsilon``, made here (six scans, one experiment each), so the
review tests' project Gamma stays as they expect it. ``tom`` (tier 2) reviews with
miqa_nb's keys, ``tina`` (tier 1) chooses MIQA's.
"""

from __future__ import annotations

import time

import pytest
from widgets_dashboard.dashboard_catalog import TIER1, TIER2, DashboardCatalog

from miqa_nb.catalog import Catalog

from .review_site import import_project, sign_in
from .test_review import OPEN_TIMEOUT, REVIEW, status_text, wait_for_picture, wait_for_scan

PROJECT = "Epsilon"
SCANS = [f"D{n}" for n in range(1, 7)]
NOTE = f"{REVIEW} .miqa-note textarea"


@pytest.fixture(scope="module")
def delta(site: DashboardCatalog) -> Catalog:
    """Project Epsilon in the served catalog: D1 ... D6 in experiments X1 ... X6."""
    scans = [(f"X{n}", scan, "T1") for n, scan in enumerate(SCANS, start=1)]
    return import_project(site, PROJECT, scans, seed=41)


# ---------------------------------------------------------------------- helpers


def open_review(page, server, user: str, scan: str) -> None:
    """Open Epsilon's overview as ``user``, then ``scan``; wait for its planes."""
    sign_in(page, server, user)
    page.locator(".miqa-project", has_text=PROJECT).click(timeout=OPEN_TIMEOUT)
    page.locator(".miqa-overview-open", has_text=scan).click()
    wait_for_scan(page, scan)
    wait_for_picture(page)


def stored(cat: Catalog, user: str, timeout: float = 20, n: int = 1) -> list[tuple[str, str, str]]:
    """(scan, decision, note) of ``user``'s decisions in Epsilon, once there are ``n``."""
    deadline = time.monotonic() + timeout
    while True:
        df = cat.decisions(PROJECT)
        rows = [
            (r.scan, r.decision, r.note if isinstance(r.note, str) else "")
            for r in df[df["creator"] == user].itertuples(index=False)
        ]
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def keys_badge(page) -> str:
    return page.locator(f"{REVIEW} .miqa-keys-badge").inner_text()


def note_focused(page) -> bool:
    return bool(page.evaluate("document.activeElement?.classList.contains('miqa-note-text')"))


# ------------------------------------------------------------------------ tests


def test_a_note_typed_at_once_after_t_on_a_busy_kernel_is_stored_whole(page, server, delta) -> None:
    """Right after a submit (the kernel writes it, opens and draws the next scan):
    choose UE, press ``t`` and type at full speed, leave the note, submit. The scan
    shown when typing began holds exactly that note and UE; no other scan is touched."""
    open_review(page, server, TIER2, "D1")
    page.mouse.move(1, 1)  # nowhere near the planes
    page.keyboard.press("1")
    page.locator(f"{REVIEW} .miqa-decision-U.miqa-selected").wait_for()
    page.keyboard.press("Enter")  # submit D1: the kernel is busy from here
    wait_for_scan(page, "D2")
    page.keyboard.press("2")
    page.keyboard.press("t")
    page.keyboard.type("noisy but usable", delay=0)
    assert page.locator(NOTE).input_value() == "noisy but usable"
    page.locator(f"{REVIEW} .miqa-decision-UE.miqa-selected").wait_for()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_for_scan(page, "D3")
    assert stored(delta, TIER2, n=2) == [("D1", "U", ""), ("D2", "UE", "noisy but usable")]


def test_a_note_typed_with_the_mouse_off_the_planes_is_stored_whole(page, server, delta) -> None:
    """At a person's speed, the mouse on the toolbar: "top of brain cut off", not
    "p of brain cut off"."""
    open_review(page, server, TIER1, "D4")  # D3: tom's previous page still holds it
    page.locator(f"{REVIEW} .miqa-toolbar").hover()
    page.keyboard.press("3")
    page.keyboard.press("t")
    page.keyboard.type("top of brain cut off", delay=80)
    page.keyboard.press("Escape")
    page.locator(f"{REVIEW} .miqa-decision-Q.miqa-selected").wait_for()
    page.keyboard.press("Enter")
    wait_for_scan(page, "D5")
    assert stored(delta, TIER1) == [("D4", "Q?", "top of brain cut off")]


def test_keys_work_with_the_focus_on_the_page_and_say_when_they_are_off(
    page, server, delta
) -> None:
    """Focus on the page's body, the mouse away: keys work and the badge says so; in
    the note they are letters and the badge says "keys off"; Esc gives them back.
    ``?`` lists the keys; ``n`` stops at the last scan."""
    open_review(page, server, TIER2, "D5")
    page.evaluate("document.activeElement?.blur()")
    page.mouse.move(1, 1)
    assert page.evaluate("document.activeElement === document.body")
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-on").wait_for()
    assert keys_badge(page) == "keys on"
    page.keyboard.press("n")
    wait_for_scan(page, "D6")
    page.locator(NOTE).click()
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-off").wait_for()
    page.keyboard.type("n p")  # letters of the note, not keys
    assert page.locator(NOTE).input_value() == "n p"
    page.keyboard.press("Escape")
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-on").wait_for()
    assert not note_focused(page)

    help_box = page.locator(f"{REVIEW} .miqa-keys-help")
    assert help_box.is_hidden()
    page.keyboard.press("?")
    help_box.wait_for(state="visible")
    listed = help_box.inner_text()
    assert "miqa_nb keys" in listed and "next scan" in listed and "submit" in listed
    page.keyboard.press("Escape")
    help_box.wait_for(state="hidden")

    page.keyboard.press("n")  # D6 is the last scan: it stays, and says so
    page.wait_for_function(
        "document.querySelector('.miqa-review-area .miqa-status')?.innerText.includes('last')"
    )
    assert "last scan" in status_text(page)
    wait_for_scan(page, "D6")


@pytest.fixture
def tina_keys_back(delta: Catalog):
    """Give tina miqa_nb's keys back after the test (test_review.py presses them)."""
    yield
    delta.set_user_setting("review_keys", "miqa_nb", by=TIER1)


def test_miqa_keys_are_kept_for_the_user_and_do_what_miqa_does(
    page, server, delta, tina_keys_back
) -> None:
    """tina chooses MIQA's keys; after a reload they are still chosen; ``u`` records U
    and goes on, ``↓`` goes to the next scan, ``o`` without a note is refused."""
    deadline = time.monotonic() + 60  # tom's pages of the tests before have closed
    while set(delta.claims(PROJECT)["user"]) - {TIER1}:
        assert time.monotonic() < deadline, "tom's closed pages still hold their claims"
        time.sleep(0.2)
    open_review(page, server, TIER1, "D1")
    page.locator(f"{REVIEW} .miqa-keyset button", has_text="MIQA keys").click()
    deadline = time.monotonic() + 20
    while delta.user_setting("review_keys", by=TIER1) != "miqa":
        assert time.monotonic() < deadline, "the key set was not stored"
        time.sleep(0.2)

    page.reload()
    page.locator(".miqa-project", has_text=PROJECT).click(timeout=OPEN_TIMEOUT)
    page.locator(".miqa-overview-open", has_text="D4").click()
    wait_for_scan(page, "D4")
    chosen = page.locator(f"{REVIEW} .miqa-keyset button.mod-active")
    assert chosen.inner_text() == "MIQA keys"
    page.mouse.move(1, 1)
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-on").wait_for()
    before = stored(delta, TIER1, timeout=0)
    page.keyboard.press("u")  # MIQA records U at once and goes on
    wait_for_scan(page, "D5")
    assert stored(delta, TIER1, n=len(before) + 1)[len(before) :] == [("D4", "U", "")]
    page.keyboard.press("ArrowDown")
    wait_for_scan(page, "D6")
    page.keyboard.press("o")  # Q? needs a note or an artifact
    refusal = page.locator(f"{REVIEW} .miqa-decision-error .miqa-error")
    refusal.wait_for()  # shown beside Submit
    assert "note" in refusal.inner_text()
    page.keyboard.press("?")
    assert "MIQA keys" in page.locator(f"{REVIEW} .miqa-keys-help").inner_text()
    assert len(stored(delta, TIER1, timeout=1, n=99)) == len(before) + 1
