"""The review panel in a real browser: keyboard review, resume, what others see,
permissions, export, a broken scan, markup in notes.

Works on project ``Gamma`` (:mod:`.review_site`). The tests run in file order and the
later ones build on the keyboard review of the first (as a reviewer's day does: review,
then others look, then someone exports); each checks that precondition in the catalog
and says so when it is missing.

Keys work anywhere on the review page outside text fields (the page's keyboard widget,
``miqa_nb/widgets/_keyboard.py``); ``t`` puts the cursor in the note, Esc leaves it.
More on keys: test_keys.py.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest
from widgets_dashboard.dashboard_catalog import ADMIN, TIER1, TIER2, DashboardCatalog

from miqa_nb import read_export
from miqa_nb.catalog import Catalog

from .review_site import (
    BROKEN_FILE,
    CREATOR,
    REVIEW_PROJECT,
    SCANS,
    SCRIPT_NOTE,
    SCRIPT_SCAN,
    review_export_path,
    sign_in,
)

#: Opening a page waits for a kernel; give a cold one time on a busy machine.
OPEN_TIMEOUT = 60_000
REVIEW = ".miqa-review-area .miqa-review"
#: What the keyboard review records: scan -> (key, decision, artifact key presses,
#: artifact, its state, note). Shift+2 is the second artifact, Shift+5 the fifth...
KEYBOARD_REVIEW = {
    "G1": ("1", "U", ["Shift+Digit2", "Shift+Digit2"], "partial_brain_coverage", "absent", "clean"),
    "G2": ("2", "UE", ["Shift+Digit5"], "ghosting_motion", "present", "mild motion, usable"),
    "G3": ("3", "Q?", ["Shift+Digit6"], "inhomogeneity", "present", "check <b>bias</b> field"),
}


# ---------------------------------------------------------------------- helpers


def catalog(site: DashboardCatalog) -> Catalog:
    return Catalog(site.catalog_path, retry_seconds=30)


def decisions_by(site: DashboardCatalog, user: str) -> pd.DataFrame:
    df = catalog(site).decisions(REVIEW_PROJECT)
    return df[df["creator"] == user].reset_index(drop=True)


def wait_for_decisions(
    site: DashboardCatalog, user: str, n: int, timeout: float = 15
) -> pd.DataFrame:
    """The user's decisions in Gamma once there are ``n`` (they are written in the
    background of the page's kernel)."""
    deadline = time.monotonic() + timeout
    while True:
        found = decisions_by(site, user)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def require_keyboard_review(site: DashboardCatalog) -> pd.DataFrame:
    found = decisions_by(site, ADMIN)
    if len(found) < len(KEYBOARD_REVIEW):
        pytest.fail(
            "this test needs the decisions of test_review_three_scans_with_the_keyboard "
            f"(found {len(found)} by {ADMIN}); run the module in order"
        )
    return found


def open_project(page, server, user: str) -> None:
    """Open the dashboard as ``user`` and then project Gamma's overview."""
    sign_in(page, server, user)
    button = page.locator(".miqa-project", has_text=REVIEW_PROJECT)
    button.wait_for(timeout=OPEN_TIMEOUT)
    button.click()
    page.locator(".miqa-project-title", has_text=REVIEW_PROJECT).wait_for()
    page.locator(".miqa-overview-row").first.wait_for()


def open_scan(page, scan: str) -> None:
    """Open a scan from the overview; wait until the review panel shows it."""
    page.locator(".miqa-overview-open", has_text=scan).click()
    wait_for_scan(page, scan)


def wait_for_scan(page, scan: str) -> None:
    page.wait_for_function(
        "(scan) => document.querySelector("
        "'.miqa-review-area .miqa-scan-info .miqa-where')?.innerText.includes(' / ' + scan)",
        arg=scan,
    )


def plane_src(page, plane: str = "axial") -> str:
    return page.locator(f"{REVIEW} img.miqa-plane-{plane}").get_attribute("src") or ""


def wait_for_picture(page, previous: str = "", plane: str = "axial") -> str:
    """Wait until the plane shows a loaded picture other than ``previous``; its src."""
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel);"
        " return img && img.src.startsWith('blob:') && img.src !== old"
        " && img.complete && img.naturalWidth > 0; }",
        arg=[f"{REVIEW} img.miqa-plane-{plane}", previous],
    )
    return plane_src(page, plane)


def keys_on(page) -> None:
    """Wait until the review page says its keys are live (no text field has the focus)."""
    page.locator(f"{REVIEW} .miqa-keys-badge.miqa-keys-on").wait_for()


def status_text(page) -> str:
    return page.locator(f"{REVIEW} .miqa-status").inner_text()


