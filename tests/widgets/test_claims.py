"""Claims, messages and the saved sign in the review panel, headless.

A scan another reviewer holds says who and until when at once and has its decision
controls off; they come back when the claim ends. Messages belong to the scan they
were about; errors are shown beside the control that caused them; each stored
decision is confirmed. The experiment's note is shown escaped and edited by those
allowed.
"""

from __future__ import annotations

from datetime import UTC

from miqa_nb.core.vocabulary import Decision
from miqa_nb.review.session import ReviewSession
from miqa_nb.widgets import ReviewPanel

PROJECT = "P"


def _decision_controls_off(panel: ReviewPanel) -> list[bool]:
    decision = panel.decision
    return [
        *(b.disabled for b in decision.buttons.values()),
        *(t.disabled for t in decision.artifacts.values()),
        decision.note.disabled,
        decision.submit.disabled,
    ]


def test_a_held_scan_says_who_and_until_when_and_its_controls_are_off(start):
    ana = start("t2")  # opens E1/S1 and claims E1
    ben = start("t2b", filter="all", resume=False)
    panel = ReviewPanel(ben, auto_refresh=None)
    ben.open(("E1", "S2"))
    until = ana.claim.expires_utc.replace(tzinfo=UTC).astimezone()
    claim = panel.header.claim.value
    assert '<b class="miqa-claim-holder">t2</b> is reviewing experiment E1 until ' in claim
    assert f">{until:%H:%M}<" in claim
    assert all(_decision_controls_off(panel))
    # and another experiment, nobody holds: everything a tier-2 reviewer may is on
    ben.open(("E2", "S4"))
    assert "miqa-claim-other" not in panel.header.claim.value
    assert not any(_decision_controls_off(panel)[:4])  # the four decisions
    assert not panel.decision.note.disabled


def test_controls_come_back_when_the_claim_is_released(start):
    ana = start("t2")
    ben = start("t2b", filter="all", resume=False)
    panel = ReviewPanel(ben, auto_refresh=None)
    ben.open(("E1", "S2"))
    assert panel.decision.buttons[Decision.USABLE].disabled
    ana.close()  # gives up E1
    ben.refresh()  # what the panel's auto-refresh does every few seconds
    assert not panel.decision.buttons[Decision.USABLE].disabled
    assert "You are reviewing experiment E1 until" in panel.header.claim.value
    panel.decision.buttons[Decision.USABLE].click()
    assert not panel.decision.submit.disabled


def test_a_key_on_a_held_scan_is_refused_beside_submit_in_a_sentence(start):
    start("t2")
    ben = start("t2b", filter="all", resume=False)
    panel = ReviewPanel(ben, auto_refresh=None)
    ben.open(("E1", "S3"))
    assert not ben.set_decision("U")  # what the key 1 does
    error = panel.decision.error.value
    assert "t2 is reviewing experiment E1 until" in error
    assert "decide them when the claim ends" in error
    assert "miqa-status-error" not in panel.status._dom_classes  # not at the top
    ben.open(("E2", "S4"))  # another scan: the refusal was about the other one
    assert panel.decision.error.value == ""


def test_a_message_does_not_outlive_its_scan(start):
    session = start("t2", filter="all", resume=False)
    panel = ReviewPanel(session, auto_refresh=None)
    assert not session.previous()
    assert "first scan" in panel.status.value
    session.open(("E1", "S2"))
    assert session.message == "" and "first scan" not in panel.status.value


def test_the_saved_sign_follows_each_submit(start):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)
    assert panel.decision.saved.value == '<span class="miqa-saved-text"></span>'
    for scan in ("S1", "S2"):
        panel.decision.buttons[Decision.USABLE].click()
        panel.decision.submit.click()
        stored = session.last_stored
        assert stored is not None and stored.key == ("E1", scan)
        assert panel.decision.saved.value == (
            f'<span class="miqa-saved-text">Saved U for scan {scan} (E1) at '
            f"{stored.at:%H:%M:%S}.</span>"
        )


def test_decisions_waiting_to_be_written_are_counted(project, cache):
    """With the background writer, a submitted decision is counted until it is
    written; then the sign says it was saved."""
    session = ReviewSession(project, PROJECT, "t2", cache=cache, background=True)
    panel = ReviewPanel(session, auto_refresh=None)
    try:
        session.flush()
        release = _hold_the_writer(session)
        panel.decision.buttons[Decision.USABLE].click()
        panel.decision.submit.click()
        assert session.writes_waiting == 1
        assert "1 decision being written." in panel.decision.saved.value
        release()
        session.flush()
        assert session.writes_waiting == 0
        assert "Saved U for scan S1 (E1)" in panel.decision.saved.value
        assert "being written" not in panel.decision.saved.value
    finally:
        session.close()


def _hold_the_writer(session: ReviewSession):
    """Block the session's background thread until the returned function is called."""
    import threading

    gate = threading.Event()
    session.sync.run(lambda: gate.wait(30))
    return gate.set


def test_the_experiment_note_is_shown_escaped_and_edited_by_reviewers(start, project):
    project.set_experiment_note(PROJECT, "E1", "<b>motion</b> in all runs", by="admin")
    session = start("t1")
    panel = ReviewPanel(session, auto_refresh=None)
    header = panel.header
    assert "&lt;b&gt;motion&lt;/b&gt; in all runs" in header.note.value
    assert "<b>motion" not in header.note.value
    assert header.note_edit.layout.display == ""
    header.note_edit.click()
    assert header.note_editor.layout.display == ""
    assert header.note_text.value == "<b>motion</b> in all runs"
    header.note_text.value = "checked: motion only in run 2"
    header.note_save.click()
    assert header.note_editor.layout.display == "none"
    assert project.experiment_notes(PROJECT)["E1"] == "checked: motion only in run 2"
    assert "checked: motion only in run 2" in header.note.value
    session.open(("E2", "S4"))
    assert "No experiment note." in header.note.value


def test_a_refused_experiment_note_is_said_beside_the_editor(start):
    session = start("t2")
    panel = ReviewPanel(session, auto_refresh=None)
    header = panel.header
    header.note_edit.click()
    header.note_text.value = "bell\x07"
    header.note_save.click()
    assert header.note_editor.layout.display == ""  # still open, with the reason
    assert "control character" in header.note_error.value
    assert "control character" not in panel.status.value


def test_collaborators_read_the_experiment_note_only(start, project):
    project.set_experiment_note(PROJECT, "E1", "scanner upgrade", by="t1")
    panel = ReviewPanel(start("col"), auto_refresh=None)
    assert "scanner upgrade" in panel.header.note.value
    assert panel.header.note_edit.layout.display == "none"


def test_a_stored_decision_is_no_longer_counted_when_observers_hear_of_it(start):
    """Observers of 'stored' may run at once (on the kernel's loop): by then the
    decision is no longer counted as being written, or the page would say so for ever."""
    session = start("t2")
    heard: list[tuple[int, object]] = []
    session.observe(
        lambda _e: heard.append((session.writes_waiting, session.last_stored)), {"stored"}
    )
    session.set_decision("U")
    assert session.submit()
    assert len(heard) == 1
    waiting, stored = heard[0]
    assert waiting == 0 and stored is not None and stored.key == ("E1", "S1")
