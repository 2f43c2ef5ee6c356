"""The decision panel, headless: buttons per role, checklist, note, submit, keys."""

from __future__ import annotations

from support import page_clicks, page_sets

from miqa_nb.core.vocabulary import ARTIFACTS, Decision
from miqa_nb.widgets import DecisionPanel
from miqa_nb.widgets.decision import decision_class

PROJECT = "P"


def test_classes_and_shortcuts_are_shown(start):
    panel = DecisionPanel(start("t2"))
    assert [decision_class(d) for d in Decision] == [
        "miqa-decision-U",
        "miqa-decision-UE",
        "miqa-decision-Q",
        "miqa-decision-UN",
    ]
    for decision, button in panel.buttons.items():
        assert decision_class(decision) in button._dom_classes
    for name in ARTIFACTS:
        assert f"miqa-artifact-{name}" in panel.artifacts[name]._dom_classes
    assert "miqa-note" in panel.note._dom_classes
    assert "miqa-submit" in panel.submit._dom_classes
    assert "Enter" in panel.shortcuts.value and "next scan" in panel.shortcuts.value


def test_buttons_follow_the_role(start):
    tier1 = DecisionPanel(start("t1"))
    assert {d for d, b in tier1.buttons.items() if not b.disabled} == {
        Decision.USABLE,
        Decision.QUESTIONABLE,
    }
    reader = DecisionPanel(start("col"))
    assert all(b.disabled for b in reader.buttons.values())
    assert reader.submit.disabled and reader.note.disabled
    assert "read only" in reader.role.value
    tier2 = DecisionPanel(start("t2b"))
    assert not any(b.disabled for b in tier2.buttons.values())


def test_choose_mark_note_and_submit(start, project):
    session = start("t2")
    panel = DecisionPanel(session)
    assert panel.submit.disabled
    panel.buttons[Decision.UNUSABLE].click()
    assert session.pending.decision == Decision.UNUSABLE
    assert "miqa-selected" in panel.buttons[Decision.UNUSABLE]._dom_classes
    assert not panel.submit.disabled
    panel.submit.click()
    assert "needs a note" in session.last_error
    assert project.decisions(PROJECT).empty
    panel.artifacts["ghosting_motion"].value = "present"
    panel.artifacts["lesions"].value = "absent"
    panel.note.value = "ghosts in the phase direction"
    assert session.pending.present == ("ghosting_motion",)
    panel.submit.click()
    stored = project.decisions(PROJECT).iloc[0]
    assert stored["decision"] == "UN" and stored["lesions"] == "absent"
    assert stored["note"] == "ghosts in the phase direction"
    assert session.key == ("E1", "S2")
    # the panel shows the new scan's empty decision
    assert panel.note.value == "" and panel.artifacts["ghosting_motion"].value == "not assessed"
    assert "miqa-selected" not in panel.buttons[Decision.UNUSABLE]._dom_classes


def _typed_on_the_page(panel, text, generation=None):
    """What the page sends as the reviewer types (see miqa_nb/widgets/_note.py)."""
    note = panel.note
    note._handle_custom_msg(
        {"value": text, "generation": note.generation if generation is None else generation}, []
    )


def test_a_note_typed_on_the_page_is_the_one_submitted(start, project):
    session = start("t2")
    panel = DecisionPanel(session)
    panel.buttons[Decision.QUESTIONABLE].click()
    _typed_on_the_page(panel, "ghost")
    _typed_on_the_page(panel, "ghosting in the phase direction")
    assert session.pending.note == "ghosting in the phase direction"
    panel.submit.click()
    assert project.decisions(PROJECT).iloc[0]["note"] == "ghosting in the phase direction"


def test_typing_that_arrives_after_the_next_scan_opened_is_dropped(start, project):
    # A page's typing and the Enter that submits are sent in order; what was typed
    # for the previous scan but arrives after the kernel moved on must not become the
    # next scan's note.
    session = start("t2")
    panel = DecisionPanel(session)
    panel.buttons[Decision.QUESTIONABLE].click()
    _typed_on_the_page(panel, "ghosting")
    typed_in = panel.note.generation
    panel.submit.click()
    assert session.key == ("E1", "S2") and panel.note.value == ""
    _typed_on_the_page(panel, "ghosting, late", generation=typed_in)
    assert session.pending.note == "" and panel.note.value == ""
    _typed_on_the_page(panel, "fine")  # typed for this scan
    assert session.pending.note == "fine"


def test_clicking_the_chosen_decision_again_clears_it(start):
    session = start("t2")
    panel = DecisionPanel(session)
    panel.buttons[Decision.USABLE].click()
    panel.buttons[Decision.USABLE].click()
    assert session.pending.decision is None


def test_location_and_advance_checkboxes(start, project):
    session = start("t2")
    panel = DecisionPanel(session)
    assert panel.store_location.value is True
    assert "i=" in panel.store_location.description
    panel.store_location.value = False
    panel.advance.value = False
    panel.buttons[Decision.USABLE].click()
    panel.submit.click()
    assert project.decisions(PROJECT)["location"].isna().all()
    assert session.key == ("E1", "S1") and not session.advance_after_submit


def test_crafted_page_messages_are_refused_where_they_run(start, project, caplog):
    """A tier-1 reviewer's page that enables and clicks UN, then Submit, and a
    collaborator's page that chooses U and submits, send messages their widgets never
    would: nothing is written; the refusal is said beside Submit and logged."""
    caplog.set_level("INFO", logger="miqa_nb")
    tier1 = DecisionPanel(start("t1"))
    page_sets(tier1.buttons[Decision.UNUSABLE], disabled=False)
    page_clicks(tier1.buttons[Decision.UNUSABLE])
    assert "tier-2" in tier1.error.value and tier1.session.pending.decision is None
    page_sets(tier1.note, value="crafted")
    page_clicks(tier1.submit)  # nothing chosen: nothing to write
    reader = DecisionPanel(start("col"))
    page_sets(reader.submit, disabled=False)
    page_clicks(reader.buttons[Decision.USABLE])
    assert "may not record decisions" in reader.error.value
    page_clicks(reader.submit)
    assert project.decisions(PROJECT).empty
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert any(m.startswith("refused for t1 in P:") and "tier-2" in m for m in refused)
    assert any(m.startswith("refused for col in P:") for m in refused)