# ------------------------------------------------------------------------ tests


def test_review_three_scans_with_the_keyboard(page, server, site, shoot) -> None:
    """Decision, artifact, note and submit for three scans with keys only; the catalog
    holds them; after a reload the review resumes at the next scan with 3 reviewed."""
    assert decisions_by(site, ADMIN).empty
    open_project(page, server, ADMIN)
    page.get_by_text("Review", exact=True).click()  # the review starts where one left off
    wait_for_scan(page, "G1")
    src = wait_for_picture(page)
    page.mouse.move(1, 1)  # the mouse is nowhere near the planes: keys work anyway
    keys_on(page)
    for n, (scan, (key, code, artifact_keys, artifact, state, note)) in enumerate(
        KEYBOARD_REVIEW.items()
    ):
        wait_for_scan(page, scan)
        page.keyboard.press(key)
        page.locator(f"{REVIEW} .miqa-decision-{code.rstrip('?')}.miqa-selected").wait_for()
        for artifact_key in artifact_keys:
            page.keyboard.press(artifact_key)
        page.locator(
            f"{REVIEW} .miqa-artifact-{artifact} button.mod-active", has_text=state
        ).wait_for()
        page.keyboard.press("t")  # the note, and the letters right after it, at once
        page.keyboard.type(note, delay=0 if n % 2 else 80)
        assert page.locator(f"{REVIEW} .miqa-note textarea").input_value() == note
        if n == 0:
            shoot("decision-selected")
        page.keyboard.press("Escape")  # leave the note: the keys work again
        keys_on(page)
        page.keyboard.press("Enter")  # submit; the panel goes on to the next scan
        src = wait_for_picture(page, src)
    wait_for_scan(page, "G4")
    stored = wait_for_decisions(site, ADMIN, len(KEYBOARD_REVIEW))
    assert list(stored["scan"]) == list(KEYBOARD_REVIEW)
    for row in stored.itertuples(index=False):
        _key, code, _keys, artifact, state, note = KEYBOARD_REVIEW[row.scan]
        assert (row.decision, row.note) == (code, note)
        assert getattr(row, artifact) == state, (row.scan, artifact)
    assert stored.loc[0, "lesions"] in ("not assessed", None) or pd.isna(stored.loc[0, "lesions"])
    assert "Traceback" not in page.content()

    # reload: the review resumes after the last scan reviewed, with 3 reviewed
    page.reload()
    page.locator(".miqa-project", has_text=REVIEW_PROJECT).click(timeout=OPEN_TIMEOUT)
    page.get_by_text("Review", exact=True).click()
    wait_for_scan(page, "G4")
    wait_for_picture(page)
    progress = page.locator(f"{REVIEW} .miqa-progress-text").inner_text()
    assert progress.startswith(f"3/{len(SCANS)} reviewed"), progress
    assert f"{ADMIN}: 3" in progress
    shoot("resumed")


def test_another_reviewer_sees_the_new_states(page, server, site, shoot) -> None:
    """A tier-2 reviewer's own browser context shows the keyboard review's decisions in
    the overview, and no administration or global import."""
    require_keyboard_review(site)
    started = time.perf_counter()
    open_project(page, server, TIER2)
    expected = catalog(site).scans(REVIEW_PROJECT).set_index("scan")
    for scan, (_key, code, *_rest) in KEYBOARD_REVIEW.items():
        row = page.locator(
            ".miqa-overview-row", has=page.locator(".miqa-overview-open", has_text=scan)
        )
        text = row.inner_text()
        assert f"{code} by {ADMIN}" in text, text
        assert str(expected.loc[scan, "state"]) in text, text
    untouched = page.locator(
        ".miqa-overview-row", has=page.locator(".miqa-overview-open", has_text="G6")
    ).inner_text()
    assert "unreviewed" in untouched and ADMIN not in untouched
    print(f"tier-2 page open to new states: {time.perf_counter() - started:.1f} s")
    # a non-superuser who is not the creator: no administration at all
    assert page.get_by_text("Administration", exact=True).count() == 0
    assert page.locator(".miqa-admin, .miqa-global-import, .miqa-admin-global").count() == 0
    shoot("overview")


