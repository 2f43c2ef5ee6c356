"""The whole review panel, headless: toolbar, progress, status, other reviewers."""

from __future__ import annotations

import pytest

from miqa_nb.core.vocabulary import Decision
from miqa_nb.widgets import ReviewPanel

PROJECT = "P"

CLASSES = [
    "miqa-review",
    "miqa-prev",
    "miqa-next",
    "miqa-refresh",
    "miqa-filter",
    "miqa-progress",
    "miqa-progress-text",
    "miqa-status",
    "miqa-header",
    "miqa-scan-info",
    "miqa-claim",
    "miqa-take-over",
    "miqa-history",
    "miqa-viewer",
    "miqa-plane-axial",
    "miqa-plane-coronal",
    "miqa-plane-sagittal",
    "miqa-slice-axial",
    "miqa-frame",
    "miqa-window-preset",
    "miqa-window-range",
    "miqa-3d-toggle",
    "miqa-decision-panel",
    "miqa-decision-U",
    "miqa-decision-UE",
    "miqa-decision-Q",
    "miqa-decision-UN",
    "miqa-artifact-lesions",
    "miqa-note",
    "miqa-store-location",
    "miqa-advance",
    "miqa-submit",
    "miqa-shortcuts",
]


def _classes(widget, found=None):
    found = set() if found is None else found
    found.update(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        _classes(child, found)
    return found


def test_every_documented_css_class_is_there(start):
    panel = ReviewPanel(start("t2"), auto_refresh=None)
    assert set(CLASSES) <= _classes(panel)


def test_navigation_buttons(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    assert panel.prev_button.disabled
    panel.next_button.click()
    assert session.key == ("E1", "S2") and not panel.prev_button.disabled
    panel.prev_button.click()
    assert session.key == ("E1", "S1")
    assert "(1 of 7 in queue)" in panel.header.info.value


def test_progress_and_status_after_submit(start, project):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)
    assert panel.progress.value == 0 and panel.progress.max == 7
    panel.decision.buttons[Decision.QUESTIONABLE].click()
    panel.decision.submit.click()
    # the refusal is shown beside Submit, the button that caused it, not at the top
    assert "needs a note" in panel.decision.error.value
    assert "needs a note" not in panel.status.value
    assert "miqa-status-error" not in panel.status._dom_classes
    panel.decision.note.value = "check motion"
    panel.decision.submit.click()
    assert panel.progress.value == 1 and "1/7 reviewed" in panel.progress_text.value
    assert panel.decision.error.value == ""
    assert "⚠" not in panel.status.value
    assert "miqa-status-error" not in panel.status._dom_classes
    stored = session.last_stored
    assert stored is not None and stored.key == ("E1", "S1") and stored.decision == "Q?"
    assert f"Saved Q? for scan S1 (E1) at {stored.at:%H:%M:%S}." in panel.decision.saved.value
    assert session.key == ("E1", "S2")


def test_refresh_shows_other_reviewers_progress(start, project):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)
    project.record_decision(PROJECT, "E3", "S7", "U", by="t2b")
    panel.refresh_button.click()
    assert panel.progress.value == 1 and "t2b: 1" in panel.progress_text.value


def test_filter_dropdown_rebuilds_the_queue(start, project):
    project.record_decision(PROJECT, "E2", "S4", "Q?", by="t1", note="?")
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)
    panel.filter.value = "needs tier-2"
    assert session.key == ("E2", "S4") and session.queue.filter == "needs tier-2"


def test_broken_scan_error_is_readable(start):
    session = start("t2", filter="all")
    panel = ReviewPanel(session, auto_refresh=None)
    session.open(("E2", "S5"))
    assert "S5" in panel.status.value and "truncated" in panel.status.value
    panel.next_button.click()
    assert session.key == ("E3", "S6") and "⚠" not in panel.status.value


def test_auto_refresh_is_started_and_stopped(start):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=30)
    assert session.auto_refreshing
    panel.close()
    assert not session.auto_refreshing


def test_a_raising_callback_is_caught_by_the_fixture(start, widget_errors, monkeypatch):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)

    def boom() -> bool:
        raise RuntimeError("bug in next")

    monkeypatch.setattr(session, "next", boom)
    panel.next_button.click()  # must not raise out of the click
    assert len(widget_errors) == 1 and "failed" in widget_errors[0].getMessage()
    widget_errors.clear()  # seen: let this test pass


@pytest.mark.parametrize("user", ["t1", "col"])
def test_panel_for_each_role(start, user):
    panel = ReviewPanel(start(user), auto_refresh=None)
    assert user in panel.decision.role.value