def test_creator_exports_without_global_controls(page, server, site, shoot) -> None:
    """The project's creator (not a superuser) has the administration panel but no
    global import or export; the export she makes holds the keyboard review's decisions.

    That a non-superuser cannot run a global import even by calling the action is
    tested below the page: ``tests/test_dashboard_model.py::test_admin_actions_for_a_creator``
    (``AdminActions.import_global`` raises PermissionDenied) and the catalog's own checks.
    """
    require_keyboard_review(site)
    export = review_export_path(site)
    export.unlink(missing_ok=True)
    open_project(page, server, CREATOR)
    page.get_by_text("Administration", exact=True).click()
    page.locator(".miqa-admin").wait_for()
    for absent in (
        ".miqa-admin-global",
        ".miqa-global-import",
        ".miqa-global-export",
        ".miqa-global-dry-run",
        ".miqa-save-global-paths",
    ):
        assert page.locator(absent).count() == 0, absent
    assert page.get_by_text("Global import", exact=False).count() == 0
    page.click(".miqa-export")
    page.wait_for_function(
        "document.querySelector('.miqa-export-result')?.innerText.includes('wrote')"
    )
    shoot("admin")
    frames = read_export(export)
    by_scan = frames.drop_duplicates("scan_name").set_index("scan_name")
    for scan, (_key, code, _keys, artifact, state, note) in KEYBOARD_REVIEW.items():
        row = by_scan.loc[scan]
        assert row["last_decision"] == code
        assert row["last_decision_creator"] == ADMIN
        assert row["last_decision_note"] == note
        assert bool(row[artifact]) is (state == "present")
    assert pd.isna(by_scan.loc["G6", "last_decision"])


def test_tier1_cannot_record_UN(page, server, site, shoot) -> None:
    """For a tier-1 reviewer the UN button is disabled and the key 4 records nothing."""
    _, scan = SCRIPT_SCAN
    before = catalog(site).decisions(REVIEW_PROJECT)
    open_project(page, server, TIER1)
    open_scan(page, scan)
    wait_for_picture(page)
    unusable = page.locator(f"{REVIEW} .miqa-decision-UN")
    assert unusable.is_disabled()
    assert page.locator(f"{REVIEW} .miqa-decision-U").is_enabled()
    keys_on(page)
    page.keyboard.press("4")
    # the refusal is said beside Submit, by the decision controls, in a sentence
    refusal = page.locator(f"{REVIEW} .miqa-decision-error .miqa-error")
    refusal.wait_for()
    said = refusal.inner_text()
    assert "UN" in said and "tier" in said.lower() and said.endswith("U and Q? only)"), said
    assert page.locator(f"{REVIEW} .miqa-status-error").count() == 0
    assert page.locator(f"{REVIEW} .miqa-selected").count() == 0
    page.keyboard.press("Enter")  # nothing chosen: nothing to submit
    page.wait_for_function(
        "document.querySelector('.miqa-review-area .miqa-decision-error')"
        "?.innerText.includes('choose')"
    )
    shoot("tier1-refused")
    page.wait_for_timeout(300)  # a write, if any, would be on its way by now
    # Nothing recorded, by anyone on any scan: the catalog's decisions are as they were.
    pd.testing.assert_frame_equal(catalog(site).decisions(REVIEW_PROJECT), before)


def test_script_in_a_note_renders_as_text(page, server, site, shoot) -> None:
    """A note holding ``<script>`` shows literally in the history and never runs."""
    experiment, scan = SCRIPT_SCAN
    catalog(site).record_decision(
        REVIEW_PROJECT, experiment, scan, "Q?", by=TIER2, note=SCRIPT_NOTE
    )
    open_project(page, server, TIER2)
    open_scan(page, scan)
    note = page.locator(f"{REVIEW} .miqa-history-note").first
    note.wait_for()
    assert note.inner_text() == SCRIPT_NOTE
    injected = page.evaluate(
        "() => [typeof window.__miqa_pwned, "
        "[...document.scripts].filter(s => s.text.includes('__miqa_pwned')).length]"
    )
    assert injected == ["undefined", 0]
    wait_for_picture(page)
    shoot("history-script-note")


def test_corrupt_scan_shows_an_error_and_the_reviewer_moves_on(page, server, site, shoot) -> None:
    """A truncated .nii.gz: a readable error naming the file, no traceback; ``n`` goes
    on to the next scan, which renders."""
    open_project(page, server, TIER2)
    open_scan(page, "G5")
    error = page.locator(f"{REVIEW} .miqa-status-error")
    error.wait_for()
    message = error.inner_text()
    assert BROKEN_FILE in message, message
    content = page.content()
    assert "Traceback" not in content and 'File "' not in content
    assert "no image" in page.locator(f"{REVIEW} .miqa-plane-box-axial").inner_text()
    shoot("corrupt-scan")
    keys_on(page)
    page.keyboard.press("n")
    wait_for_scan(page, "G6")
    wait_for_picture(page)
    page.locator(f"{REVIEW} .miqa-status-error").wait_for(state="detached")
    assert BROKEN_FILE not in status_text(page)
